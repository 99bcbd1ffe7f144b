"""The engines that run the IPEM and the PRM for the pipeline, one per backend, and where their models
come from.

- ``torch``: PyTorch eager, the reference (heatmaps, the soft-argmax of mobpose.functional in PyTorch,
  the PRM module over the last T poses). Needs the ``train`` extra.
- ``tflite``: the TFLite runtime (ai-edge-litert) with XNNPACK on the CPU: the IPEM file's ``ipem``
  signature (network and soft-argmax in one graph) and the PRM file.
- ``native``: the IPEM file's ``heatmaps`` signature on XNNPACK up to the heatmap logits, the soft-argmax
  in the C++ core's kernel, and the whole PRM in the C++ core (:class:`mobpose.runtime.NativePRM`, whose
  streaming step reuses the past frames' embeddings).
- ``auto``: the first of native, tflite, torch that can run the requested models here.

Models. The default models ship their TFLite files beside their safetensors (the manifest's ``tflite``
record, made by ``mobpose weights tflite``), so the base install (numpy, OpenCV, ai-edge-litert, the C++
core) runs them without torch. Other models (a checkpoint path, a module, a shipped name without a TFLite
file) are exported on first use into a cache (``MOBPOSE_CACHE_DIR``, else ~/.cache/mobpose/exports) under
their weights' sha256, which needs the ``export`` extra (torch, litert-torch); nothing is downloaded.

An IPEM engine maps a crop (S, S, 3) uint8 RGB to joints (J, 3) in heatmap units and the per-joint
confidence (J,) (the largest bin probability of the normalised heatmap); a PRM engine maps the newest
root-relative pose (J, 3) mm to its refined pose, keeping the last T frames itself (the first frame of a
stream is repeated to fill the window, as the native step does).

Engines are pooled (:func:`acquire` / :func:`release`, keyed by model, backend and threads): a pipeline
takes idle engines from the pool and gives them back when it closes, so repeated ``mobpose.infer`` calls
do not load the same files again. An engine serves one pipeline at a time.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BACKENDS", "ModelRef", "acquire", "available_backends", "cache_dir", "clear_pool", "make_engines",
           "model_ref", "release", "release_engines", "resolve_backend"]

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "native", "tflite", "torch")
EXPORT_FORMAT = 2  # bump when a cached file's form changes (2: the IPEM file has both signatures)
_TORCH_HINT = "PyTorch is not installed: the torch backend needs the train extra (pip install 'mobpose[train]')"
_EXPORT_HINT = ("needs its TFLite file exported, which takes the export extra (pip install 'mobpose[export]'; "
                "the default models ship theirs)")


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


def _have_torch() -> bool:
    return _have("torch") and _have("safetensors")


def available_backends(exported: bool = True) -> dict[str, str | None]:
    """Each concrete backend -> None when it can run here, else why not.

    Args:
        exported: whether the models to run have TFLite files already (the shipped defaults do); if not,
            the tflite and native backends also need the export extra to make them.
    """
    why: dict[str, str | None] = {"torch": None if _have_torch() else _TORCH_HINT}
    if not _have("ai_edge_litert"):
        why["tflite"] = "ai-edge-litert is not installed (it comes with mobpose: reinstall it)"
    elif not exported and not (_have("litert_torch") and _have_torch()):
        why["tflite"] = "the model " + _EXPORT_HINT
    else:
        why["tflite"] = None
    why["native"] = why["tflite"] or (None if _have_core() else "the C++ extension mobpose._core is not built")
    return why


def resolve_backend(backend: str, exported: bool = True) -> str:
    """The concrete backend for a name ('auto' -> the fastest that can run).

    Args:
        backend: 'auto', 'native', 'tflite' or 'torch'.
        exported: as :func:`available_backends`.

    Raises:
        ValueError: an unknown name, or a backend that cannot run here (the message says why).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    why = available_backends(exported)
    if backend == "auto":
        for name in ("native", "tflite", "torch"):
            if why[name] is None:
                return name
        raise ValueError("no backend can run: " + "; ".join(f"{k}: {v}" for k, v in why.items()))
    if why[backend] is not None:
        raise ValueError(f"backend {backend!r} cannot run here: {why[backend]}")
    return backend


# ---------------------------------------------------------------------------------------------- models


@dataclasses.dataclass
class ModelRef:
    """A model the pipeline runs, resolved without loading it (and without torch for shipped files).

    Attributes:
        kind: 'ipem', 'prm' or 'rtmo' (a people finder).
        label: how it is named in messages and results ('ipem-xs', a path, a module's class name).
        name: the shipped name, or None.
        path: its safetensors file (shipped or given), or None for a module.
        sha256: the weights file's sha256 (the key of pools and caches), or None for a module.
        tflite: the shipped TFLite file (verified), or None.
        facts: what the runtime needs to know: an IPEM's input_size, heatmap_size (D, H, W), num_joints,
            softargmax; a PRM's window, causal, num_joints (from the TFLite metadata, else the module).
        module: the loaded torch module (given, or loaded on demand by :meth:`load`).
    """

    kind: str
    label: str
    name: str | None = None
    path: Path | None = None
    sha256: str | None = None
    tflite: Path | None = None
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)
    module: Any = None

    @property
    def key(self) -> str | None:
        """Identifies the weights (their sha256); None for a module given as such (its engines are not pooled)."""
        return self.sha256

    def load(self):
        """The torch module (loaded and checksum-verified on first use; needs torch)."""
        if self.module is None:
            if not _have_torch():
                raise ValueError(f"{self.label}: {_TORCH_HINT}")
            from ..pretrained import file_sha256, load_checkpoint, model_from_checkpoint

            path, tensors, meta, entry = load_checkpoint(self.name or str(self.path))
            self.module = model_from_checkpoint(tensors, meta, source=str(path)).eval()
            self.sha256 = self.sha256 or (entry["sha256"] if entry else file_sha256(path))
            self._check_module()
        return self.module

    def _check_module(self) -> None:
        from ..models.convnextpose import ConvNeXtPose
        from ..models.prm import PRM

        m = self.module
        if self.kind == "rtmo":
            from ..models.rtmo import RTMO

            if not isinstance(m, RTMO):
                raise ValueError(f"finder must be an RTMO model, got {type(m).__name__} ({self.label})")
            self.facts = {"input_size": m.config.input_size, "config": dataclasses.asdict(m.config)}
            return
        if self.kind == "ipem":
            if not isinstance(m, ConvNeXtPose):
                raise ValueError(f"model must be an IPEM (ConvNeXtPose), got {type(m).__name__} ({self.label})")
            c = m.config
            self.facts = {"input_size": c.input_size, "heatmap_size": tuple(c.heatmap_size),
                          "num_joints": c.num_joints, "softargmax": m.softargmax_mode}
        else:
            if not isinstance(m, PRM):
                raise ValueError(f"prm must be a PRM, got {type(m).__name__} ({self.label})")
            self.facts = {"window": m.config.num_frames, "causal": m.config.causal, "num_joints": m.config.num_joints}
        self._check_facts()

    def _check_facts(self) -> None:
        if self.kind == "prm" and not self.facts.get("causal"):
            raise ValueError(f"prm must be causal for streaming (a centred PRM's output waits for later frames): "
                             f"{self.label}")


def _facts_from_tflite(path: Path, kind: str, label: str) -> dict[str, Any]:
    from ..export.metadata import read_metadata

    meta = read_metadata(path)
    if meta.get("kind") != kind:
        raise ValueError(f"{label}: {path.name} holds a {meta.get('kind')!r} model, not an {kind.upper()}")
    if kind == "rtmo":
        return {"input_size": int(meta["input_size"]), "config": dict(meta["config"])}
    if kind == "ipem":
        return {"input_size": int(meta["config"]["input_size"]), "heatmap_size": tuple(meta["heatmap_size"]),
                "num_joints": int(meta["config"]["num_joints"]), "softargmax": meta["softargmax"],
                "signatures": meta.get("signatures", {"ipem": {}})}
    return {"window": int(meta["window"]), "causal": bool(meta["causal"]), "num_joints": len(meta["joint_names"])}


def model_ref(spec: Any, kind: str) -> ModelRef:
    """Resolves a shipped name, a checkpoint path or a torch module to a :class:`ModelRef`.

    A shipped name is checked against the manifest (its weights file and TFLite file, size and sha256) and
    needs no torch when it ships a TFLite file; a path is hashed (its tensors are verified when loaded).

    Raises:
        TypeError: not a name, path or module.
        ValueError: an unknown name, the wrong kind of model.
        FileNotFoundError / CheckpointError: a missing or corrupt file.
    """
    from .. import pretrained

    what = {"ipem": "model", "prm": "prm", "rtmo": "finder"}[kind]
    if not isinstance(spec, str | os.PathLike):
        if not (hasattr(spec, "state_dict") and hasattr(spec, "eval")):
            raise TypeError(f"{what} must be a shipped model name, a checkpoint path or a module, "
                            f"got {type(spec).__name__}")
        ref = ModelRef(kind, type(spec).__name__, module=spec.eval())
        ref._check_module()
        return ref
    text = os.fspath(spec)
    if isinstance(spec, str) and text in pretrained.list_pretrained():
        entry = pretrained.pretrained_info(text)
        ref = ModelRef(kind, text, name=text, path=Path(entry["path"]), sha256=entry["sha256"])
        if not ref.path.is_file():
            raise FileNotFoundError(f"pretrained weights {text!r}: {ref.path} is missing; the mobpose install is "
                                    "incomplete (reinstall it)")
        shipped = pretrained.runtime_file(text)
        if shipped is not None:
            ref.tflite = shipped[0]
            ref.facts = _facts_from_tflite(ref.tflite, kind, text)
            ref._check_facts()
        return ref
    path = Path(text)
    if not path.is_file():
        if not (text.endswith(".safetensors") or "/" in text or os.sep in text):
            pretrained.pretrained_info(text)  # raises: unknown name, listing the shipped ones
        raise FileNotFoundError(f"{what} {text}: no such checkpoint file")
    return ModelRef(kind, text, path=path, sha256=pretrained.file_sha256(path))


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


def export_cached(model, kind: str, source_sha: str | None = None) -> Path:
    """The cached TFLite file of a module for `kind` ('ipem': the runtime IPEM file with signatures ``ipem``
    and ``heatmaps``, float32 weights; 'prm'; 'rtmo': its dense graph at its config's input size; 'poseresnet'),
    exported if absent (needs the export extra)."""
    if not _have("litert_torch"):
        raise ValueError(f"{type(model).__name__} {_EXPORT_HINT}")
    from ..export.tflite import export_runtime_ipem, export_tflite

    key = f"{kind}-{type(model).__name__.lower()}-{_weights_key(model, source_sha)}-v{EXPORT_FORMAT}.tflite"
    if kind == "ipem":
        return _cached(key, lambda p: export_runtime_ipem(model, p, fp16=False, check=False))
    if kind in ("prm", "rtmo", "poseresnet"):
        return _cached(key, lambda p: export_tflite(model, p, check=False))
    raise ValueError(f"unknown export kind {kind!r}")


def _tflite_of(ref: ModelRef) -> Path:
    """The model's TFLite file: shipped, else exported into the cache (first use)."""
    if ref.tflite is None:
        ref.tflite = export_cached(ref.load(), ref.kind, ref.sha256)
        ref.facts = {**ref.facts, **_facts_from_tflite(ref.tflite, ref.kind, ref.label)}
    return ref.tflite


class _Runner:
    """A TFLite signature runner (XNNPACK, `threads` threads). The interpreter is created, and the first
    call made (XNNPACK's delegate logs to stderr then), with native output captured into the debug log."""

    def __init__(self, path: Path, threads: int, signature: str | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from ..export.runtime import native_output

        with native_output():
            self.interpreter = Interpreter(model_path=str(path), num_threads=max(1, int(threads)))
            sigs = self.interpreter.get_signature_list()
            if signature is None:
                if len(sigs) != 1:
                    raise ValueError(f"{path}: expected one signature, found {list(sigs)}")
                signature = next(iter(sigs))
            if signature not in sigs:
                raise ValueError(f"{path}: no signature {signature!r} (it has {list(sigs)}): re-export it")
            self.runner = self.interpreter.get_signature_runner(signature)
        self.path, self.signature = path, signature
        self._first = True

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

    def __init__(self, ref: ModelRef, threads: int = 1) -> None:
        import torch

        from ..models.convnextpose import IMAGENET_MEAN, IMAGENET_STD

        self.model, self.torch, self.threads = ref.load().eval(), torch, threads
        self.mean = np.asarray(IMAGENET_MEAN, np.float32) * 255.0
        self.inv_std = 1.0 / (np.asarray(IMAGENET_STD, np.float32) * 255.0)

    def __call__(self, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from ..functional import soft_argmax_3d

        torch = self.torch
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        x = ((crop.astype(np.float32) - self.mean) * self.inv_std).transpose(2, 0, 1)[None]
        with torch.inference_mode():
            heat = self.model.forward_heatmaps(torch.from_numpy(np.ascontiguousarray(x)))
            xyz, peak = soft_argmax_3d(heat, self.model.softargmax_mode, backend="torch", return_peak=True)
        return xyz[0].numpy(), peak[0].numpy()


class TFLiteIPEM:
    """The IPEM file's ``ipem`` signature (network and soft-argmax in one graph) on XNNPACK."""

    name = "tflite"

    def __init__(self, ref: ModelRef, threads: int = 1) -> None:
        path = _tflite_of(ref)
        self.num_joints = ref.facts["num_joints"]
        self.runner = _Runner(path, threads, "ipem")

    def __call__(self, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.runner(image=crop[None].astype(np.float32))
        return out["joints"].reshape(self.num_joints, 3), out["confidence"].reshape(self.num_joints)


class NativeIPEM:
    """The IPEM file's ``heatmaps`` signature on XNNPACK up to the logits, the soft-argmax in the C++ kernel."""

    name = "native"

    def __init__(self, ref: ModelRef, threads: int = 1) -> None:
        from .. import ops

        path = _tflite_of(ref)
        self.ops = ops
        self.mode = ref.facts["softargmax"]
        self.threads = max(1, int(threads))
        self.heatmap_size = tuple(ref.facts["heatmap_size"])
        self.num_joints = ref.facts["num_joints"]
        self.runner = _Runner(path, threads, "heatmaps")

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

    def __init__(self, ref: ModelRef, threads: int = 1) -> None:
        import torch

        model = ref.load()
        super().__init__(model.config.num_frames)
        self.model, self.torch, self.threads = model.eval(), torch, threads

    def __call__(self, pose: np.ndarray) -> np.ndarray:
        window = self._push(pose)
        if self.torch.get_num_threads() != self.threads:
            self.torch.set_num_threads(self.threads)
        with self.torch.inference_mode():
            return self.model(self.torch.from_numpy(window[None]))[0, -1].numpy()


class TFLitePRM(_WindowPRM):
    name = "tflite"

    def __init__(self, ref: ModelRef, threads: int = 1) -> None:
        path = _tflite_of(ref)
        super().__init__(ref.facts["window"])
        self.num_joints = ref.facts["num_joints"]
        self.runner = _Runner(path, threads)

    def __call__(self, pose: np.ndarray) -> np.ndarray:
        window = self._push(pose)
        return self.runner(poses=window[None])["output_0"].reshape(self.num_joints, 3)


class NativePRMEngine:
    """The C++ PRM's streaming step (past frames' embeddings reused)."""

    name = "native"

    def __init__(self, ref: ModelRef, threads: int = 1) -> None:
        from .native_prm import NativePRM

        if ref.path is None:
            raise ValueError("the native backend reads the PRM from its weights file: give its path or name, "
                             "not a module")
        self.prm = NativePRM.from_file(ref.name or ref.path, num_threads=threads)
        if not self.prm.causal:
            raise ValueError("the streaming pipeline needs a causal PRM")
        self.window = self.prm.num_frames

    def reset(self) -> None:
        self.prm.reset()

    def __call__(self, pose: np.ndarray) -> np.ndarray:
        return self.prm.step(pose)


_IPEM = {"torch": TorchIPEM, "tflite": TFLiteIPEM, "native": NativeIPEM}
_PRM = {"torch": TorchPRM, "tflite": TFLitePRM, "native": NativePRMEngine}

# ---------------------------------------------------------------------------------------------- the pool

POOL_KEYS = 8
"""How many (model, backend, threads) keys the pool keeps idle engines for (least recently used go)."""
_POOL: collections.OrderedDict[tuple, list] = collections.OrderedDict()
_POOL_LOCK = threading.Lock()


def acquire(key: tuple, make):
    """An idle engine of `key` from the pool, else ``make()``. The caller owns it until :func:`release`.
    A key holding None (a module's engines) is never pooled."""
    if None in key:
        return make()
    with _POOL_LOCK:
        idle = _POOL.get(key)
        if idle:
            _POOL.move_to_end(key)
            logger.debug("engine pool: reusing %s", key)
            return idle.pop()
    return make()


def release(key: tuple, engine) -> None:
    """Gives an engine back to the pool (its stream state reset); at most 2 idle engines a key."""
    if engine is None or None in key:
        return
    if hasattr(engine, "reset"):
        engine.reset()
    with _POOL_LOCK:
        idle = _POOL.setdefault(key, [])
        _POOL.move_to_end(key)
        if len(idle) < 2:
            idle.append(engine)
        while len(_POOL) > POOL_KEYS:
            _POOL.popitem(last=False)


def clear_pool() -> None:
    """Drops every idle engine (frees their interpreters)."""
    with _POOL_LOCK:
        _POOL.clear()


DEFAULT_MAX_THREADS = 2
"""The default engine threads: the cores this process may use, at most 2 (the fastest measured on the
2-core machine: native 1.63x one thread when idle; docs/BENCHMARKS.md, 'Threads')."""


def default_threads() -> int:
    """The default thread count of the engines: min(usable cores, DEFAULT_MAX_THREADS)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, DEFAULT_MAX_THREADS))


def check_threads(threads) -> int:
    """`threads` as an int >= 1 (None: :func:`default_threads`).

    Raises:
        TypeError / ValueError: not an integer, or < 1, or absurdly many (> 1024).
    """
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer):
        raise TypeError(f"threads must be an integer or None, got {type(threads).__name__}")
    if not 1 <= int(threads) <= 1024:
        raise ValueError(f"threads must be between 1 and 1024, got {threads}")
    return int(threads)


def make_engines(backend: str, ipem: ModelRef, prm: ModelRef | None, *, threads: int = 1
                 ) -> tuple[Any, Any, tuple, tuple | None]:
    """(IPEM engine, PRM engine or None, their pool keys) of a concrete backend, from the pool when it holds
    idle ones. Give them back with :func:`release_engines`."""
    if backend not in _IPEM:
        raise ValueError(f"make_engines needs a concrete backend (native, tflite, torch), got {backend!r}")
    threads = max(1, int(threads))
    ikey = ("ipem", ipem.key, backend, threads)
    engine = acquire(ikey, lambda: _IPEM[backend](ipem, threads))
    pkey = None if prm is None else ("prm", prm.key, backend, threads)
    try:
        prm_engine = None if prm is None else acquire(pkey, lambda: _PRM[backend](prm, threads))
    except BaseException:
        release(ikey, engine)
        raise
    return engine, prm_engine, ikey, pkey


def release_engines(ipem_engine, prm_engine, ikey: tuple, pkey: tuple | None) -> None:
    """Returns what :func:`make_engines` gave to the pool."""
    release(ikey, ipem_engine)
    if pkey is not None:
        release(pkey, prm_engine)
