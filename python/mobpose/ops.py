"""The C++ kernels on numpy arrays, for inference without torch.

These wrap `mobpose._core`: arrays that are not C-contiguous float32 are converted (one copy); every
argument is checked first, and a bad one raises ValueError naming it.
"""

from __future__ import annotations

import logging
import os

import numpy as np

__all__ = [
    "PRIOR_MODES",
    "SOFT_ARGMAX_MODES",
    "available_kernel_variants",
    "kernel_names",
    "kernel_variant",
    "mqa_prior",
    "native_available",
    "set_kernel_variant",
    "soft_argmax_3d",
]

logger = logging.getLogger(__name__)

SOFT_ARGMAX_MODES = ("exact", "taylor", "taylor_clamped")
PRIOR_MODES = ("mul", "add")

try:
    from . import _core
except ImportError as exc:  # pragma: no cover - only when the package was not built
    _core = None
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None
    _env = os.environ.get("MOBPOSE_KERNEL_VARIANT", "")
    if _env and _env != "auto" and _env not in _core.available_kernel_variants():
        logger.warning(
            "MOBPOSE_KERNEL_VARIANT=%r is not available here (%s); using %r",
            _env, ", ".join(_core.available_kernel_variants()), _core.kernel_variant(),
        )


def native_available() -> bool:
    """Whether the compiled extension `mobpose._core` is importable."""
    return _core is not None


def _require_core():
    if _core is None:
        raise RuntimeError(f"the mobpose C++ extension is not built: {_IMPORT_ERROR}")
    return _core


def _as_f32(x, name: str, ndim: int, dims: str) -> np.ndarray:
    if not (isinstance(x, np.ndarray) or np.isscalar(x) or isinstance(x, list | tuple)):
        raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"{name} is not a rectangular array: {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions {dims}, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _finite_f32(value, name: str) -> float:
    """A real scalar that stays finite in float32 (the kernels' precision)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    with np.errstate(over="ignore"):
        as_f32 = np.float32(value)
    if not np.isfinite(as_f32):
        raise ValueError(f"{name} must be finite in float32, got {value}")
    return float(as_f32)


def _threads(num_threads: int) -> int:
    if not isinstance(num_threads, int | np.integer) or isinstance(num_threads, bool):
        raise TypeError(f"num_threads must be an int, got {type(num_threads).__name__}")
    return int(num_threads)


def soft_argmax_3d(
    heatmaps: np.ndarray, mode: str = "taylor", *, num_threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Soft-argmax over each joint's 3D heatmap volume (C++ kernel).

    Args:
        heatmaps: (N, J, D, H, W) logits, W fastest.
        mode: 'exact' softmax, 'taylor' (f(x) = 1 + x + x^2/2, normalised) or 'taylor_clamped'
            (f(max(x, -1)): monotonic).
        num_threads: threads over the N*J joints; < 1 means all cores.

    Returns:
        xyz (N, J, 3): expected (w, h, d) indices in heatmap units; peak (N, J): largest
        normalised probability. A NaN in a joint's volume gives NaN for that joint.
    """
    if mode not in SOFT_ARGMAX_MODES:
        raise ValueError(f"mode must be one of {SOFT_ARGMAX_MODES}, got {mode!r}")
    x = _as_f32(heatmaps, "heatmaps", 5, "(N, J, D, H, W)")
    return _require_core().soft_argmax_3d(x, mode, _threads(num_threads))


def mqa_prior(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    prior: np.ndarray | None = None,
    *,
    prior_scale: float = 1.0,
    prior_mode: str = "mul",
    causal: bool = False,
    num_threads: int = 1,
) -> np.ndarray:
    """Multi-query attention with a structural prior (C++ kernel).

    logits = q k^T / sqrt(d), then 'mul': logits * (1 + prior_scale * prior) (the poster's form) or
    'add': logits + prior_scale * prior; causal masks j > i; softmax over j; out = p v.

    Args:
        q: (B, H, N, d) queries of H heads.
        k: (B, N, d) the one shared key head.
        v: (B, N, d) the one shared value head.
        prior: (N, N) adjacency Adj1 + Adj2, or None for plain attention.
        prior_scale: lambda * a.
        prior_mode: 'mul' or 'add'.
        causal: token i attends only to tokens j <= i.
        num_threads: < 1 means all cores.

    Returns:
        (B, H, N, d) float32.
    """
    if prior_mode not in PRIOR_MODES:
        raise ValueError(f"prior_mode must be one of {PRIOR_MODES}, got {prior_mode!r}")
    qa = _as_f32(q, "q", 4, "(B, H, N, d)")
    ka = _as_f32(k, "k", 3, "(B, N, d)")
    va = _as_f32(v, "v", 3, "(B, N, d)")
    pa = None if prior is None else _as_f32(prior, "prior", 2, "(N, N)")
    scale = _finite_f32(prior_scale, "prior_scale")
    if not isinstance(causal, bool | np.bool_):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    return _require_core().mqa_prior(qa, ka, va, pa, scale, prior_mode, bool(causal), _threads(num_threads))


def set_kernel_variant(name: str) -> None:
    """Select the kernel variant: 'auto', 'reference' (double-precision scalar), 'avx2', 'avx512', 'neon'."""
    _require_core().set_kernel_variant(name)


def kernel_variant() -> str:
    """Name of the kernel variant in use."""
    return _require_core().kernel_variant()


def available_kernel_variants() -> list[str]:
    """Variants compiled in and supported by this CPU, reference first, best last."""
    return _require_core().available_kernel_variants()


def kernel_names() -> dict[str, str]:
    """Kernel names of the active variant, as used in the C++ tests and the benchmarks."""
    return _require_core().kernel_names()
