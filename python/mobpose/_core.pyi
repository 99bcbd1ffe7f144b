"""Stub of the compiled extension mobpose._core (cpp/python/core_module.cc).

Inputs are used without copying when they are C-contiguous float32 CPU arrays (numpy arrays or any
DLPack tensor). A wrong dtype raises TypeError; a wrong rank, shape, layout or an empty array raises
ValueError naming the argument. Outputs are new float32 numpy arrays. num_threads < 1 means all
hardware threads.
"""

import numpy as np
import numpy.typing as npt

def soft_argmax_3d(
    heatmaps: npt.ArrayLike, mode: str = "taylor", num_threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Soft-argmax of (N, J, D, H, W) heatmaps.

    mode: 'exact' (softmax), 'taylor' (f(x) = 1 + x + x^2/2) or 'taylor_clamped' (f(max(x, -1))).
    Returns xyz (N, J, 3) as (width, height, depth) indices in heatmap units and peak (N, J), the
    largest normalised probability. A NaN in a joint's volume gives NaN for that joint.
    """

def mqa_prior(
    q: npt.ArrayLike,
    k: npt.ArrayLike,
    v: npt.ArrayLike,
    prior: npt.ArrayLike | None = None,
    prior_scale: float = 1.0,
    prior_mode: str = "mul",
    causal: bool = False,
    num_threads: int = 1,
) -> np.ndarray:
    """Multi-query attention: q (B, H, N, d), k and v (B, N, d), prior (N, N) -> (B, H, N, d).

    logits = q k^T / sqrt(d); 'mul': logits * (1 + prior_scale * prior); 'add': logits +
    prior_scale * prior; causal: token i sees tokens j <= i; softmax over j; out = p v.
    """

def set_kernel_variant(name: str) -> None:
    """Select 'auto', 'reference' (double-precision scalar) or an ISA variant ('avx2', 'avx512', 'neon')."""

def kernel_variant() -> str: ...
def available_kernel_variants() -> list[str]: ...
def kernel_names() -> dict[str, str]: ...
def hardware_threads() -> int: ...
