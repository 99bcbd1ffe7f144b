"""The GPU-safe export forms against the training forms (same weights, PyTorch on both sides)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mobpose.export.forms import IPEMGpu, bin_grid, soft_argmax_gpu, taylor_prescale
from mobpose.functional import soft_argmax_3d
from mobpose.models import create_model


def _peaked_model(mode: str, logit_scale: float = 1.0):
    torch.manual_seed(0)
    m = create_model("convnextpose_test", softargmax_mode=mode, logit_scale=logit_scale).eval()
    with torch.no_grad():  # spatially varied, peaked heatmaps, as a trained model's are
        for mod in m.modules():
            if isinstance(mod, torch.nn.Conv2d):
                mod.weight.normal_(0, 1.0 / mod.weight[0].numel() ** 0.5)
        m.final.weight.mul_(8.0)
    return m


@pytest.mark.parametrize("mode", ["taylor", "taylor_clamped", "exact"])
def test_ipem_gpu_form_matches_the_model(mode):
    m = _peaked_model(mode, logit_scale=4.0)
    form = IPEMGpu(m, max_logit=200.0).eval()
    img = torch.randint(0, 256, (1, 64, 64, 3)).float()
    from mobpose.models.convnextpose import normalize_images

    x = normalize_images(img.to(torch.uint8))
    with torch.no_grad():
        ref = m(x)[0]
        hm = m.forward_heatmaps(x)
        out = form(img)
    assert out["joints"].shape == (1, 18 * 3) and out["confidence"].shape == (1, 18)
    torch.testing.assert_close(out["joints"].reshape(18, 3), ref, rtol=1e-4, atol=1e-3)
    assert float(ref.std(dim=0).min()) > 0.1  # peaked heatmaps: x, y and z spread out, not all at the centre
    # confidence = the largest bin probability, as the C++ kernel's peak output
    _, peak = soft_argmax_3d(hm, mode, return_peak=True)
    torch.testing.assert_close(out["confidence"][0], peak[0], rtol=1e-3, atol=1e-6)


def test_heatmap_layout_is_h_w_d():
    m = _peaked_model("taylor")
    form = IPEMGpu(m).eval()
    img = torch.rand(1, 64, 64, 3) * 255
    from mobpose.models.convnextpose import normalize_images

    with torch.no_grad():
        hm = m.forward_heatmaps(normalize_images(img.to(torch.uint8)))[0]  # (J, D, H, W)
        flat = form.heatmaps_flat(img.to(torch.uint8).float())[0]  # (H*W*D, J)
    d, h, w = m.heatmap_size
    torch.testing.assert_close(flat.reshape(h, w, d, 18).permute(3, 2, 0, 1), hm, rtol=1e-4, atol=1e-4)


def test_taylor_prescale_keeps_fp16_sums_finite():
    d = h = w = 32
    grid, extent = bin_grid(d, h, w)
    for max_logit in (10.0, 300.0, 2000.0):
        s = taylor_prescale(max_logit, d * h * w)
        x = torch.full((1, d * h * w, 1), -1.0)
        x[0, 1000:1064, 0] = max_logit  # 64 bins at the peak, the rest at the Taylor minimum
        half, conf_half = soft_argmax_gpu(x.half(), grid.half(), extent.half(), "taylor",
                                           torch.full((1, 1, 1), s).half())
        ref, conf_ref = soft_argmax_gpu(x.double(), grid.double(), extent.double(), "taylor",
                                         torch.ones(1, 1, 1).double())
        assert torch.isfinite(half).all() and torch.isfinite(conf_half).all()
        np.testing.assert_allclose(half.double().numpy(), ref.numpy(), rtol=2e-2, atol=0.05)
        np.testing.assert_allclose(conf_half.double().numpy(), conf_ref.numpy(), rtol=2e-2)
    with pytest.raises(ValueError):
        taylor_prescale(-1.0, d * h * w)


@pytest.mark.parametrize("mode", ["taylor", "exact"])
def test_soft_argmax_gpu_on_a_peaked_volume(mode):
    d, h, w = 4, 3, 5
    x = torch.zeros(1, h * w * d, 2)
    x[0, (1 * w + 3) * d + 2, 0] = 1e3 if mode == "taylor" else 60.0  # joint 0 at x=3, y=1, z=2
    out, conf = soft_argmax_gpu(x, *bin_grid(d, h, w), mode, torch.ones(1, 1, 1))
    torch.testing.assert_close(out[0, :, 0], torch.tensor([3.0, 1.0, 2.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(out[0, :, 1], torch.tensor([(w - 1) / 2, (h - 1) / 2, (d - 1) / 2]))  # flat: centre
    assert conf[0, 0] > 0.99 and abs(conf[0, 1] - 1 / (h * w * d)) < 1e-6


@pytest.mark.parametrize("kw", [{"causal": True}, {"causal": False}, {"causal": True, "prior": "add"},
                                {"causal": False, "prior": "none"}])
def test_prm_gpu_form_matches_the_model(kw):
    from mobpose.export.forms import PRMGpu

    torch.manual_seed(1)
    prm = create_model("prm_test", **kw).eval()
    with torch.no_grad():  # a trained-like PRM: non-zero head, learned Adj2 and a
        for p in prm.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    form = PRMGpu(prm).eval()
    c = prm.config
    poses = torch.randn(1, c.num_frames, c.num_joints, 3) * 300
    with torch.no_grad():
        ref = prm(poses)
        out = form(poses)
    anchor = c.num_frames - 1 if c.causal else c.num_frames // 2
    assert out.shape == (1, c.num_joints * 3)
    assert float((ref[0, anchor] - poses[0, anchor]).abs().max()) > 1.0  # the refinement is not the identity
    torch.testing.assert_close(out.reshape(c.num_joints, 3), ref[0, anchor], rtol=1e-4, atol=1e-2)
