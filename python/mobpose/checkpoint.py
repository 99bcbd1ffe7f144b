"""Checkpoints and weights as safetensors files with their config, a checksum, written atomically.

A file holds tensors (model weights, and for training checkpoints the optimizer state and RNG
states) and string metadata:
- `format`: "mobpose-v1"; `kind`: "weights" or "training";
- `model`: the registry name; `config`: JSON of the model config;
- `sha256`: digest of every tensor's name, dtype, shape and bytes in sorted order, verified on load;
- `training`: JSON of the non-tensor training state (epoch, step, optimizer hyperparameters,
  data/noise description...), for training checkpoints.

Writes go to a temporary file in the same folder, are flushed to disk, then renamed over the target,
so a killed job leaves either the old or the new file, never a torn one. Never pickle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

__all__ = ["CheckpointError", "load", "remove_stale_temporaries", "save", "tensor_digest"]

logger = logging.getLogger(__name__)

FORMAT = "mobpose-v1"
KINDS = ("weights", "training")


from .safetensors_np import CheckpointError  # noqa: E402  (torch-free, shared with the inference runtime)


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over name, dtype, shape and bytes of every tensor, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save(
    path: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    *,
    model: str,
    config: dict[str, Any],
    kind: str = "weights",
    training: dict[str, Any] | None = None,
) -> Path:
    """Writes `tensors` and their metadata to `path` atomically; returns the path.

    Args:
        path: target file (.safetensors).
        tensors: name -> tensor (moved to CPU, made contiguous; shared storage is copied).
        model: registry name of the model the weights belong to.
        config: the model config (JSON-able).
        kind: 'weights' or 'training'.
        training: JSON-able training state for 'training' checkpoints.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    path = Path(path)
    for k, v in tensors.items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"tensors[{k!r}] must be a torch.Tensor, got {type(v).__name__}")
    clean = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    meta = {
        "format": FORMAT,
        "kind": kind,
        "model": model,
        "config": json.dumps(config, sort_keys=True),
        "sha256": tensor_digest(clean),
    }
    if training is not None:
        meta["training"] = json.dumps(training, sort_keys=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        save_file(clean, tmp, metadata=meta)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 -> the permissions of a normally created file
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    logger.info("wrote %s (%s, %d tensors)", path, kind, len(clean))
    return path


TEMPORARY_PATTERN = ".*.safetensors.*.tmp"
"""The names `save` gives its temporaries (`.{name}.XXXXXXXX.tmp` beside the target)."""


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Deletes the temporaries that killed `save` calls left in `folder` (not in its sub-folders).

    Only for a folder no other process is writing checkpoints into (a run folder when its run starts:
    `mobpose.train.fit` calls it); a write in progress would lose its temporary. Returns the removed
    paths and logs them.
    """
    import fnmatch

    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in sorted(folder.iterdir()):
        if fnmatch.fnmatchcase(entry.name, TEMPORARY_PATTERN) and entry.is_file() and not entry.is_symlink():
            size = entry.stat().st_size
            try:
                entry.unlink()
            except FileNotFoundError:
                continue
            removed.append(entry)
            logger.warning("removed stale checkpoint temporary %s (%d bytes, left by an interrupted write)", entry,
                           size)
    return removed


def load(path: str | os.PathLike, *, kind: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Reads a file written by `save`, verifying its format and checksum.

    Returns:
        (tensors, meta) with meta = {'kind', 'model', 'config' (dict), 'training' (dict or None),
        'sha256'}.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a safetensors file, truncated, another format or kind, or a checksum
            mismatch (the message names the file and both digests).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt?): {exc}") from exc
    if raw.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a mobpose checkpoint (format {raw.get('format')!r})")
    if kind is not None and raw.get("kind") != kind:
        raise CheckpointError(f"{path} holds {raw.get('kind')!r}, expected {kind!r}")
    digest = tensor_digest(tensors)
    if digest != raw.get("sha256"):
        raise CheckpointError(
            f"{path}: checksum mismatch (stored sha256 {raw.get('sha256')}, computed {digest}): the file is corrupt"
        )
    try:
        meta = {
            "kind": raw["kind"],
            "model": raw["model"],
            "config": json.loads(raw["config"]),
            "training": json.loads(raw["training"]) if "training" in raw else None,
            "sha256": digest,
        }
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: malformed metadata: {exc}") from exc
    return tensors, meta
