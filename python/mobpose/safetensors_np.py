"""Reading mobpose safetensors files with numpy alone (the inference runtime has no torch).

A safetensors file is an 8-byte little-endian header length, a JSON header (tensor name -> dtype, shape,
byte offsets, plus ``__metadata__``: string -> string) and the tensor bytes. :func:`read_meta` parses the
header and the mobpose metadata (as :func:`mobpose.checkpoint.load` does); :func:`verify` also recomputes
the stored tensor checksum (:func:`mobpose.checkpoint.tensor_digest`: sha256 over each tensor's name,
torch dtype name, shape and bytes in sorted name order) from the raw bytes, so a file is checked the
same way with or without torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

__all__ = ["CheckpointError", "load_tensors", "read_meta", "verify"]

FORMAT = "mobpose-v1"
_MAX_HEADER = 100 * 2**20
_NUMPY = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1",
          "BOOL": "?"}
# safetensors dtype codes -> the torch dtype names that tensor_digest hashes
_TORCH_NAMES = {"F64": "torch.float64", "F32": "torch.float32", "F16": "torch.float16", "BF16": "torch.bfloat16",
                "I64": "torch.int64", "I32": "torch.int32", "I16": "torch.int16", "I8": "torch.int8",
                "U8": "torch.uint8", "BOOL": "torch.bool"}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: unreadable, truncated, corrupted or of another kind
    (also :class:`mobpose.checkpoint.CheckpointError`)."""


def _error(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: {what}")


def _header(path: Path) -> tuple[dict[str, Any], int]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise _error(path, "is not a readable safetensors file (shorter than its 8-byte header length)")
        (n,) = struct.unpack("<Q", raw)
        if n > min(_MAX_HEADER, size - 8):
            raise _error(path, f"is not a readable safetensors file (header length {n} for a {size}-byte file: "
                               "truncated or corrupt?)")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _error(path, f"is not a readable safetensors file (bad JSON header: {exc})") from None
    if not isinstance(header, dict):
        raise _error(path, "is not a readable safetensors file (the header is not a JSON object)")
    return header, 8 + n


def read_meta(path: str | os.PathLike, *, kind: str | None = None) -> dict[str, Any]:
    """The mobpose metadata of a checkpoint file, without reading its tensors.

    Returns:
        {'kind', 'model', 'config' (dict), 'training' (dict or None), 'sha256' (the stored digest)}.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError (a ValueError): not a mobpose safetensors file, another
            kind, or malformed metadata (the message names the file).
    """
    path = Path(path)
    header, _ = _header(path)
    raw = header.get("__metadata__") or {}
    if raw.get("format") != FORMAT:
        raise _error(path, f"is not a mobpose checkpoint (format {raw.get('format')!r})")
    if kind is not None and raw.get("kind") != kind:
        raise _error(path, f"holds {raw.get('kind')!r}, expected {kind!r}")
    try:
        return {"kind": raw["kind"], "model": raw["model"], "config": json.loads(raw["config"]),
                "training": json.loads(raw["training"]) if "training" in raw else None, "sha256": raw["sha256"]}
    except (KeyError, json.JSONDecodeError) as exc:
        raise _error(path, f"malformed metadata: {exc}") from None


def verify(path: str | os.PathLike, *, kind: str | None = None) -> dict[str, Any]:
    """:func:`read_meta`, after checking every tensor's bytes against the stored sha256.

    Raises:
        As :func:`read_meta`; also for a truncated file or a checksum mismatch (both digests named).
    """
    path = Path(path)
    meta = read_meta(path, kind=kind)
    header, start = _header(path)
    h = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f:
        for name in sorted(k for k in header if k != "__metadata__"):
            info = header[name]
            try:
                dtype, shape, (lo, hi) = _TORCH_NAMES[info["dtype"]], tuple(int(s) for s in info["shape"]), \
                    info["data_offsets"]
            except (KeyError, TypeError, ValueError):
                raise _error(path, f"tensor {name!r} has a malformed header entry {info!r}") from None
            if not (0 <= lo <= hi and start + hi <= size):
                raise _error(path, f"tensor {name!r} lies outside the file (truncated?)")
            f.seek(start + lo)
            data = f.read(hi - lo)
            h.update(name.encode())
            h.update(dtype.encode())
            h.update(str(shape).encode())
            h.update(data)
    digest = h.hexdigest()
    if digest != meta["sha256"]:
        raise _error(path, f"checksum mismatch (stored sha256 {meta['sha256']}, computed {digest}): the file is "
                           "corrupt")
    return meta


def load_tensors(path: str | os.PathLike, prefix: str = "", *, kind: str | None = None) -> dict[str, Any]:
    """The tensors whose names start with `prefix` as float32 (floating) or native numpy arrays, after
    :func:`verify` (the whole file's checksum); names keep the prefix.

    Raises:
        As :func:`verify`; a bfloat16 tensor (numpy has no such dtype) names itself.
    """
    import numpy as np

    path = Path(path)
    verify(path, kind=kind)
    header, start = _header(path)
    out = {}
    with open(path, "rb") as f:
        for name, info in header.items():
            if name == "__metadata__" or not name.startswith(prefix):
                continue
            if info["dtype"] not in _NUMPY:
                raise _error(path, f"tensor {name!r} is {info['dtype']}, which numpy cannot read")
            lo, hi = info["data_offsets"]
            f.seek(start + lo)
            a = np.frombuffer(f.read(hi - lo), dtype=_NUMPY[info["dtype"]]).reshape(info["shape"])
            out[name] = a.astype(np.float32) if a.dtype.kind == "f" else a.copy()
    for name in [n for n in out if n.endswith(".q8scale")]:  # int8-stored weights (mobpose.pretrained.quantize_int8)
        base, scale = name[: -len(".q8scale")], out.pop(name)
        if base in out:
            out[base] = out[base].astype(np.float32) * scale.reshape(-1, *([1] * (out[base].ndim - 1)))
    return out
