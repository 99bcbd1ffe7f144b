"""Bad input to mobpose.ops, mobpose._core and mobpose.functional raises a clear error naming it.

Covers wrong rank and shape, mismatched k/v/prior, empty arrays, wrong dtype (TypeError from _core,
silent conversion in ops), non-contiguous arrays (ValueError from _core, a copy in ops), read-only
arrays, unknown mode / prior / backend / kernel-variant strings, non-finite prior scales, and
non-array arguments.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mobpose.functional as F
from mobpose import _core, ops

HM = np.random.default_rng(0).standard_normal((2, 3, 3, 4, 5)).astype(np.float32)
Q = np.random.default_rng(1).standard_normal((2, 3, 5, 4)).astype(np.float32)
K = np.random.default_rng(2).standard_normal((2, 5, 4)).astype(np.float32)
V = np.random.default_rng(3).standard_normal((2, 5, 4)).astype(np.float32)
ADJ = np.random.default_rng(4).standard_normal((5, 5)).astype(np.float32)
F32 = np.float32


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a)


# ---- soft_argmax_3d: ops and _core ---------------------------------------------------------------------

SOFT_ARGMAX_BAD = [
    pytest.param(HM[0], ValueError, "heatmaps must have 5 dimensions", id="rank4"),
    pytest.param(HM[None], ValueError, "heatmaps must have 5 dimensions", id="rank6"),
    pytest.param(np.zeros((1, 1, 2, 2, 0), F32), ValueError, "heatmaps is empty", id="empty-last"),
    pytest.param(np.zeros((1, 0, 2, 2, 2), F32), ValueError, "heatmaps is empty", id="empty-joints"),
    pytest.param("heatmap", TypeError, "heatmaps", id="str"),
    pytest.param({"a": 1.0}, TypeError, "heatmaps", id="dict"),
]


@pytest.mark.parametrize(("x", "exc", "match"), SOFT_ARGMAX_BAD)
def test_ops_soft_argmax_bad_heatmaps(x, exc, match) -> None:
    with pytest.raises(exc, match=match):
        ops.soft_argmax_3d(x)




@pytest.mark.parametrize(
    ("x", "exc", "match"),
    [
        pytest.param(*p.values, id=p.id)
        for p in SOFT_ARGMAX_BAD
    ],
)
def test_core_soft_argmax_bad_heatmaps(x, exc, match) -> None:
    with pytest.raises(exc, match=match):
        _core.soft_argmax_3d(x)


@pytest.mark.parametrize("fn", [ops.soft_argmax_3d, _core.soft_argmax_3d])
def test_soft_argmax_unknown_mode(fn) -> None:
    with pytest.raises(ValueError, match="mode must be .*'exact'.*got 'softmax'"):
        fn(HM, "softmax")


def test_ops_soft_argmax_other_bad_arguments() -> None:
    with pytest.raises(TypeError, match="heatmaps must hold real numbers"):
        ops.soft_argmax_3d([[[[["a", "b"]]]]])
    with pytest.raises(TypeError, match="heatmaps must hold real numbers"):
        ops.soft_argmax_3d(np.ones((1, 1, 1, 1, 2), bool))
    with pytest.raises(TypeError, match="heatmaps must be a numpy array"):
        ops.soft_argmax_3d(t(HM))
    with pytest.raises(TypeError, match="num_threads"):
        ops.soft_argmax_3d(HM, num_threads=1.5)


def test_core_soft_argmax_dtype_and_layout() -> None:
    with pytest.raises(TypeError, match="heatmaps must be float32"):
        _core.soft_argmax_3d(HM.astype(np.float64))
    with pytest.raises(ValueError, match="heatmaps must be C-contiguous"):
        _core.soft_argmax_3d(HM.transpose(0, 1, 2, 4, 3))
    with pytest.raises(ValueError, match="heatmaps must be C-contiguous"):
        _core.soft_argmax_3d(HM[:, :, :, :, ::2])


def test_ops_soft_argmax_converts_dtype_and_layout() -> None:
    want_xyz, want_peak = _core.soft_argmax_3d(HM, "exact")
    for x in (HM.astype(np.float64), HM.tolist()):
        xyz, peak = ops.soft_argmax_3d(x, "exact")
        assert np.array_equal(xyz, want_xyz) and np.array_equal(peak, want_peak)
    strided = np.ascontiguousarray(HM.transpose(0, 1, 2, 4, 3)).transpose(0, 1, 2, 4, 3)
    assert not strided.flags.c_contiguous
    xyz, peak = ops.soft_argmax_3d(strided, "exact")
    assert np.array_equal(xyz, want_xyz) and np.array_equal(peak, want_peak)
    xyz, _ = ops.soft_argmax_3d(np.zeros((1, 1, 2, 2, 3), np.int32), "exact")
    np.testing.assert_allclose(xyz, [[[1.0, 0.5, 0.5]]], atol=1e-6)


def test_core_accepts_read_only_arrays() -> None:
    ro = HM.copy()
    ro.flags.writeable = False
    xyz, peak = _core.soft_argmax_3d(ro, "taylor")
    want = _core.soft_argmax_3d(HM, "taylor")
    assert np.array_equal(xyz, want[0]) and np.array_equal(peak, want[1])
    arrays = [a.copy() for a in (Q, K, V, ADJ)]
    for a in arrays:
        a.flags.writeable = False
    want = _core.mqa_prior(Q, K, V, ADJ, 0.5, "add", True)
    assert np.array_equal(_core.mqa_prior(*arrays, 0.5, "add", True), want)


# ---- mqa_prior: ops and _core -----------------------------------------------------------------------------

SHAPE_K = r"k must have shape \(B, N, d\)"
SHAPE_V = r"v must have shape \(B, N, d\)"
SHAPE_PRIOR = r"prior must have shape \(N, N\)"
MQA_BAD = [
    pytest.param(dict(q=Q[0]), ValueError, "q must have 4 dimensions", id="q-rank"),
    pytest.param(dict(k=K[0]), ValueError, "k must have 3 dimensions", id="k-rank"),
    pytest.param(dict(v=V[None]), ValueError, "v must have 3 dimensions", id="v-rank"),
    pytest.param(dict(k=np.ascontiguousarray(K[:, :4])), ValueError, SHAPE_K, id="k-tokens"),
    pytest.param(dict(v=np.ascontiguousarray(V[..., :3])), ValueError, SHAPE_V, id="v-width"),
    pytest.param(dict(k=np.ascontiguousarray(K[:1])), ValueError, SHAPE_K, id="k-batch"),
    pytest.param(dict(prior=ADJ[:4, :4].copy()), ValueError, SHAPE_PRIOR, id="prior-shape"),
    pytest.param(dict(prior=ADJ[0].copy()), ValueError, "prior must have 2 dimensions", id="prior-rank"),
    pytest.param(dict(k=np.zeros((2, 5, 0), F32)), ValueError, "k is empty", id="k-empty"),
    pytest.param(dict(q=np.zeros((2, 3, 5, 0), F32)), ValueError, "q is empty", id="q-empty"),
    pytest.param(dict(prior_mode="mult"), ValueError, "prior_mode must be .*got 'mult'", id="prior-mode"),
    pytest.param(dict(q="q"), TypeError, "q", id="q-str"),
    pytest.param(dict(prior="adj"), TypeError, "prior", id="prior-str"),
]


def call_mqa(fn, **overrides):
    args = dict(q=Q, k=K, v=V, prior=ADJ, prior_scale=0.5, prior_mode="mul", causal=False)
    args.update(overrides)
    if fn is _core.mqa_prior:
        return fn(args["q"], args["k"], args["v"], args["prior"], args["prior_scale"], args["prior_mode"],
                  args["causal"])
    return fn(args.pop("q"), args.pop("k"), args.pop("v"), args.pop("prior"), **args)


@pytest.mark.parametrize("fn", [ops.mqa_prior, _core.mqa_prior], ids=["ops", "core"])
@pytest.mark.parametrize(("bad", "exc", "match"), MQA_BAD)
def test_mqa_bad_arguments(fn, bad, exc, match) -> None:
    with pytest.raises(exc, match=match):
        call_mqa(fn, **bad)


@pytest.mark.parametrize("scale", [float("inf"), -np.inf, float("nan"), np.float32("nan")])
def test_ops_mqa_non_finite_prior_scale(scale) -> None:
    with pytest.raises(ValueError, match="prior_scale must be finite"):
        call_mqa(ops.mqa_prior, prior_scale=scale)
    with pytest.raises(ValueError, match="prior_scale must be finite"):
        call_mqa(_core.mqa_prior, prior_scale=float(scale))


def test_ops_mqa_prior_scale_overflowing_float32() -> None:
    q, k = np.ones((1, 1, 2, 1), F32), np.ones((1, 2, 1), F32)
    try:
        out = ops.mqa_prior(q, k, k, np.eye(2, dtype=F32), prior_scale=1e39)
    except ValueError as exc:
        assert "prior_scale" in str(exc)
    else:
        assert np.isfinite(out).all()


@pytest.mark.parametrize("scale", ["x", None])
def test_ops_mqa_prior_scale_not_a_number(scale) -> None:
    with pytest.raises((TypeError, ValueError), match="prior_scale"):
        call_mqa(ops.mqa_prior, prior_scale=scale)


def test_mqa_dtype_and_layout() -> None:
    want = _core.mqa_prior(Q, K, V, ADJ, 0.5, "mul", False)
    for name in ("q", "k", "v", "prior"):
        with pytest.raises(TypeError, match=f"{name} must be float32"):
            call_mqa(_core.mqa_prior, **{name: dict(q=Q, k=K, v=V, prior=ADJ)[name].astype(np.float64)})
        assert np.array_equal(call_mqa(ops.mqa_prior, **{name: dict(q=Q, k=K, v=V, prior=ADJ)[name].astype(
            np.float64)}), want)
    k_strided = np.ascontiguousarray(K.transpose(0, 2, 1)).transpose(0, 2, 1)
    with pytest.raises(ValueError, match="k must be C-contiguous"):
        call_mqa(_core.mqa_prior, k=k_strided)
    assert np.array_equal(call_mqa(ops.mqa_prior, k=k_strided), want)
    with pytest.raises(ValueError, match="prior must be C-contiguous"):
        call_mqa(_core.mqa_prior, prior=np.ascontiguousarray(ADJ.T).T)
    assert np.array_equal(call_mqa(ops.mqa_prior, prior=np.ascontiguousarray(ADJ.T).T), want)


# ---- kernel variants -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [ops.set_kernel_variant, _core.set_kernel_variant])
def test_unknown_kernel_variant_lists_available(fn) -> None:
    before = ops.kernel_variant()
    with pytest.raises(ValueError, match="unknown or unsupported kernel variant 'sse9'") as info:
        fn("sse9")
    for name in ["auto", *ops.available_kernel_variants()]:
        assert name in str(info.value)
    with pytest.raises(TypeError, match="name"):
        fn(None)
    assert ops.kernel_variant() == before


def test_core_info_functions() -> None:
    assert _core.hardware_threads() >= 1
    assert _core.kernel_variant() in _core.available_kernel_variants()
    assert ops.native_available()


# ---- functional ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "native", "auto"])
@pytest.mark.parametrize(
    ("x", "kwargs", "exc", "match"),
    [
        pytest.param(HM, {}, TypeError, "heatmaps must be a torch.Tensor", id="numpy"),
        pytest.param(HM.tolist(), {}, TypeError, "heatmaps must be a torch.Tensor", id="list"),
        pytest.param(t(HM).int(), {}, TypeError, "heatmaps must be a floating-point tensor", id="int"),
        pytest.param(t(HM[0]), {}, ValueError, "heatmaps must have 5 dimensions", id="rank"),
        pytest.param(torch.zeros(1, 0, 2, 2, 2), {}, ValueError, "heatmaps is empty", id="empty"),
        pytest.param(t(HM), {"mode": "soft"}, ValueError, "mode must be one of", id="mode"),
    ],
)
def test_functional_soft_argmax_bad_arguments(x, kwargs, exc, match, backend) -> None:
    with pytest.raises(exc, match=match):
        F.soft_argmax_3d(x, backend=backend, **kwargs)


def test_functional_unknown_backend() -> None:
    with pytest.raises(ValueError, match="backend must be one of"):
        F.soft_argmax_3d(t(HM), backend="cuda")
    with pytest.raises(ValueError, match="backend must be one of"):
        F.mqa_prior(t(Q), t(K), t(V), backend="cuda")


@pytest.mark.parametrize("backend", ["torch", "native"])
@pytest.mark.parametrize(
    ("bad", "exc", "match"),
    [
        pytest.param(dict(q=Q), TypeError, "q must be a torch.Tensor", id="q-numpy"),
        pytest.param(dict(k=t(K).long()), TypeError, "k must be a floating-point tensor", id="k-int"),
        pytest.param(dict(v="v"), TypeError, "v must be a torch.Tensor", id="v-str"),
        pytest.param(dict(q=t(Q[0])), ValueError, "q must have 4 dimensions", id="q-rank"),
        pytest.param(dict(k=t(K[:, :4])), ValueError, SHAPE_K, id="k-shape"),
        pytest.param(dict(v=t(V[..., :3])), ValueError, r"v must have shape \(B, N, d\)", id="v-shape"),
        pytest.param(dict(adj=t(ADJ[:4, :4])), ValueError, r"adj must have shape \(N, N\)", id="adj-shape"),
        pytest.param(dict(adj=t(ADJ[None])), ValueError, "adj must have 2 dimensions", id="adj-rank"),
        pytest.param(dict(q=torch.zeros(2, 3, 0, 4)), ValueError, "q is empty", id="q-empty"),
        pytest.param(dict(prior="mult"), ValueError, "prior must be one of", id="prior"),
        pytest.param(dict(scale=torch.ones(2)), ValueError, "scale must be a scalar", id="scale-shape"),
    ],
)
def test_functional_mqa_bad_arguments(bad, exc, match, backend) -> None:
    args = dict(q=t(Q), k=t(K), v=t(V), adj=t(ADJ))
    args.update(bad)
    with pytest.raises(exc, match=match):
        F.mqa_prior(args.pop("q"), args.pop("k"), args.pop("v"), args.pop("adj"), backend=backend, **args)


@pytest.mark.parametrize("backend", ["native", "torch"])
@pytest.mark.parametrize("scale", [float("inf"), 1e39, torch.tensor(float("nan"))])
def test_functional_mqa_non_finite_scale(backend, scale) -> None:
    with pytest.raises(ValueError, match="scale must be finite"):
        F.mqa_prior(t(Q), t(K), t(V), t(ADJ), scale=scale, backend=backend)


def test_functional_mqa_mixed_dtype_adj_torch_backend() -> None:
    native = F.mqa_prior(t(Q), t(K), t(V), t(ADJ).double(), backend="native")
    torch_out = F.mqa_prior(t(Q), t(K), t(V), t(ADJ).double(), backend="torch")
    torch.testing.assert_close(torch_out.float(), native, atol=2e-5, rtol=0)


def test_ops_ragged_list_names_the_argument() -> None:
    with pytest.raises(ValueError, match="heatmaps is not a rectangular array"):
        ops.soft_argmax_3d([[1], [1, 2]])


@pytest.mark.parametrize("causal", ["no", 1, None])
def test_causal_must_be_bool(causal) -> None:
    with pytest.raises(TypeError, match="causal must be a bool"):
        call_mqa(ops.mqa_prior, causal=causal)
    with pytest.raises(TypeError, match="causal must be a bool"):
        F.mqa_prior(t(Q), t(K), t(V), t(ADJ), causal=causal)


def test_taylor_weights_needs_a_tensor() -> None:
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        F.taylor_weights(np.zeros(3))
