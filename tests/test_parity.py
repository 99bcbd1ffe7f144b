"""Parity of the C++ kernels (mobpose.ops, functional backend='native') with the PyTorch reference.

Covers soft_argmax_3d (xyz and peak) over a grid of shapes, modes and adversarial fills; mqa_prior
over tokens, heads, head widths, both priors and causal masking with skeleton adjacencies; every
kernel variant of this CPU; kernel_names per variant; and NaN isolation per joint on both paths.
The reference runs in float64; tolerances come from tests/tolerances.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import mobpose.functional as F
from mobpose import ops
from mobpose.skeleton import H36M_17, H36M_18, temporal_adjacency
from tolerances import TOLERANCES, assert_close

VARIANTS = ops.available_kernel_variants()
FILLS = ("random", "peak", "flat", "huge")


def make_heatmaps(shape: tuple[int, ...], fill: str, seed: int = 0) -> np.ndarray:
    """float32 logits: random (scale 3), one sharp peak per joint, flat, or +-1e4 coin flips."""
    rng = np.random.default_rng(seed)
    if fill == "random":
        return (3.0 * rng.standard_normal(shape)).astype(np.float32)
    if fill == "peak":
        x = (0.1 * rng.standard_normal(shape) - 3.0).astype(np.float32)
        flat = x.reshape(shape[0] * shape[1], -1)
        flat[np.arange(flat.shape[0]), rng.integers(flat.shape[1], size=flat.shape[0])] = 50.0
        return x
    if fill == "flat":
        return np.full(shape, 0.25, np.float32)
    if fill == "huge":
        return np.where(rng.random(shape) < 0.5, 1e4, -1e4).astype(np.float32)
    raise AssertionError(fill)


def reference_soft_argmax(x: np.ndarray, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    return F.soft_argmax_3d(torch.from_numpy(x).double(), mode, backend="torch", return_peak=True)


def check_soft_argmax(x: np.ndarray, mode: str) -> None:
    xyz, peak = ops.soft_argmax_3d(x, mode)
    want_xyz, want_peak = reference_soft_argmax(x, mode)
    assert xyz.dtype == np.float32 and xyz.shape == (*x.shape[:2], 3)
    assert_close(xyz, want_xyz, "soft_argmax_3d")
    assert_close(peak, want_peak, "soft_argmax_3d_peak")


# ---- the tolerance helper itself -------------------------------------------------------------------


def test_assert_close_rejects_nan_inf_mismatch_and_large_error() -> None:
    want = np.array([1.0, 2.0, np.nan, np.inf])
    assert_close(want.copy(), want, "mqa_prior")
    for bad in ([1.0, 2.0, 0.0, np.inf], [1.0, np.nan, np.nan, np.inf], [1.0, 2.0, np.nan, 5.0],
                [1.0, 2.0, np.nan, -np.inf], [1.0, 2.0 + 10 * TOLERANCES["mqa_prior"].atol, np.nan, np.inf]):
        with pytest.raises(AssertionError, match="mqa_prior"):
            assert_close(np.array(bad), want, "mqa_prior")


# ---- soft-argmax -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("mode", F.SOFT_ARGMAX_MODES)
@pytest.mark.parametrize("shape", [(1, 18, 32, 32, 32), (2, 3, 3, 5, 7), (1, 1, 1, 1, 1), (1, 2, 4, 9, 17)])
def test_soft_argmax_parity(shape, mode, fill) -> None:
    check_soft_argmax(make_heatmaps(shape, fill, seed=len(fill)), mode)


@pytest.mark.slow
def test_soft_argmax_parity_64cube() -> None:
    """The ConvNeXtPose size, once: joints 0-5 random, 6-11 peaked, 12-13 flat, 14-17 +-1e4."""
    shape = (1, 18, 64, 64, 64)
    x = make_heatmaps(shape, "random")
    x[:, 6:12] = make_heatmaps((1, 6, 64, 64, 64), "peak", seed=1)
    x[:, 12:14] = 0.25
    x[:, 14:] = make_heatmaps((1, 4, 64, 64, 64), "huge", seed=2)
    for mode in F.SOFT_ARGMAX_MODES:
        check_soft_argmax(x, mode)


@pytest.mark.parametrize("mode", F.SOFT_ARGMAX_MODES)
def test_soft_argmax_native_backend_matches_torch(mode) -> None:
    x = torch.from_numpy(make_heatmaps((2, 3, 5, 6, 7), "random", seed=3))
    xyz, peak = F.soft_argmax_3d(x, mode, backend="native", return_peak=True)
    want_xyz, want_peak = F.soft_argmax_3d(x.double(), mode, backend="torch", return_peak=True)
    assert xyz.dtype == torch.float32
    assert_close(xyz, want_xyz, "soft_argmax_3d")
    assert_close(peak, want_peak, "soft_argmax_3d_peak")


@pytest.mark.parametrize("backend", ["native", "torch"])
@pytest.mark.parametrize("mode", F.SOFT_ARGMAX_MODES)
def test_nan_in_one_joint_gives_nan_for_that_joint_only(mode, backend) -> None:
    x = make_heatmaps((2, 3, 3, 4, 5), "random", seed=4)
    x[1, 2, 1, 2, 3] = np.nan
    xyz, peak = F.soft_argmax_3d(torch.from_numpy(x), mode, backend=backend, return_peak=True)
    nan_joint = np.zeros((2, 3), bool)
    nan_joint[1, 2] = True
    assert torch.isnan(xyz).all(-1).numpy().tolist() == nan_joint.tolist()
    assert torch.isnan(peak).numpy().tolist() == nan_joint.tolist()
    assert torch.isfinite(xyz[~torch.from_numpy(nan_joint)]).all()


# ---- multi-query attention ----------------------------------------------------------------------------


def adjacency(n: int, rng: np.random.Generator) -> np.ndarray:
    """Skeleton (N=17, 18) or temporal adjacency plus a small learnable-like random part."""
    base = {17: H36M_17.spatial_adjacency(), 18: H36M_18.spatial_adjacency()}.get(n)
    if base is None:
        base = temporal_adjacency(n)
    return (base + 0.1 * rng.standard_normal((n, n))).astype(np.float32)


def mqa_inputs(batch: int, heads: int, n: int, d: int, seed: int):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((batch, heads, n, d)).astype(np.float32)
    k = rng.standard_normal((batch, n, d)).astype(np.float32)
    v = rng.standard_normal((batch, n, d)).astype(np.float32)
    return q, k, v, adjacency(n, rng)


def reference_mqa(q, k, v, adj, **kw) -> torch.Tensor:
    t = [None if a is None else torch.from_numpy(a).double() for a in (q, k, v, adj)]
    return F.mqa_prior(*t, backend="torch", **kw)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("prior", F.PRIOR_MODES)
@pytest.mark.parametrize("d", [8, 16, 17])
@pytest.mark.parametrize("heads", [1, 4, 8])
@pytest.mark.parametrize("n", [17, 18, 27, 81, 243])
def test_mqa_prior_parity(n, heads, d, prior, causal) -> None:
    q, k, v, adj = mqa_inputs(2, heads, n, d, seed=n * 100 + heads * 10 + d)
    got = ops.mqa_prior(q, k, v, adj, prior_scale=0.7, prior_mode=prior, causal=causal)
    assert got.dtype == np.float32 and got.shape == q.shape
    assert_close(got, reference_mqa(q, k, v, adj, scale=0.7, prior=prior, causal=causal), "mqa_prior")


@pytest.mark.parametrize("causal", [False, True])
def test_mqa_no_prior_parity(causal) -> None:
    q, k, v, _ = mqa_inputs(2, 4, 27, 16, seed=5)
    got = F.mqa_prior(*map(torch.from_numpy, (q, k, v)), causal=causal, backend="native")
    assert_close(got, reference_mqa(q, k, v, None, causal=causal), "mqa_prior")


# ---- every kernel variant -------------------------------------------------------------------------------


def test_every_variant_matches_reference(variant) -> None:
    assert ops.kernel_variant() == variant
    for shape, mode, fill in itertools.product(
        [(2, 3, 3, 5, 7), (1, 2, 4, 9, 17), (1, 1, 1, 1, 1)], F.SOFT_ARGMAX_MODES, FILLS
    ):
        check_soft_argmax(make_heatmaps(shape, fill, seed=6), mode)
    for (n, heads, d), prior, causal in itertools.product(
        [(17, 4, 17), (81, 1, 8), (18, 8, 16)], F.PRIOR_MODES, [False, True]
    ):
        q, k, v, adj = mqa_inputs(1, heads, n, d, seed=7)
        got = ops.mqa_prior(q, k, v, adj, prior_scale=0.7, prior_mode=prior, causal=causal)
        assert_close(got, reference_mqa(q, k, v, adj, scale=0.7, prior=prior, causal=causal), "mqa_prior")


def test_kernel_names_follow_the_variant() -> None:
    names = {}
    try:
        for name in VARIANTS:
            ops.set_kernel_variant(name)
            assert ops.kernel_variant() == name
            names[name] = ops.kernel_names()
        ops.set_kernel_variant("auto")
        assert ops.kernel_variant() == VARIANTS[-1]  # the best variant is listed last
        assert ops.kernel_names() == names[VARIANTS[-1]]
    finally:
        ops.set_kernel_variant("auto")
    assert VARIANTS[0] == "reference"
    keys = {"softargmax3d_exact", "softargmax3d_taylor", "softargmax3d_taylor_clamped",
            "mqa_noprior", "mqa_mulprior", "mqa_addprior", "exp",
            "mqarows_noprior", "mqarows_mulprior", "mqarows_addprior", "linear", "layernorm"}  # the native PRM's
    for name, table in names.items():
        assert set(table) == keys
        assert len(set(table.values())) == len(keys), f"{name}: kernel names not distinct"
    for a, b in itertools.combinations(VARIANTS, 2):
        assert all(names[a][key] != names[b][key] for key in keys), (a, b)
