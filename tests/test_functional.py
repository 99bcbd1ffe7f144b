"""Properties of mobpose.functional with known answers.

Covers soft_argmax_3d (one-hot and flat volumes, taylor vs taylor_clamped, taylor_weights), autograd
(backward and gradcheck for every mode and prior), the backend dispatch ('auto' vs 'native' vs
'torch'), and mqa_prior semantics: scale 0 = plain attention, causal independence from future tokens,
the additive prior's pull and the multiplicative prior's sign dependence.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mobpose.functional as F
from mobpose import ops

MODES = F.SOFT_ARGMAX_MODES
BACKENDS = ("torch", "native")


def randn(*shape, seed=0, dtype=torch.float32, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=dtype)


def mqa_tensors(b, h, n, d, seed=0):
    """float32 q (B, H, N, d), k and v (B, N, d), adj (N, N)."""
    return (randn(b, h, n, d, seed=seed), randn(b, n, d, seed=seed + 1), randn(b, n, d, seed=seed + 2),
            randn(n, n, seed=seed + 3))


# ---- soft-argmax: known answers -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_hot_exact_gives_that_bins_index(backend) -> None:
    x = torch.zeros(1, 2, 4, 5, 6)
    x[0, 0, 3, 1, 4] = 50.0  # (d, h, w)
    x[0, 1, 0, 4, 0] = 50.0
    xyz, peak = F.soft_argmax_3d(x, "exact", backend=backend, return_peak=True)
    torch.testing.assert_close(xyz, torch.tensor([[[4.0, 1.0, 3.0], [0.0, 4.0, 0.0]]]), atol=1e-6, rtol=0)
    torch.testing.assert_close(peak, torch.ones(1, 2), atol=1e-6, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_flat_volume_gives_centre(mode, backend) -> None:
    d, h, w = 3, 4, 7
    xyz, peak = F.soft_argmax_3d(torch.full((2, 1, d, h, w), -2.5), mode, backend=backend, return_peak=True)
    want = torch.tensor([(w - 1) / 2, (h - 1) / 2, (d - 1) / 2]).expand(2, 1, 3)
    torch.testing.assert_close(xyz, want, atol=1e-6, rtol=0)
    torch.testing.assert_close(peak, torch.full((2, 1), 1 / (d * h * w)), atol=1e-9, rtol=1e-6)


def test_taylor_and_clamped_agree_iff_no_logit_below_minus_one() -> None:
    above = randn(1, 3, 3, 4, 5, seed=1, dtype=torch.float64).abs() - 1.0  # all >= -1
    torch.testing.assert_close(F.soft_argmax_3d(above, "taylor"), F.soft_argmax_3d(above, "taylor_clamped"))
    below = above.clone()
    below[0, 1, 2, 3, 4] = -4.0
    a, b = F.soft_argmax_3d(below, "taylor"), F.soft_argmax_3d(below, "taylor_clamped")
    assert not torch.allclose(a[0, 1], b[0, 1], atol=1e-3)
    torch.testing.assert_close(a[0, [0, 2]], b[0, [0, 2]])  # other joints untouched


def test_taylor_weights_values_and_monotonicity() -> None:
    x = torch.linspace(-6, 6, 241, dtype=torch.float64)
    torch.testing.assert_close(F.taylor_weights(x), 1 + x + x**2 / 2)
    assert F.taylor_weights(torch.tensor(-1.0)).item() == 0.5
    assert F.taylor_weights(torch.tensor(float("-inf"))).item() == float("inf")
    assert (F.taylor_weights(x, clamp=True).diff() >= 0).all()
    assert (F.taylor_weights(x).diff() < 0).any()
    torch.testing.assert_close(F.taylor_weights(x, clamp=True)[x <= -1], torch.full(((x <= -1).sum(),), 0.5,
                                                                                    dtype=torch.float64))


# ---- gradients ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_soft_argmax_backward(mode) -> None:
    x = randn(1, 2, 3, 4, 5, seed=2).requires_grad_()
    xyz, peak = F.soft_argmax_3d(x, mode, return_peak=True)
    (xyz.sum() + peak.sum()).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", MODES)
def test_soft_argmax_gradcheck(mode) -> None:
    x = randn(1, 2, 2, 3, 3, seed=3, dtype=torch.float64, scale=2.0)
    x = torch.where((x + 1).abs() < 0.1, x + 0.3, x).requires_grad_()  # keep off the clamp's kink
    assert torch.autograd.gradcheck(lambda t: F.soft_argmax_3d(t, mode, return_peak=True), (x,))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("prior", F.PRIOR_MODES)
def test_mqa_gradcheck(prior, causal) -> None:
    q, k, v = (randn(*s, seed=i, dtype=torch.float64).requires_grad_()
               for i, s in enumerate([(1, 2, 4, 3), (1, 4, 3), (1, 4, 3)]))
    adj = randn(4, 4, seed=4, dtype=torch.float64).requires_grad_()
    scale = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)

    def fn(q, k, v, adj, scale):
        return F.mqa_prior(q, k, v, adj, scale=scale, prior=prior, causal=causal, backend="auto")

    assert torch.autograd.gradcheck(fn, (q, k, v, adj, scale))
    fn(q, k, v, adj, scale).square().sum().backward()
    assert all(torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0 for t in (q, k, v, adj, scale))


# ---- backend dispatch ---------------------------------------------------------------------------------


@pytest.fixture
def native_calls(monkeypatch):
    """Counts calls into the C++ wrappers of mobpose.ops."""
    calls = []
    for name in ("soft_argmax_3d", "mqa_prior"):
        real = getattr(ops, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(ops, name, spy)
    return calls


def test_auto_uses_native_without_grad(native_calls) -> None:
    x = randn(1, 3, 5, 6, 7, seed=5, scale=3.0)
    got = F.soft_argmax_3d(x, "exact", backend="auto", return_peak=True)
    want = F.soft_argmax_3d(x, "exact", backend="native", return_peak=True)
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    q, k, v, adj = mqa_tensors(1, 4, 9, 8, seed=6)
    assert torch.equal(F.mqa_prior(q, k, v, adj, scale=0.5, backend="auto"),
                       F.mqa_prior(q, k, v, adj, scale=0.5, backend="native"))
    with torch.no_grad():  # no gradient needed even though the input asks for one
        F.soft_argmax_3d(x.requires_grad_(), backend="auto")
    assert native_calls == ["soft_argmax_3d", "soft_argmax_3d", "mqa_prior", "mqa_prior", "soft_argmax_3d"]


def test_auto_falls_back_to_torch_with_grad(native_calls) -> None:
    x = randn(1, 3, 5, 6, 7, seed=5).requires_grad_()
    out = F.soft_argmax_3d(x, "taylor", backend="auto")
    assert out.grad_fn is not None
    torch.testing.assert_close(out, F.soft_argmax_3d(x, "taylor", backend="torch"), atol=0, rtol=0)
    q, k, v = randn(1, 2, 5, 4, seed=1), randn(1, 5, 4, seed=2), randn(1, 5, 4, seed=3)
    scale = torch.tensor(0.5, requires_grad=True)  # only the learnable scale needs a gradient
    assert F.mqa_prior(q, k, v, torch.eye(5), scale=scale, backend="auto").grad_fn is not None
    assert native_calls == []


def test_native_with_grad_raises() -> None:
    x = randn(1, 1, 2, 2, 2).requires_grad_()
    with pytest.raises(ValueError, match="gradient"):
        F.soft_argmax_3d(x, backend="native")
    q, k, v = randn(1, 1, 3, 2), randn(1, 3, 2), randn(1, 3, 2).requires_grad_()
    with pytest.raises(ValueError, match="gradient"):
        F.mqa_prior(q, k, v, backend="native")


# ---- multi-query attention semantics -------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("prior", F.PRIOR_MODES)
def test_mqa_scale_zero_is_plain_attention(prior, backend) -> None:
    q, k, v, adj = mqa_tensors(2, 3, 7, 5, seed=1)
    plain = F.mqa_prior(q, k, v, None, backend=backend)
    torch.testing.assert_close(F.mqa_prior(q, k, v, adj, scale=0.0, prior=prior, backend=backend), plain,
                               atol=1e-6, rtol=0)
    assert not torch.allclose(F.mqa_prior(q, k, v, adj, scale=1.0, prior=prior, backend=backend), plain,
                              atol=1e-3)


def reference_attention(q, k, v, adj, scale, prior, causal):
    """Plain-loop attention, float64, one (head, row) at a time."""
    out = torch.empty(q.shape, dtype=torch.float64)
    b, h, n, d = q.shape
    for bi, hi, i in np.ndindex(b, h, n):
        logits = [float(q[bi, hi, i] @ k[bi, j]) / d**0.5 for j in range(n)]
        if adj is not None:
            logits = [lg * (1 + scale * adj[i, j]) if prior == "mul" else lg + scale * adj[i, j]
                      for j, lg in enumerate(logits)]
        logits = torch.tensor([lg if not causal or j <= i else float("-inf") for j, lg in enumerate(logits)],
                              dtype=torch.float64)
        out[bi, hi, i] = torch.softmax(logits, 0) @ v[bi].double()
    return out


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("prior", F.PRIOR_MODES)
def test_mqa_matches_loop_reference(prior, causal) -> None:
    q, k, v = randn(2, 2, 5, 3, seed=1), randn(2, 5, 3, seed=2), randn(2, 5, 3, seed=3)
    adj = torch.rand(5, 5, generator=torch.Generator().manual_seed(4))
    want = reference_attention(q, k, v, adj, 0.7, prior, causal)
    got = F.mqa_prior(q.double(), k.double(), v.double(), adj.double(), scale=0.7, prior=prior, causal=causal)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_causal_ignores_future_tokens(backend) -> None:
    q, k, v = randn(1, 3, 9, 4, seed=1), randn(1, 9, 4, seed=2), randn(1, 9, 4, seed=3)
    adj = torch.rand(9, 9, generator=torch.Generator().manual_seed(4))
    i = 4
    k2, v2 = k.clone(), v.clone()
    k2[:, i + 1:] = randn(1, 4, 4, seed=5, scale=100.0)
    v2[:, i + 1:] = randn(1, 4, 4, seed=6, scale=100.0)
    for prior in F.PRIOR_MODES:
        a = F.mqa_prior(q, k, v, adj, scale=0.5, prior=prior, causal=True, backend=backend)
        b = F.mqa_prior(q, k2, v2, adj, scale=0.5, prior=prior, causal=True, backend=backend)
        torch.testing.assert_close(a[:, :, : i + 1], b[:, :, : i + 1], atol=1e-6, rtol=0)
        assert not torch.allclose(a[:, :, i + 1:], b[:, :, i + 1:], atol=1e-3)
        noncausal = F.mqa_prior(q, k2, v2, adj, scale=0.5, prior=prior, backend=backend)
        assert not torch.allclose(noncausal[:, :, i], b[:, :, i], atol=1e-3)


def test_causal_future_nan_value_torch_backend() -> None:
    """A causal row never sees a future NaN value, on either backend."""
    q, k, v = randn(1, 2, 4, 3, seed=1), randn(1, 4, 3, seed=2), randn(1, 4, 3, seed=3)
    v[0, 3, 0] = float("nan")
    assert torch.isfinite(F.mqa_prior(q, k, v, causal=True, backend="native")[:, :, :3]).all()
    assert torch.isfinite(F.mqa_prior(q, k, v, causal=True, backend="torch")[:, :, :3]).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_additive_prior_huge_entry_forces_attention(backend) -> None:
    q, k, v = randn(1, 4, 6, 5, seed=1), randn(1, 6, 5, seed=2), randn(1, 6, 5, seed=3)
    adj = torch.zeros(6, 6)
    adj[2, 5] = 1e4
    out = F.mqa_prior(q, k, v, adj, scale=1.0, prior="add", backend=backend)
    torch.testing.assert_close(out[0, :, 2], v[0, 5].expand(4, 5), atol=1e-5, rtol=0)
    assert not torch.allclose(out[0, :, 1], v[0, 5].expand(4, 5), atol=1e-2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_multiplicative_prior_depends_on_logit_sign(backend) -> None:
    """Row 0 has logits (-2, 0, 2) to tokens (0, 1, 2); v = identity so the output is the attention row.

    An edge to token 0 (negative logit) lowers its weight under 'mul' but raises it under 'add'; an
    edge to token 2 (positive logit) raises its weight under both.
    """
    d = 3
    q = torch.tensor([[[[1.0, 0.0, 0.0]] * 3]])
    k = torch.tensor([[[c * d**0.5, 0.0, 0.0] for c in (-2.0, 0.0, 2.0)]])
    v = torch.eye(3).unsqueeze(0)
    plain = F.mqa_prior(q, k, v, backend=backend)[0, 0, 0]
    torch.testing.assert_close(plain, torch.softmax(torch.tensor([-2.0, 0.0, 2.0]), 0))
    edge_neg, edge_pos = torch.zeros(3, 3), torch.zeros(3, 3)
    edge_neg[0, 0] = edge_pos[0, 2] = 1.0
    p_mul = F.mqa_prior(q, k, v, edge_neg, scale=1.0, prior="mul", backend=backend)[0, 0, 0]
    p_add = F.mqa_prior(q, k, v, edge_neg, scale=1.0, prior="add", backend=backend)[0, 0, 0]
    torch.testing.assert_close(p_mul, torch.softmax(torch.tensor([-4.0, 0.0, 2.0]), 0))
    assert p_mul[0] < plain[0] < p_add[0]
    p_mul_pos = F.mqa_prior(q, k, v, edge_pos, scale=1.0, prior="mul", backend=backend)[0, 0, 0]
    assert p_mul_pos[2] > plain[2]


@pytest.mark.parametrize("prior", ["mul", "add"])
@pytest.mark.parametrize("causal", [False, True])
def test_the_kernel_bench_plain_baseline_is_the_same_attention(prior, causal) -> None:
    """python -m mobpose.bench kernels times a plain PyTorch attention (no checks) beside mobpose.functional's:
    both, and the C++ kernel, compute the same thing."""
    from mobpose import _core
    from mobpose.bench.kernels import plain_mqa

    rng = np.random.default_rng(4)
    b, h, n, d = 2, 4, 18, 16
    q, k, v = (rng.standard_normal(s, dtype=np.float32) for s in ((b, h, n, d), (b, n, d), (b, n, d)))
    adj = np.abs(rng.standard_normal((n, n), dtype=np.float32))
    qt, kt, vt, at = (torch.from_numpy(a) for a in (q, k, v, adj))
    future = torch.ones(n, n, dtype=torch.bool).triu(1) if causal else None
    plain = plain_mqa(qt, kt, vt, at, 0.5, prior, future).numpy()
    lib = F.mqa_prior(qt, kt, vt, at, scale=0.5, prior=prior, causal=causal).numpy()
    cpp = _core.mqa_prior(q, k, v, adj, 0.5, prior, causal, 1)
    np.testing.assert_allclose(plain, lib, rtol=0, atol=1e-5)
    np.testing.assert_allclose(cpp, plain, rtol=0, atol=1e-4)
