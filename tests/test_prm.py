"""PRM: shapes, identity start, causality, embeddings, prior forms, native/torch agreement, training, bad input."""

from __future__ import annotations

import pytest
import torch

from mobpose.models import create_model, list_models
from mobpose.models.prm import PRM, PRMConfig, count_prm_macs


def _randomise_head(model: PRM, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.head.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def _poses(b: int, t: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, 17, 3, generator=g) * 200.0


def test_registered_and_small() -> None:
    assert {"prm_small", "prm_test"} <= set(list_models("prm"))
    model = create_model("prm_small")
    params = sum(p.numel() for p in model.parameters())
    assert params < 1_000_000
    macs = count_prm_macs(model.config)
    assert 1e6 < macs < 1e8  # a few MMACs per frame: reported in docs, sanity-bounded here


def test_starts_as_identity_and_keeps_shape() -> None:
    model = create_model("prm_test")
    x = _poses(2, 9)
    y = model(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x)


def test_causal_output_ignores_future_frames() -> None:
    model = create_model("prm_test", causal=True).eval()
    _randomise_head(model)
    a = _poses(1, 9)
    b = a.clone()
    b[:, 6:] += 80.0
    with torch.no_grad():
        ya, yb = model(a), model(b)
    torch.testing.assert_close(ya[:, :6], yb[:, :6], atol=1e-4, rtol=0)
    assert not torch.allclose(ya[:, 6:], yb[:, 6:], atol=1e-3)


def test_centred_output_sees_future_frames() -> None:
    model = create_model("prm_test", causal=False).eval()
    _randomise_head(model)
    a = _poses(1, 9)
    b = a.clone()
    b[:, 6:] += 80.0
    with torch.no_grad():
        ya, yb = model(a), model(b)
    assert not torch.allclose(ya[:, :6], yb[:, :6], atol=1e-3)


@pytest.mark.parametrize("name", ["joint_pos", "frame_pos"])
def test_positional_embeddings_are_applied(name) -> None:
    model = create_model("prm_test").eval()
    _randomise_head(model)
    x = _poses(1, 9)
    with torch.no_grad():
        before = model(x)
        getattr(model, name).add_(torch.randn_like(getattr(model, name)))
        after = model(x)
    assert not torch.allclose(before, after, atol=1e-3)


@pytest.mark.parametrize("prior", ["mul", "add", "none"])
@pytest.mark.parametrize("learn_adj", [True, False])
def test_prior_forms_train_their_parameters(prior, learn_adj) -> None:
    model = create_model("prm_test", prior=prior, learn_adj=learn_adj)
    _randomise_head(model)
    attn = model.blocks[0].attn
    assert (attn.adj_learned is not None) == (learn_adj and prior != "none")
    assert (attn.a is not None) == (prior != "none")
    loss = (model(_poses(2, 9)) ** 2).mean()
    loss.backward()
    if attn.a is not None:
        assert attn.a.grad is not None and attn.a.grad.abs() > 0
    if attn.adj_learned is not None:
        grad = attn.adj_learned.grad
        assert grad is not None and grad.abs().sum() > 0
        torch.testing.assert_close(grad, grad.t())  # only the symmetric part matters


def test_prior_forms_differ() -> None:
    x = _poses(1, 9)
    outs = []
    for prior in ("mul", "add", "none"):
        torch.manual_seed(0)
        model = create_model("prm_test", prior=prior).eval()
        _randomise_head(model)
        with torch.no_grad():
            for blk in model.blocks:
                if blk.attn.a is not None:
                    blk.attn.a.fill_(3.0)
            outs.append(model(x))
    assert not torch.allclose(outs[0], outs[1], atol=1e-3)
    assert not torch.allclose(outs[1], outs[2], atol=1e-3)


def test_ablation_layouts() -> None:
    spatial = create_model("prm_test", blocks="ssss")
    temporal = create_model("prm_test", blocks="tttt")
    assert all(b.attn.adj_fixed.shape == (17, 17) for b in spatial.blocks)
    assert all(b.attn.adj_fixed.shape == (9, 9) for b in temporal.blocks)


@pytest.mark.parametrize("causal", [True, False])
def test_native_inference_matches_torch_training_path(causal) -> None:
    model = create_model("prm_test", causal=causal).eval()
    _randomise_head(model)
    x = _poses(2, 9)
    with torch.no_grad():
        native = model(x)  # no grad: the C++ kernel runs the attention
    with torch.enable_grad():
        reference = model(x.requires_grad_())  # grad: the PyTorch path
    torch.testing.assert_close(native, reference.detach(), atol=2e-3, rtol=1e-5)  # mm


def test_training_reduces_denoising_loss() -> None:
    torch.manual_seed(0)
    model = create_model("prm_test", causal=False)
    clean = _poses(8, 9, seed=3)
    clean = clean[:, :1].expand_as(clean).contiguous()  # static poses: the noise is removable
    noisy = clean + torch.randn_like(clean) * 30.0
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss = (model(noisy) - clean).norm(dim=-1).mean()
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first  # 48 -> 14 mm seen: the temporal attention learns to average


def test_bad_input() -> None:
    model = create_model("prm_test")
    with pytest.raises(ValueError, match=r"poses must have shape \(B, T, J, 3\) = \(B, 9, 17, 3\)"):
        model(torch.zeros(1, 8, 17, 3))
    with pytest.raises(ValueError, match="poses must have shape"):
        model(torch.zeros(1, 9, 16, 3))
    bad = torch.zeros(1, 9, 17, 3)
    bad[0, 3, 2, 1] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        model(bad)
    with pytest.raises(TypeError, match="poses must be a floating-point torch.Tensor"):
        model([[0.0]])


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="blocks"):
        PRMConfig(blocks="sx")
    with pytest.raises(ValueError, match="parents"):
        PRMConfig(num_joints=18)
    with pytest.raises(ValueError, match="divisible"):
        create_model("prm_test", dim=15)
    with pytest.raises(ValueError, match="prior"):
        create_model("prm_test", prior="mult")
