"""Shipped pretrained weights, loaded offline by name.

The weights live in the package folder `weights/` as kind "weights" checkpoints (mobpose.checkpoint)
listed by `weights/manifest.json`:

    {"format": "mobpose-weights-v1",
     "models": {NAME: {"file": "NAME.safetensors", "sha256": <sha256 of the file's bytes>, "bytes": int,
                       "model": <registry name>, "description": str, "card": "docs/MODELS.md#anchor",
                       "dtype": "float32" | "float16", "metrics": {...}}}}

`load_model(name)` checks the file's size and sha256 against the manifest before parsing it, then
builds the registry model from the stored name and config and loads the tensors strictly.
`export_weights` turns a training checkpoint into such a file and records it in the manifest. Nothing
here touches the network. Listing needs only the standard library; loading and exporting import torch.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "MANIFEST_FORMAT",
    "SIZE_BUDGET",
    "WEIGHTS_DIR",
    "RUNTIME_MODELS",
    "export_runtime_files",
    "export_weights",
    "file_sha256",
    "list_pretrained",
    "load_checkpoint",
    "load_model",
    "model_from_checkpoint",
    "model_from_file",
    "pretrained_info",
    "read_manifest",
    "runtime_file",
    "total_bytes",
]

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).parent / "weights"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "mobpose-weights-v1"
SIZE_BUDGET = 20 * 2**20  # bytes: the shipped weights folder must stay below this
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(weights_dir: str | os.PathLike = WEIGHTS_DIR) -> dict[str, Any]:
    """The manifest of a weights folder (an empty one if the folder has none).

    Raises:
        ValueError: the manifest is not valid JSON, of another format, or has malformed entries.
    """
    path = Path(weights_dir) / MANIFEST
    if not path.is_file():
        return {"format": MANIFEST_FORMAT, "models": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path} is not a mobpose weights manifest (format must be {MANIFEST_FORMAT!r})")
    models = manifest.get("models")
    if not isinstance(models, dict):
        raise ValueError(f"{path}: 'models' must be an object")
    for name, entry in models.items():
        missing = {"file", "sha256", "bytes", "model"} - set(entry if isinstance(entry, dict) else ())
        if missing:
            raise ValueError(f"{path}: entry {name!r} lacks {sorted(missing)}")
        if Path(entry["file"]).name != entry["file"] or entry["file"] in ("", ".", ".."):
            raise ValueError(f"{path}: entry {name!r} file {entry['file']!r} must be a plain file name")
    return manifest


def list_pretrained(weights_dir: str | os.PathLike = WEIGHTS_DIR) -> list[str]:
    """Names of the pretrained weights in the manifest, sorted."""
    return sorted(read_manifest(weights_dir)["models"])


def _entry(name: str, weights_dir: str | os.PathLike) -> dict[str, Any]:
    models = read_manifest(weights_dir)["models"]
    if name not in models:
        available = ", ".join(sorted(models)) or "none (no pretrained weights are installed)"
        raise ValueError(
            f"unknown pretrained model {name!r}; available: {available}; or pass the path of a .safetensors checkpoint"
        )
    return copy.deepcopy(models[name])


def pretrained_info(name: str, weights_dir: str | os.PathLike = WEIGHTS_DIR) -> dict[str, Any]:
    """The manifest entry of `name`, plus its `name` and file `path`.

    Raises:
        ValueError: unknown name (the message lists the available ones).
    """
    entry = _entry(name, weights_dir)
    entry["name"] = name
    entry["path"] = str(Path(weights_dir) / entry["file"])
    return entry


def record_presence(name: str, weights_dir: str | os.PathLike = WEIGHTS_DIR) -> dict[str, Any]:
    """Records the presence model ``presence-<name>.json`` of the shipped IPEM `name` in the manifest (its
    entry's ``presence``: file, bytes, sha256), which :func:`verify_presence` checks on load."""
    weights_dir = Path(weights_dir)
    path = weights_dir / f"presence-{name}.json"
    manifest = read_manifest(weights_dir)
    if name not in manifest["models"]:
        raise ValueError(f"{name!r} is not a shipped model (the manifest has {sorted(manifest['models'])})")
    rec = {"file": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
    manifest["models"][name]["presence"] = rec
    _write_manifest(weights_dir, manifest)
    return rec


def verify_presence(name: str, weights_dir: str | os.PathLike = WEIGHTS_DIR) -> Path:
    """The verified presence model file of the shipped IPEM `name`.

    Raises:
        ValueError: `name` is not shipped or has no presence model in the manifest.
        CheckpointError: the file's size or sha256 differs from the manifest's.
    """
    rec = _entry(name, weights_dir).get("presence")
    if rec is None:
        raise ValueError(f"the shipped model {name!r} has no presence model in the manifest")
    path = Path(weights_dir) / rec["file"]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the presence model of {name!r} is missing; reinstall mobpose")
    _verify_file(path, rec)
    return path


def total_bytes(weights_dir: str | os.PathLike = WEIGHTS_DIR) -> int:
    """Size of every file in the weights folder (manifest included), in bytes."""
    root = Path(weights_dir)
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.is_dir() else 0


def _jsonable_to_config(value: Any) -> Any:
    """JSON lists back to tuples (the model configs hold tuples), recursively."""
    if isinstance(value, list):
        return tuple(_jsonable_to_config(v) for v in value)
    if isinstance(value, dict):
        return {k: _jsonable_to_config(v) for k, v in value.items()}
    return value


Q8_SCALE = ".q8scale"
"""Suffix of the per-output-channel scale of an int8-stored weight (:func:`quantize_int8`)."""


def quantize_int8(state: dict[str, torch.Tensor], min_numel: int = 1024) -> dict[str, torch.Tensor]:
    """Weights stored in 8 bits: each floating tensor of rank >= 2 and at least `min_numel` values (conv and linear
    weights) becomes int8 with a float16 scale per output channel (row 0 of the tensor), symmetric:
    q = round(w / s), s = max |w| of the channel / 127, at most half a step (s / 2) from w; the rest is float16.
    The scale tensor is stored as ``name + Q8_SCALE`` (:func:`dequantize_int8` undoes it)."""
    import torch

    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if not v.is_floating_point():
            out[k] = v
        elif v.dim() >= 2 and v.numel() >= min_numel:
            w = v.float()
            scale = (w.abs().flatten(1).amax(1) / 127.0).clamp(min=1e-12).half()
            q = torch.round(w / scale.float().view(-1, *([1] * (w.dim() - 1)))).clamp(-127, 127).to(torch.int8)
            out[k], out[k + Q8_SCALE] = q, scale
        else:
            out[k] = v.half()
    return out


def dequantize_int8(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """float32 tensors back from :func:`quantize_int8`'s (other tensors unchanged)."""
    out = {k: v for k, v in state.items() if not k.endswith(Q8_SCALE)}
    for k, v in state.items():
        if k.endswith(Q8_SCALE):
            base = k[: -len(Q8_SCALE)]
            q = out[base]
            out[base] = q.float() * v.float().view(-1, *([1] * (q.dim() - 1)))
    return out


def model_from_checkpoint(
    tensors: dict[str, torch.Tensor], meta: dict[str, Any], *, softargmax: str | None = None, source: str = "checkpoint"
) -> nn.Module:
    """Builds the registry model named in checkpoint metadata and loads its tensors strictly.

    Training checkpoints hold the model under `model.`; a semi-supervised lifter run also holds its
    trajectory model, and only the pose model (`model.pose.`) is kept. Floating tensors are cast to
    the model's dtypes (fp16 weights load as float32).

    Args:
        tensors, meta: what `checkpoint.load` returns.
        softargmax: overrides the stored `softargmax_mode` (models that have one).
        source: the file, for error messages.

    Raises:
        CheckpointError: unknown model, a config the builder rejects, or tensors that do not match.
    """
    from . import checkpoint as ck
    from .models import create_model
    from .ops import SOFT_ARGMAX_MODES

    name, config = meta["model"], _jsonable_to_config(meta["config"])
    if softargmax is not None:
        if softargmax not in SOFT_ARGMAX_MODES:
            raise ValueError(f"softargmax must be one of {SOFT_ARGMAX_MODES}, got {softargmax!r}")
        if not isinstance(config, dict) or "softargmax_mode" not in config:
            raise ValueError(f"{source}: model {name!r} has no soft-argmax mode to set")
        config["softargmax_mode"] = softargmax
    try:
        model = create_model(name, **config)
    except (TypeError, ValueError) as exc:
        raise ck.CheckpointError(f"{source}: cannot build model {name!r} from its stored config: {exc}") from exc
    if meta["kind"] == "training":
        state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        if not state:
            raise ck.CheckpointError(f"{source}: training checkpoint without model tensors ('model.*')")
    else:
        state = dict(tensors)
    if any(k.endswith(Q8_SCALE) for k in state):
        state = dequantize_int8(state)
    expected = model.state_dict()
    if not any(k.startswith("pose.") for k in expected) and any(k.startswith("pose.") for k in state):
        state = {k[5:]: v for k, v in state.items() if k.startswith("pose.")}
    for k, v in state.items():
        ref = expected.get(k)
        if ref is not None and v.is_floating_point() and ref.is_floating_point() and v.dtype != ref.dtype:
            state[k] = v.to(ref.dtype)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ck.CheckpointError(f"{source}: tensors do not match model {name!r}: {exc}") from exc
    return model


def model_from_file(path: str | os.PathLike, *, eval: bool = True, softargmax: str | None = None) -> nn.Module:
    """The model of a mobpose checkpoint file (kind 'weights' or 'training'), checksum verified.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: unreadable, corrupt, or not matching its model.
    """
    from . import checkpoint as ck

    tensors, meta = ck.load(path)
    model = model_from_checkpoint(tensors, meta, softargmax=softargmax, source=str(path))
    if eval:
        model.eval()
    logger.info("loaded %s (%s) from %s", meta["model"], meta["kind"], path)
    return model


def _looks_like_path(name: str) -> bool:
    return name.endswith(".safetensors") or "/" in name or os.sep in name or Path(name).is_file()


def _verify_file(path: Path, entry: dict[str, Any]) -> None:
    """Size and sha256 of a shipped file against its manifest entry, before anything parses it."""
    size = path.stat().st_size
    digest = file_sha256(path)
    if size != entry["bytes"] or digest != entry["sha256"]:
        from .safetensors_np import CheckpointError

        raise CheckpointError(
            f"{path}: checksum mismatch (expected sha256 {entry['sha256']} and {entry['bytes']} bytes, computed "
            f"{digest} and {size} bytes): the file is corrupt or truncated; reinstall mobpose or re-export it"
        )


def load_checkpoint(
    name: str | os.PathLike, *, weights_dir: str | os.PathLike = WEIGHTS_DIR
) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any], dict[str, Any] | None]:
    """Resolves a manifest name or a checkpoint path and reads the file, verified. Offline.

    A manifest name's file is checked against the manifest (size and sha256 of its bytes) before it is
    parsed and must hold the manifest's model; a path is read as is. Either way `checkpoint.load`
    verifies the stored tensor checksum.

    Returns:
        (path, tensors, meta, manifest entry or None for a path), tensors and meta as `checkpoint.load`
        returns them.

    Raises:
        ValueError: unknown name (the message lists the available ones).
        FileNotFoundError: the listed file is missing (an incomplete install), or no such path.
        CheckpointError: the file does not match its manifest checksum, or is otherwise unusable.
    """
    from . import checkpoint as ck

    if isinstance(name, os.PathLike) or (name not in list_pretrained(weights_dir) and _looks_like_path(name)):
        path = Path(name)
        tensors, meta = ck.load(path)
        return path, tensors, meta, None
    entry = _entry(name, weights_dir)
    path = Path(weights_dir) / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights {name!r}: {path} is missing; the mobpose install is incomplete (reinstall it)"
        )
    _verify_file(path, entry)
    tensors, meta = ck.load(path, kind="weights")
    if meta["model"] != entry["model"]:
        raise ck.CheckpointError(f"{path} holds model {meta['model']!r}, the manifest says {entry['model']!r}")
    return path, tensors, meta, entry


def load_model(
    name: str | os.PathLike,
    *,
    eval: bool = True,
    softargmax: str | None = None,
    weights_dir: str | os.PathLike = WEIGHTS_DIR,
) -> nn.Module:
    """A pretrained model by name (see `list_pretrained`), or from a checkpoint file's path. Offline.

    Args:
        name: a manifest name, or the path of a mobpose checkpoint (kind 'weights' or 'training').
        eval: return the module in eval mode.
        softargmax: override the model's soft-argmax mode ('exact', 'taylor', 'taylor_clamped').
        weights_dir: the weights folder (default: the package's).

    Raises:
        ValueError: unknown name (the message lists the available ones).
        FileNotFoundError: the listed file is missing (an incomplete install), or no such path.
        CheckpointError: the file does not match its manifest checksum, or is otherwise unusable.
    """
    if isinstance(name, os.PathLike) or (name not in list_pretrained(weights_dir) and _looks_like_path(name)):
        return model_from_file(name, eval=eval, softargmax=softargmax)
    path, tensors, meta, entry = load_checkpoint(name, weights_dir=weights_dir)
    model = model_from_checkpoint(tensors, meta, softargmax=softargmax, source=str(path))
    if eval:
        model.eval()
    logger.info("loaded pretrained %r: %s, %.2f MB, sha256 %s, from %s", name, meta["model"],
                entry["bytes"] / 2**20, entry["sha256"][:12], path)
    return model


def _resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    import torch

    if dtype is None:
        return None
    resolved = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype (e.g. torch.float16), got {dtype!r}")
    return resolved


def _write_manifest(weights_dir: Path, manifest: dict[str, Any]) -> None:
    """Writes the manifest atomically: a temporary file in the folder, flushed, then renamed over it."""
    path = weights_dir / MANIFEST
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST}.", suffix=".tmp", dir=weights_dir)
    umask = os.umask(0)
    os.umask(umask)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _without_training_heads(config: Any, state: dict[str, torch.Tensor]) -> tuple[Any, dict[str, torch.Tensor]]:
    """Drops heads that only training uses (the IPEM's auxiliary facing classifier, `facing_bins`) from a
    model's config and state: inference never runs them, so shipped weights do not carry them."""
    if isinstance(config, dict) and config.get("facing_bins"):
        config = {**config, "facing_bins": 0}
        state = {k: v for k, v in state.items() if not k.startswith("facing.")}
    return config, state


def export_weights(
    checkpoint_path: str | os.PathLike,
    name: str,
    *,
    description: str = "",
    metrics: dict[str, Any] | None = None,
    dtype: torch.dtype | str | None = None,
    card: str | None = None,
    weights_dir: str | os.PathLike = WEIGHTS_DIR,
) -> Path:
    """Writes the model of a checkpoint as `NAME.safetensors` in `weights_dir` and records it in the manifest.

    The file is a kind 'weights' checkpoint holding only the model tensors (loaded strictly into the
    rebuilt model first, so it is known to load), with the model name and config; training-only heads (the
    IPEM's facing classifier) are left out. The manifest entry
    (file sha256, bytes, model, description, card, dtype, metrics) is replaced atomically.

    Args:
        checkpoint_path: a training checkpoint or weights file.
        name: the pretrained name: lowercase letters, digits, '_' and '-'.
        description: one line for listings.
        metrics: free-form JSON-able results of the weights.
        dtype: cast floating tensors to this (e.g. torch.float16 halves the file); "int8": conv and linear weights
            in 8 bits with a scale per output channel, the rest float16 (:func:`quantize_int8`; a quarter of the
            float32 file); None keeps them.
        card: the model card link (default `docs/MODELS.md#NAME`).
        weights_dir: the weights folder (default: the package's).

    Returns:
        The path of the weights file.
    """
    from . import checkpoint as ck

    if not _NAME.match(name):
        raise ValueError(f"pretrained name must match {_NAME.pattern}, got {name!r}")
    int8 = isinstance(dtype, str) and dtype == "int8"
    cast = None if int8 else _resolve_dtype(dtype)
    metrics = json.loads(json.dumps(metrics or {}))  # JSON-able, and a copy
    folder = Path(weights_dir)
    manifest = read_manifest(folder)
    tensors, meta = ck.load(checkpoint_path)
    model = model_from_checkpoint(tensors, meta, source=str(checkpoint_path))
    config, state = _without_training_heads(meta["config"], model.state_dict())
    state = {k: v.to(cast) if cast is not None and v.is_floating_point() else v for k, v in state.items()}
    if int8:
        state = quantize_int8(state)
    floating = {str(v.dtype).removeprefix("torch.") for v in state.values() if v.is_floating_point()}
    stored = "/".join(sorted(floating)) + ("+int8 weights" if int8 else "")
    training = meta["training"] or {}
    provenance = {"source_sha256": meta["sha256"], "dtype": stored,
                  **{k: training[k] for k in ("epoch", "step", "run") if k in training}}
    path = ck.save(folder / f"{name}.safetensors", state, model=meta["model"], config=config, kind="weights",
                   training={"exported_from": provenance})
    manifest["models"][name] = {
        "file": path.name,
        "sha256": file_sha256(path),
        "bytes": path.stat().st_size,
        "model": meta["model"],
        "description": description,
        "card": card if card is not None else f"docs/MODELS.md#{name}",
        "dtype": stored,
        "metrics": metrics,
    }
    _write_manifest(folder, manifest)
    size = total_bytes(folder)
    if size > SIZE_BUDGET:
        logger.warning("%s now holds %.1f MB, over the %.0f MB budget", folder, size / 2**20, SIZE_BUDGET / 2**20)
    logger.info("exported %s (%s, %s, %d bytes) from %s", path, meta["model"], stored,
                manifest["models"][name]["bytes"], checkpoint_path)
    return path


RUNTIME_MODELS = ("ipem-mnv2", "prm-causal", "rtmo-mnv2")
"""The shipped models whose TFLite files ship too (the defaults of mobpose.infer and its people finder): inference
then needs neither torch nor litert-torch."""


def runtime_file(name: str, *, weights_dir: str | os.PathLike = WEIGHTS_DIR) -> tuple[Path, dict[str, Any]] | None:
    """The shipped TFLite file of a manifest name, verified (size and sha256), with its manifest record
    ({'file', 'sha256', 'bytes', 'signatures', 'source_sha256', 'exporter'}); None when `name` ships no
    TFLite file. Needs only the standard library.

    Raises:
        ValueError: unknown name.
        FileNotFoundError: the listed file is missing (an incomplete install).
        CheckpointError: the file does not match its manifest record.
    """
    entry = _entry(name, weights_dir)
    rec = entry.get("tflite")
    if not rec:
        return None
    path = Path(weights_dir) / rec["file"]
    if not path.is_file():
        raise FileNotFoundError(f"pretrained {name!r}: {path} is missing; the mobpose install is incomplete "
                                "(reinstall it)")
    _verify_file(path, rec)
    if rec.get("source_sha256") != entry["sha256"]:
        from .safetensors_np import CheckpointError

        raise CheckpointError(f"{path} was exported from other weights than {entry['file']} (source sha256 "
                              f"{rec.get('source_sha256')}, weights {entry['sha256']}): re-run "
                              "'mobpose weights tflite'")
    return path, rec


def export_runtime_files(names: tuple[str, ...] | list[str] = RUNTIME_MODELS, *,
                         weights_dir: str | os.PathLike = WEIGHTS_DIR, out_dir: str | os.PathLike | None = None,
                         ) -> dict[str, dict[str, Any]]:
    """Exports the TFLite files of shipped models from their shipped safetensors and records them in the
    manifest (each entry's ``tflite``): an IPEM as :func:`mobpose.export.export_runtime_ipem` (signatures
    ``ipem`` and ``heatmaps``, float16 weights: the shipped IPEM weights are float16), a PRM as
    :func:`mobpose.export.export_tflite` (float32, as the C++ PRM reads it), RTMO as its dense graph with float16
    weights. Needs the export extra.

    Args:
        names: manifest names (default: RUNTIME_MODELS).
        weights_dir: the weights folder whose safetensors are exported.
        out_dir: write the files here and leave the manifest alone (to compare with the shipped ones).

    Returns:
        name -> the record ({'file', 'sha256', 'bytes', 'signatures', 'source_sha256', 'exporter'}).
    """
    from importlib.metadata import version

    from .export.tflite import export_runtime_ipem, export_tflite
    from .models.convnextpose import ConvNeXtPose
    from .models.prm import PRM
    from .models.rtmo import RTMO

    folder = Path(weights_dir)
    target = Path(out_dir) if out_dir is not None else folder
    target.mkdir(parents=True, exist_ok=True)
    records = {}
    for name in names:
        entry = _entry(name, folder)
        model = load_model(name, weights_dir=folder)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tflite.tmp", dir=target)
        os.close(fd)
        try:
            if isinstance(model, ConvNeXtPose):
                info = export_runtime_ipem(model, tmp, fp16=True)
            elif isinstance(model, PRM):
                info = export_tflite(model, tmp)
                info["signatures"] = [info["signature"]]
            elif isinstance(model, RTMO):  # its dense graph, float16 weights as shipped (the DCC stays in numpy)
                info = export_tflite(model, tmp, fp16=True)
                info["signatures"] = [info["signature"]]
            else:
                raise ValueError(f"{name}: only IPEM, PRM and RTMO models have runtime TFLite files, not "
                                 f"{entry['model']}")
            path = target / f"{name}.tflite"
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        records[name] = {"file": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size,
                         "signatures": list(info["signatures"]), "source_sha256": entry["sha256"],
                         "exporter": {"litert_torch": version("litert-torch"), "torch": version("torch")}}
        logger.info("exported %s (%d bytes, signatures %s) from %s", path, records[name]["bytes"],
                    records[name]["signatures"], entry["file"])
    if out_dir is None:
        manifest = read_manifest(folder)
        for name, rec in records.items():
            manifest["models"][name]["tflite"] = rec
        _write_manifest(folder, manifest)
        size = total_bytes(folder)
        if size > SIZE_BUDGET:
            logger.warning("%s now holds %.1f MB, over the %.0f MB budget", folder, size / 2**20, SIZE_BUDGET / 2**20)
    return records
