"""The engines that run the IPEM and the PRM for the pipeline, one per backend.

- ``torch``: PyTorch eager, the reference (heatmaps, the soft-argmax of mobpose.functional in PyTorch,
  the PRM module over the last T poses).
- ``tflite``: the TFLite runtime (ai-edge-litert) with XNNPACK on the CPU: the IPEM file of
  :func:`mobpose.export.export_tflite` (network and soft-argmax in one graph) and the PRM file.
- ``native``: the backbone through TFLite up to the heatmap logits, the soft-argmax in the C++ core's
  kernel, and the whole PRM in the C++ core (:class:`mobpose.runtime.NativePRM`, whose streaming step
  reuses the past frames' embeddings).
- ``auto``: the first of native, tflite, torch whose pieces are installed.

The TFLite files are made from the loaded weights on first use and cached (``MOBPOSE_CACHE_DIR``, else
~/.cache/mobpose/exports) under the weights' sha256, so nothing is downloaded and a changed weights file
gets a new export. Making them needs the export extra (litert-torch); running them needs ai-edge-litert.

An IPEM engine maps a crop (S, S, 3) uint8 RGB to joints (J, 3) in heatmap units and the per-joint
confidence (J,) (the largest bin probability of the normalised heatmap); a PRM engine maps the newest
root-relative pose (J, 3) mm to its refined pose, keeping the last T frames itself (the first frame of a
stream is repeated to fill the window, as the native step does).
"""

from __future__ import annotations

import collections
import importlib.util
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BACKENDS", "available_backends", "cache_dir", "make_engines", "resolve_backend"]

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "native", "tflite", "torch")
EXPORT_FORMAT = 1  # bump when a cached file's form changes


def cache_dir() -> Path:
    """Where exported TFLite files are cached: $MOBPOSE_CACHE_DIR, else ~/.cache/mobpose/exports."""
    env = os.environ.get("MOBPOSE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "mobpose" / "exports"


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _have_core() -> bool:
    try:
        from .. import _core  # noqa: F401
    except ImportError:
        return False
    return True


def available_backends() -> dict[str, str | None]:
    """Each concrete backend -> None when it can run here, else why not."""
    torch_ok = _have("torch")
    why: dict[str, str | None] = {
        "torch": None if torch_ok else "PyTorch is not installed (pip install mobpose[train])"}
    if not _have("ai_edge_litert"):
        why["tflite"] = "ai-edge-litert is not installed (pip install mobpose[export])"
    elif not (_have("litert_torch") and torch_ok):
        why["tflite"] = "litert-torch is not installed: the TFLite files cannot be made (pip install mobpose[export])"
    else:
        why["tflite"] = None
    why["native"] = why["tflite"] or (None if _have_core() else "the C++ extension mobpose._core is not built")
    return why


def resolve_backend(backend: str) -> str:
    """The concrete backend for a name ('auto' -> the fastest available).

    Raises:
        ValueError: an unknown name, or a backend that cannot run here (the message says why).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    why = available_backends()
    if backend == "auto":
        for name in ("native", "tflite", "torch"):
            if why[name] is None:
                return name
        raise ValueError("no backend can run: " + "; ".join(f"{k}: {v}" for k, v in why.items()))
    if why[backend] is not None:
        raise ValueError(f"backend {backend!r} cannot run here: {why[backend]}")
    return backend


# ---------------------------------------------------------------------------------------------- exports


def _cached(key: str, make) -> Path:
    """The cached file `key`, made by make(path) into a temporary file and renamed (atomic) if absent."""
    folder = cache_dir()
    path = folder / key
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".tmp")
    os.close(fd)
    try:
        logger.info("exporting %s (first use of these weights; cached in %s)", key, folder)
        make(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache may be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _weights_key(model, source_sha: str | None) -> str:
    """A short digest of a module's weights (the file's sha256 when known, else of the tensors)."""
    if source_sha:
        return source_sha[:16]
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _heatmap_form(model):
    """The IPEM's TFLite form that stops at the heatmap logits: (1, S, S, 3) 0-255 -> ``heatmaps``
    (1, J, D*H*W), the logit scale folded in (the native backend's soft-argmax input)."""
    import torch

    from ..export.forms import IPEMGpu

    class IPEMHeatmaps(IPEMGpu):
        def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
            j, d, h, w = self.num_joints, self.depth, self.height, self.width
            return {"heatmaps": self.logits(image).reshape(1, j, d * h * w)}

    return IPEMHeatmaps(model).eval()


def export_cached(model, kind: str, source_sha: str | None = None) -> Path:
    """The cached TFLite file of `model` for `kind` ('ipem', 'heatmaps' or 'prm'), exported if absent."""
    import torch

    from ..export.tflite import convert_module, export_tflite

    key = f"{kind}-{type(model).__name__.lower()}-{_weights_key(model, source_sha)}-v{EXPORT_FORMAT}.tflite"
    if kind in ("ipem", "prm"):
        return _cached(key, lambda p: export_tflite(model, p, check=False))
    if kind == "heatmaps":
        s = model.config.input_size
        sample = {"image": torch.rand(1, s, s, 3, generator=torch.Generator().manual_seed(0)) * 255}
        return _cached(key, lambda p: convert_module(_heatmap_form(model), sample, p, "heatmaps"))
    raise ValueError(f"unknown export kind {kind!r}")


class _Runner:
    """A TFLite signature runner kept for the life of the pipeline (XNNPACK, `threads` threads)."""

    def __init__(self, path: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from ..export.runtime import native_output

        with native_output():
            self.interpreter = Interpreter(model_path=str(path), num_threads=max(1, int(threads)))
            sigs = self.interpreter.get_signature_list()
            if len(sigs) != 1:
                raise ValueError(f"{path}: expected one signature, found {list(sigs)}")
            self.runner = self.interpreter.get_signature_runner(next(iter(sigs)))
        self.path = path
        self._first = True  # the first call creates the XNNPACK delegate, which logs to stderr

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        if self._first:
            from ..export.runtime import native_output

            self._first = False
            with native_output():
                return self.runner(**inputs)
        return self.runner(**inputs)


# ---------------------------------------------------------------------------------------------- engines


class TorchIPEM:
    """PyTorch eager: heatmaps, then the PyTorch soft-argmax (not the C++ kernel)."""

    name = "torch"

    def __init__(self, model) -> None:
        import torch

        from ..models.convnextpose import IMAGENET_MEAN, IMAGENET_STD

        self.model, self.torch = model.eval(), torch
        self.input_size = model.config.input_size
        self.heatmap_size = tuple(model.heatmap_size)
        self.num_joints = model.config.num_joints
        self.mean = np.asarray(IMAGENET_MEAN, np.float32) * 255.0
        self.inv_std = 1.0 / (np.asarray(IMAGENET_STD, np.float32) * 255.0)

    def __call__(self, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from ..functional import soft_argmax_3d

        torch = self.torch
        x = ((crop.astype(np.float32) - self.mean) * self.inv_std).transpose(2, 0, 1)[None]
        with torch.inference_mode():
            heat = self.model.forward_heatmaps(torch.from_numpy(np.ascontiguousarray(x)))
            xyz, peak = soft_argmax_3d(heat, self.model.softargmax_mode, backend="torch", return_peak=True)
        return xyz[0].numpy(), peak[0].numpy()


class TFLiteIPEM:
    """The exported IPEM (network and soft-argmax in one graph) on XNNPACK."""

    name = "tflite"

    def __init__(self, model, threads: int = 1, source_sha: str | None = None) -> None:
        self.input_size = model.config.input_size
        self.heatmap_size = tuple(model.heatmap_size)
        self.num_joints = model.config.num_joints
        self.runner = _Runner(export_cached(model, "ipem", source_sha), threads)

    def __call__(self, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.runner(image=crop[None].astype(np.float32))
        return out["joints"].reshape(self.num_joints, 3), out["confidence"].reshape(self.num_joints)


class NativeIPEM:
    """The backbone on XNNPACK up to the heatmap logits, the soft-argmax in the C++ kernel."""

    name = "native"

    def __init__(self, model, threads: int = 1, source_sha: str | None = None) -> None:
        from .. import ops

        self.ops = ops
        self.mode = model.softargmax_mode
        self.threads = max(1, int(threads))
        self.input_size = model.config.input_size
        self.heatmap_size = tuple(model.heatmap_size)
        self.num_joints = model.config.num_joints
        self.runner = _Runner(export_cached(model, "heatmaps", source_sha), threads)

    def __call__(self, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        heat = self.runner(image=crop[None].astype(np.float32))["heatmaps"]
        d, h, w = self.heatmap_size
        xyz, peak = self.ops.soft_argmax_3d(heat.reshape(1, self.num_joints, d, h, w), self.mode,
                                             num_threads=self.threads)
        return xyz[0], peak[0]


class _WindowPRM:
    """Keeps the last T poses (the first one repeated to fill the window at the start of a stream)."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.poses: collections.deque = collections.deque(maxlen=window)

    def reset(self) -> None:
        self.poses.clear()

    def _push(self, pose: np.ndarray) -> np.ndarray:
        pose = np.asarray(pose, np.float32)
        if not self.poses:
            self.poses.extend([pose] * self.window)
        else:
            self.poses.append(pose)
        return np.stack(self.poses)


class TorchPRM(_WindowPRM):
    name = "torch"

    def __init__(self, model) -> None:
        import torch

        if not model.config.causal:
            raise ValueError("the streaming pipeline needs a causal PRM (its output for a frame may not wait "
                             "for later frames)")
        super().__init__(model.config.num_frames)
        self.model, self.torch = model.eval(), torch

    def __call__(self, pose: np.ndarray) -> np.ndarray:
        window = self._push(pose)
        with self.torch.inference_mode():
            return self.model(self.torch.from_numpy(window[None]))[0, -1].numpy()


class TFLitePRM(_WindowPRM):
    name = "tflite"

    def __init__(self, model, threads: int = 1, source_sha: str | None = None) -> None:
        if not model.config.causal:
            raise ValueError("the streaming pipeline needs a causal PRM")
        super().__init__(model.config.num_frames)
        self.num_joints = model.config.num_joints
        self.runner = _Runner(export_cached(model, "prm", source_sha), threads)

    def __call__(self, pose: np.ndarray) -> np.ndarray:
        window = self._push(pose)
        return self.runner(poses=window[None])["output_0"].reshape(self.num_joints, 3)


class NativePRMEngine:
    """The C++ PRM's streaming step (past frames' embeddings reused)."""

    name = "native"

    def __init__(self, source: str, threads: int = 1) -> None:
        from .native_prm import NativePRM

        self.prm = NativePRM.from_file(source, num_threads=threads)
        if not self.prm.causal:
            raise ValueError("the streaming pipeline needs a causal PRM")
        self.window = self.prm.num_frames

    def reset(self) -> None:
        self.prm.reset()

    def __call__(self, pose: np.ndarray) -> np.ndarray:
        return self.prm.step(pose)


def make_engines(backend: str, ipem, prm, *, threads: int = 1, ipem_sha: str | None = None,
                 prm_sha: str | None = None, prm_source: str | None = None) -> tuple[Any, Any]:
    """(IPEM engine, PRM engine or None) of a concrete backend for loaded modules.

    `prm_source` is the PRM's weights file or shipped name (the native PRM reads it itself).
    """
    if backend == "torch":
        import torch

        if threads > 0:
            torch.set_num_threads(threads)
        return TorchIPEM(ipem), (TorchPRM(prm) if prm is not None else None)
    if backend == "tflite":
        return (TFLiteIPEM(ipem, threads, ipem_sha),
                TFLitePRM(prm, threads, prm_sha) if prm is not None else None)
    if backend == "native":
        if prm is not None and prm_source is None:
            raise ValueError("the native backend reads the PRM from its weights file: give its path or name")
        return (NativeIPEM(ipem, threads, ipem_sha),
                NativePRMEngine(prm_source, threads) if prm is not None else None)
    raise ValueError(f"make_engines needs a concrete backend (native, tflite, torch), got {backend!r}")
