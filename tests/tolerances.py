"""Tolerances of the C++ kernels (float32) against the PyTorch reference run in float64.

One table, `TOLERANCES`, each entry with the reason for its values; `assert_close` checks NaN/Inf
patterns first, then |got - want| <= atol + rtol * |want|, and reports the largest error.

The reference is computed in float64 (inputs cast to double), so a tolerance covers only the float
error of the kernel. Values are about 10x the largest error measured over every kernel variant of
this machine (reference, avx2, avx512) on the inputs of tests/test_parity.py. They are tighter than
kernels/tests/test_kernels.cc (2e-5 * extent + 1e-5 for coordinates, 2e-5 relative for the peak and
for attention), which compares kernels with each other and adds headroom for other CPUs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tol:
    """An absolute and a relative tolerance with the reason for them."""

    atol: float
    rtol: float
    why: str


TOLERANCES: dict[str, Tol] = {
    "soft_argmax_3d": Tol(
        atol=2e-4,
        rtol=0.0,
        why=(
            "xyz in heatmap units. Float sums of up to 64^3 weights; the error grows with the "
            "extent, not with the coordinate (a coordinate near 0 can carry the whole error), so it "
            "is absolute. Measured max 2.0e-5 (avx2, taylor, 64^3 with ~1% of bins at +1e4, rest "
            "-1e4); 1.1e-5 on the coin-flip +-1e4 volume; <= 2e-6 on random logits."
        ),
    ),
    "soft_argmax_3d_peak": Tol(
        atol=1e-12,
        rtol=6e-6,
        why=(
            "peak probability, relative to itself (it ranges from 1/V = 3.8e-6 to 1). Measured max "
            "relative error 6.4e-7 (taylor, 64^3, +-1e4); atol only guards an exact 0."
        ),
    ),
    "mqa_prior": Tol(
        atol=2e-5,
        rtol=0.0,
        why=(
            "outputs are convex combinations of v ~ N(0, 1) (max|v| ~ 4), so the error scales with "
            "max|v|, not with the output (which can be ~0): absolute. Float dot products of length "
            "<= 17 and softmax sums over <= 243 terms; measured max 1.7e-6 (avx2/avx512, all "
            "variants of the parity grid)."
        ),
    ),
}


def _as_f64(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def assert_close(got, want, key: str) -> None:
    """Asserts `got` matches `want` within `TOLERANCES[key]`.

    Args:
        got: numpy array or torch tensor (the kernel result).
        want: numpy array or torch tensor (the float64 reference).
        key: entry of `TOLERANCES`.

    Raises:
        AssertionError: on a shape mismatch, on differing NaN or +-Inf positions, or when an
            error exceeds atol + rtol * |want|; the message gives the largest error and where.
    """
    tol = TOLERANCES[key]
    g, w = _as_f64(got), _as_f64(want)
    assert g.shape == w.shape, f"{key}: shape {g.shape} != expected {w.shape}"
    g_nan, w_nan = np.isnan(g), np.isnan(w)
    assert np.array_equal(g_nan, w_nan), (
        f"{key}: NaN pattern differs: got NaN at {np.argwhere(g_nan & ~w_nan).tolist()[:5]}, "
        f"expected NaN at {np.argwhere(w_nan & ~g_nan).tolist()[:5]}"
    )
    g_inf, w_inf = np.isinf(g), np.isinf(w)
    assert np.array_equal(g_inf, w_inf) and np.array_equal(g[g_inf], w[w_inf]), (
        f"{key}: Inf pattern differs: got Inf at {np.argwhere(g_inf).tolist()[:5]}, "
        f"expected Inf at {np.argwhere(w_inf).tolist()[:5]}"
    )
    finite = np.isfinite(w)
    if not finite.any():
        return
    g0, w0 = np.where(finite, g, 0.0), np.where(finite, w, 0.0)
    err = np.abs(g0 - w0)
    bound = tol.atol + tol.rtol * np.abs(w0)
    worst = np.unravel_index(np.argmax(err - bound), err.shape)
    assert np.all(err <= bound), (
        f"{key}: max error {err.max():.3g} (atol={tol.atol:g}, rtol={tol.rtol:g}); worst excess at "
        f"{tuple(int(i) for i in worst)}: got {g[worst]!r}, want {w[worst]!r}"
    )
