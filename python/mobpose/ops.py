"""The C++ kernels on numpy arrays, for inference without torch.

These wrap `mobpose._core`: arrays that are not C-contiguous float32 are converted (one copy); every
argument is checked here first, and a bad one raises TypeError (wrong type) or ValueError (wrong value,
shape, range) naming it, before anything reaches the binding.

At the extremes of float32 the kernels follow the rules of README.md ("Kernels at the extremes of
float32"), the same in every kernel variant and in the PyTorch reference `mobpose.functional`: any
finite input gives the finite, mathematically right result (no overflow to NaN, no wrong finite
value); NaN and Inf inputs give NaN (or pass through as +-Inf) at documented places only. Inputs that
float32 cannot hold (finite float64 values beyond its range, a prior factor that overflows it) are
refused with ValueError.
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
MAX_THREADS = 2**31 - 1  # num_threads is a C int in the binding
_FLT_MAX = float(np.finfo(np.float32).max)

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
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 4:
        # Finite values that float32 cannot hold would silently become +-Inf, with other results than
        # the same values in float64 through mobpose.functional: refused.
        with np.errstate(invalid="ignore"):
            big = np.abs(arr) > _FLT_MAX
        if big.any() and np.isfinite(arr[big]).any():
            where = np.argwhere(big & np.isfinite(arr))[0]
            raise ValueError(f"{name} has a finite value beyond the float32 range (+-{_FLT_MAX:.4g}): "
                             f"{float(arr[tuple(where)]):.6g} at {where.tolist()} (the kernels compute in float32)")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _finite_f32(value, name: str) -> float:
    """A real scalar that stays finite in float32 (the kernels' precision)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        with np.errstate(over="ignore"):
            as_f32 = np.float32(value)
    except OverflowError:  # a Python int beyond any float
        as_f32 = np.float32(np.inf)
    if not np.isfinite(as_f32):
        raise ValueError(f"{name} must be finite in float32, got {value}")
    return float(as_f32)


def _threads(num_threads) -> int:
    """num_threads: 0 (all cores) or a thread count (more than the cores runs on all of them)."""
    if not isinstance(num_threads, int | np.integer) or isinstance(num_threads, bool | np.bool_):
        raise TypeError(f"num_threads must be an int, got {type(num_threads).__name__}")
    if not 0 <= num_threads <= MAX_THREADS:
        raise ValueError(f"num_threads must be 0 (all cores) or a count in 1..{MAX_THREADS}, got {num_threads}")
    return int(num_threads)


def _choice(value, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {choices}, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def soft_argmax_3d(
    heatmaps: np.ndarray, mode: str = "taylor", *, num_threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Soft-argmax over each joint's 3D heatmap volume (C++ kernel).

    Args:
        heatmaps: (N, J, D, H, W) logits, W fastest.
        mode: 'exact' softmax, 'taylor' (f(x) = 1 + x + x^2/2, normalised) or 'taylor_clamped'
            (f(max(x, -1)): monotonic).
        num_threads: threads over the N*J joints; 0 means all cores.

    Returns:
        xyz (N, J, 3): expected (w, h, d) indices in heatmap units; peak (N, J): largest
        normalised probability. Any finite logits (up to +-3.4e38) give finite results; a NaN or +Inf
        logit in a joint's volume gives NaN for that joint (xyz and peak) only, and so does -Inf in
        'taylor' or a volume of nothing but -Inf in 'exact' (-Inf has weight 0 in 'exact' and weight
        f(-1) = 1/2 in 'taylor_clamped').

    Raises:
        TypeError, ValueError: a bad argument, named in the message.
    """
    _choice(mode, "mode", SOFT_ARGMAX_MODES)
    threads = _threads(num_threads)
    x = _as_f32(heatmaps, "heatmaps", 5, "(N, J, D, H, W)")
    return _require_core().soft_argmax_3d(x, mode, threads)


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
        num_threads: 0 means all cores.

    Returns:
        (B, H, N, d) float32. Any finite inputs give the finite softmax-weighted mean of the values (the
        logits never overflow); a NaN or +Inf logit, or a row whose every logit is -Inf, gives a NaN
        row; a key whose logit is -Inf (or in the causal future) is not attended, even if its value is
        NaN; an attended value of +-Inf passes through to its channel (NaN for NaN, or both signs).

    Raises:
        TypeError, ValueError: a bad argument, named in the message; ValueError also when the prior
            factor (1 + prior_scale * prior, or prior_scale * prior) is not finite in float32.
    """
    _choice(prior_mode, "prior_mode", PRIOR_MODES)
    if not isinstance(causal, bool | np.bool_):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    threads = _threads(num_threads)
    scale = _finite_f32(prior_scale, "prior_scale")
    qa = _as_f32(q, "q", 4, "(B, H, N, d)")
    ka = _as_f32(k, "k", 3, "(B, N, d)")
    va = _as_f32(v, "v", 3, "(B, N, d)")
    b, _, n, d = qa.shape
    for name, arr in (("k", ka), ("v", va)):
        if arr.shape != (b, n, d):
            raise ValueError(f"{name} must have shape (B, N, d) = {(b, n, d)} to match q {qa.shape}, got {arr.shape}")
    pa = None
    if prior is not None:
        pa = _as_f32(prior, "prior", 2, "(N, N)")
        if pa.shape != (n, n):
            raise ValueError(f"prior must have shape (N, N) = {(n, n)}, got {pa.shape}")
        with np.errstate(over="ignore", invalid="ignore"):
            factor = np.float32(1.0 if prior_mode == "mul" else 0.0) + np.float32(scale) * pa
        if not np.isfinite(factor).all():
            i, j = (int(t) for t in np.argwhere(~np.isfinite(factor))[0])
            raise ValueError(f"prior and prior_scale * prior must be finite in float32: prior[{i}, {j}] = "
                             f"{pa[i, j]!r}, prior_scale = {scale!r}")
    return _require_core().mqa_prior(qa, ka, va, pa, scale, prior_mode, bool(causal), threads)


def set_kernel_variant(name: str) -> None:
    """Select the kernel variant: 'auto', 'reference' (double-precision scalar), 'avx2', 'avx512', 'neon'.

    Raises:
        TypeError: name is not a str. ValueError: a variant that is unknown or unsupported here.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str (a kernel variant), got {type(name).__name__}")
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
