"""ConvNeXtPose (mobpose.models.convnextpose) and its decoding (mobpose.models.decode).

Model: parameter counts and MACs against DESIGN.md section 2 (and MACs against a count measured by
hooks), shapes, train/eval behaviour, the soft-argmax mode switch and backend dispatch, a few training
steps, input validation. Decode: hand-computed examples, the principal ray, encode/decode round trip,
process_bbox on hand examples, argument errors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import mobpose.functional as F
from macs import conv_macs_by_hooks
from mobpose import ops
from mobpose.models import convnextpose as cnp
from mobpose.models import create_model, list_models
from mobpose.models.decode import decode_pose, encode_pose, heatmap_to_image, process_bbox

# DESIGN.md section 2: params (millions) and GMACs per variant.
DESIGN = {"xs": (3.53, 0.82), "s": (7.44, 1.74), "m": (7.59, 2.80), "l": (8.38, 4.26)}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: these tensors are too small to gain from two, and with the other core busy
    (another test run) two OpenMP threads made each step 100x slower (1 s instead of 10 ms)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def images(b: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


def tiny(**kw) -> cnp.ConvNeXtPose:
    torch.manual_seed(0)
    return cnp.convnextpose_test(**kw)


def sharpen(model: cnp.ConvNeXtPose) -> cnp.ConvNeXtPose:
    """A freshly initialised model as if trained a little: peaked heatmaps, so the soft-argmax modes
    disagree, and BatchNorm statistics of real activations (the initial running variances of 1 let the
    activations fade to 0 in eval mode, making every heatmap flat)."""
    with torch.no_grad():
        model.final.weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(3))
        training = model.training
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = None  # cumulative average: one pass sets the batch statistics
        heat = model.train().forward_heatmaps(images(8, model.config.input_size, seed=9))
        model.final.weight.mul_(5.0 / heat.std())  # logits of standard deviation ~5
        model.train(training)
    return model


# ---- size ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(DESIGN))
def test_param_count_and_macs_match_design(variant) -> None:
    model = getattr(cnp, f"convnextpose_{variant}")()
    params = sum(p.numel() for p in model.parameters())
    want_params, want_gmacs = DESIGN[variant]
    assert params / 1e6 == pytest.approx(want_params, rel=0.01)
    assert cnp.count_macs(model.config) / 1e9 == pytest.approx(want_gmacs, rel=0.03)
    assert model.config.head_layers == 3


def test_count_macs_equals_macs_measured_by_hooks() -> None:
    model = tiny(upsamples=3, depth_bins=5).eval()  # odd sizes: H = W = 16, D = 5
    assert cnp.count_macs(model.config) == conv_macs_by_hooks(model, lambda: model.forward_heatmaps(images(1, 64)))


# ---- shapes and modes ---------------------------------------------------------------------------------


def test_xs_shapes() -> None:
    model = cnp.convnextpose_xs().eval()
    x = images(1, 256)
    with torch.no_grad():
        heat = model.forward_heatmaps(x)
        xyz = model(x)
    assert model.heatmap_size == (32, 32, 32)
    assert heat.shape == (1, 18, 32, 32, 32)
    assert xyz.shape == (1, 18, 3)
    assert bool(((xyz >= 0) & (xyz <= 31)).all())


@pytest.mark.parametrize(("kw", "size"), [({}, (8, 8, 8)), ({"upsamples": 3, "depth_bins": 5}, (5, 16, 16))])
def test_tiny_shapes(kw, size) -> None:
    model = tiny(**kw).eval()
    x = images(2, 64)
    with torch.no_grad():
        heat, xyz = model.forward_heatmaps(x), model(x)
    assert model.heatmap_size == size
    assert heat.shape == (2, 18, *size)
    assert xyz.shape == (2, 18, 3)
    hi = torch.tensor([size[2] - 1, size[1] - 1, size[0] - 1], dtype=xyz.dtype)
    assert bool(((xyz >= 0) & (xyz <= hi)).all())


def test_drop_path_rises_linearly_and_acts_only_in_training() -> None:
    model = sharpen(tiny(drop_path_rate=0.5))
    rates = [b.drop_path.p for stage in model.stages for b in stage]
    np.testing.assert_allclose(rates, np.linspace(0.0, 0.5, 4))
    x = images(4, 64)
    model.train()
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    b = model(x)
    assert a.requires_grad
    assert not torch.allclose(a, b)  # different blocks dropped
    model.eval()
    with torch.no_grad():
        c, d = model(x), model(x)
    torch.testing.assert_close(c, d, rtol=0, atol=0)
    assert not torch.allclose(a, c)


def test_softargmax_mode_switch() -> None:
    model = sharpen(tiny()).eval()
    x = images(2, 64)
    assert model.softargmax_mode == "taylor"
    with torch.no_grad():
        heat = model.forward_heatmaps(x)
        outs = {}
        for mode in F.SOFT_ARGMAX_MODES:
            model.softargmax_mode = mode
            outs[mode] = model(x)
            torch.testing.assert_close(outs[mode], F.soft_argmax_3d(heat, mode), atol=1e-4, rtol=0)
    assert (outs["exact"] - outs["taylor"]).abs().max() > 0.05
    assert (outs["taylor_clamped"] - outs["taylor"]).abs().max() > 0.05
    with pytest.raises(ValueError, match="softargmax_mode"):
        model.softargmax_mode = "softmax"
    assert model.softargmax_mode == "taylor_clamped"
    with pytest.raises(ValueError, match="softargmax_mode"):
        cnp.convnextpose_test(softargmax_mode="argmax")


@pytest.mark.parametrize("mode", F.SOFT_ARGMAX_MODES)
def test_eval_uses_native_kernel_and_matches_torch(mode, monkeypatch) -> None:
    calls = []
    real = ops.soft_argmax_3d

    def spy(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(ops, "soft_argmax_3d", spy)
    model = sharpen(tiny(softargmax_mode=mode))
    x = images(2, 64)
    model.train()
    model(x)
    assert calls == []  # training: always the torch reference
    model.eval()
    with torch.no_grad():
        got = model(x)
        want = F.soft_argmax_3d(model.forward_heatmaps(x).double(), mode, backend="torch")
    assert calls == ([mode] if ops.native_available() else [])
    torch.testing.assert_close(got.double(), want, atol=1e-4, rtol=0)


# ---- training -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["taylor", "exact"])
def test_adamw_l1_steps_reduce_loss(mode) -> None:
    model = tiny(softargmax_mode=mode).train()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 64, 64, generator=g)
    target = torch.rand(4, 18, 3, generator=g) * 6 + 1  # heatmap units in [1, 7]
    # DESIGN's optimiser (AdamW, weight decay 0.1) with a larger lr, to see progress in few steps.
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    losses = []
    for _ in range(25):
        loss = (model(x) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.92 * losses[0], losses


def test_gradients_reach_the_stem() -> None:
    model = sharpen(tiny()).train()
    model(images(2, 64)).sum().backward()
    grad = model.stem[0].weight.grad
    assert grad is not None and bool(torch.isfinite(grad).all()) and grad.abs().sum() > 0


# ---- validation, builders, helpers --------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((1, 3, 64, 64), np.float32),
        torch.zeros(1, 3, 64, 64, dtype=torch.uint8),
        torch.zeros(3, 64, 64),
        torch.zeros(1, 1, 64, 64),
        torch.zeros(1, 3, 64, 32),
        torch.zeros(1, 3, 256, 256),
        torch.zeros(0, 3, 64, 64),
    ],
    ids=["numpy", "uint8", "3d", "channels", "not_square", "wrong_size", "empty"],
)
def test_bad_images_raise(bad) -> None:
    with pytest.raises(ValueError, match=r"images.*\(B, 3, 64, 64\)"):
        tiny()(bad)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_images_raise(value) -> None:
    x = images(1, 64)
    x[0, 1, 5, 7] = value
    model = tiny()
    for fn in (model, model.forward_heatmaps):
        with pytest.raises(ValueError, match="images contains NaN"):
            fn(x)


def test_registry_and_overrides() -> None:
    assert {f"convnextpose_{v}" for v in ("xs", "s", "m", "l", "test")} <= set(list_models("convnextpose"))
    model = create_model("convnextpose_test", head_channels=12, drop_path_rate=0.0)
    assert model.config.head_channels == 12 and model.final.in_channels == 12
    assert model.config.dims == (8, 16, 32, 64)
    with pytest.raises(TypeError):
        create_model("convnextpose_test", no_such_field=1)
    with pytest.raises(ValueError, match="input_size"):
        cnp.convnextpose_test(input_size=48)
    with pytest.raises(ValueError, match="upsamples"):
        cnp.convnextpose_test(upsamples=4)


def test_normalize_images() -> None:
    img = np.zeros((4, 6, 3), np.uint8)
    img[..., 0] = 255
    out = cnp.normalize_images(img)
    assert out.shape == (1, 3, 4, 6) and out.dtype == torch.float32
    torch.testing.assert_close(out[0, :, 2, 3], torch.tensor([(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225]))
    assert cnp.normalize_images(torch.from_numpy(np.stack([img, img]))).shape == (2, 3, 4, 6)
    with pytest.raises(ValueError, match="images"):
        cnp.normalize_images(img.astype(np.float32))


# ---- decode -------------------------------------------------------------------------------------------

K = np.array([1000.0, 1000.0, 500.0, 400.0, 0, 0, 0, 0, 0])
HM = (32, 32, 32)


def test_known_numeric_example() -> None:
    xyz = np.zeros((18, 3))
    xyz[3] = (16.0, 8.0, 24.0)  # joint 3; joint 0 (root) at the heatmap origin
    bbox = np.array([300.0, 200.0, 400.0, 400.0])
    out = decode_pose(xyz, bbox, 5000.0, K, HM)
    # u = 16/32*400 + 300 = 500, v = 8/32*400 + 200 = 300, Z = (24/32*2 - 1)*1000 + 5000 = 5500,
    # X = (500 - 500)/1000*5500 = 0, Y = (300 - 400)/1000*5500 = -550.
    np.testing.assert_allclose(out["pixels"][3], [500.0, 300.0])
    np.testing.assert_allclose(out["camera_mm"][3], [0.0, -550.0, 5500.0])
    # root: u = 300, v = 200, Z = 4000 -> X = -0.2*4000, Y = -0.2*4000.
    np.testing.assert_allclose(out["camera_mm"][0], [-800.0, -800.0, 4000.0])
    np.testing.assert_allclose(out["root_relative_mm"][3], [800.0, 250.0, 1500.0])
    np.testing.assert_allclose(out["root_relative_mm"][0], 0.0)
    np.testing.assert_allclose(heatmap_to_image(xyz, bbox, HM), out["pixels"])
    tout = decode_pose(torch.from_numpy(xyz), bbox, 5000.0, K, HM)
    assert isinstance(tout["camera_mm"], torch.Tensor)
    np.testing.assert_allclose(tout["camera_mm"].numpy(), out["camera_mm"])


def test_bbox_centre_at_root_depth_is_the_principal_ray() -> None:
    w, h = 320.0, 240.0
    bbox = [K[2] - w / 2, K[3] - h / 2, w, h]
    xyz = np.tile([16.0, 16.0, 16.0], (18, 1))  # (W/2, H/2, D/2)
    out = decode_pose(xyz, bbox, 4321.0, K, HM)
    np.testing.assert_allclose(out["camera_mm"], np.tile([0.0, 0.0, 4321.0], (18, 1)), atol=1e-9)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_encode_decode_round_trip(backend) -> None:
    rng = np.random.default_rng(0)
    b, j = 3, 18
    pose = rng.normal(scale=300.0, size=(b, j, 3)) + np.array([100.0, -50.0, 4500.0])
    intr = np.zeros((b, 9))
    intr[:, :2] = rng.uniform(800, 1600, (b, 1))
    intr[:, 2:4] = rng.uniform(300, 600, (b, 2))
    uv = pose[..., :2] / pose[..., 2:] * intr[:, None, :2] + intr[:, None, 2:4]
    lo, hi = uv.min(1), uv.max(1)
    bbox = np.stack([process_bbox(np.r_[lo[i], hi[i] - lo[i]], 2000, 2000) for i in range(b)])
    root_depth = pose[:, 0, 2]
    args = (pose, bbox, root_depth, intr)
    if backend == "torch":
        args = tuple(torch.from_numpy(a) for a in args)
    hm = encode_pose(*args, HM)
    assert hm.shape == (b, j, 3)
    hm_np = np.asarray(hm)
    assert (hm_np[..., :2] > 0).all() and (hm_np[..., :2] < 32).all()  # the crop holds every joint
    out = decode_pose(hm, *args[1:], HM)
    np.testing.assert_allclose(np.asarray(out["camera_mm"]), pose, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out["root_relative_mm"]), pose - pose[:, :1], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(hm_np[:, 0, 2], 16.0)  # the root sits in the middle depth bin


def test_round_trip_breaks_with_distortion() -> None:
    pose = np.array([[[400.0, 300.0, 3000.0], [0.0, 0.0, 3000.0]]])
    k = K.copy()
    k[4] = 0.2
    bbox = [0.0, 0.0, 1000.0, 1000.0]
    out = decode_pose(encode_pose(pose, bbox, 3000.0, k, HM), bbox, 3000.0, k, HM, root=1)
    assert np.abs(out["camera_mm"] - pose).max() > 1.0  # decode back-projects as a pinhole


@pytest.mark.parametrize(
    ("bbox", "size", "ratio", "want"),
    [
        ([100, 100, 200, 100], (640, 480), 1.0, [75, 25, 250, 250]),  # inside: grow h to w, x1.25
        ([-50, 10, 150, 100], (640, 480), 1.0, [-12.5, -2.5, 125, 125]),  # clamped left to 0..100
        ([600, 400, 100, 100], (640, 480), 1.0, [570, 390, 100, 100]),  # clamped to 40x80, w grown
        ([0, 0, 100, 100], (640, 480), 0.75, [-12.5, -100 / 3, 125, 500 / 3]),  # 192x256 input
    ],
)
def test_process_bbox_examples(bbox, size, ratio, want) -> None:
    np.testing.assert_allclose(process_bbox(bbox, *size, aspect_ratio=ratio), want)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([0, 0, np.nan, 10], 640, 480), "bbox"),
        (([0, 0, 0, 10], 640, 480), "bbox"),
        (([0, 0, 10], 640, 480), "bbox"),
        (([700, 10, 50, 50], 640, 480), "bbox"),
        (([-60, 10, 50, 50], 640, 480), "bbox"),
        (([0, 0, 10, 10], 0, 480), "image_width"),
        (([0, 0, 10, 10], 640, float("inf")), "image_height"),
    ],
)
def test_process_bbox_errors(args, match) -> None:
    with pytest.raises(ValueError, match=match):
        process_bbox(*args)


def _decode_kwargs(**over):
    kw = {"xyz_hm": np.full((18, 3), 10.0), "bbox": [0.0, 0.0, 100.0, 100.0], "root_depth": 4000.0,
          "intrinsics": K, "heatmap_size": HM}
    kw.update(over)
    return kw


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"xyz_hm": np.zeros((18, 2))}, "xyz_hm"),
        ({"xyz_hm": np.zeros(3)}, "xyz_hm"),
        ({"xyz_hm": np.full((18, 3), np.nan)}, "xyz_hm"),
        ({"bbox": [0.0, 0.0, 100.0]}, "bbox"),
        ({"bbox": [0.0, np.inf, 100.0, 100.0]}, "bbox"),
        ({"bbox": [0.0, 0.0, -1.0, 100.0]}, "bbox"),
        ({"bbox": np.ones((3, 4)), "xyz_hm": np.zeros((2, 18, 3))}, "bbox"),
        ({"root_depth": np.nan}, "root_depth"),
        ({"intrinsics": K[:8]}, "intrinsics"),
        ({"heatmap_size": (32, 32)}, "heatmap_size"),
        ({"depth_range": 0.0}, "depth_range"),
        ({"root": 18}, "root"),
    ],
)
def test_decode_errors(over, match) -> None:
    with pytest.raises(ValueError, match=match):
        decode_pose(**_decode_kwargs(**over))


def test_encode_rejects_points_behind_the_camera() -> None:
    pose = np.array([[0.0, 0.0, 1000.0], [0.0, 0.0, -5.0]])
    with pytest.raises(ValueError, match="camera_mm"):
        encode_pose(pose, [0, 0, 100, 100], 1000.0, K, HM)


def test_logit_scale_multiplies_the_heatmaps() -> None:
    torch.manual_seed(0)
    base = create_model("convnextpose_test").eval()
    scaled = create_model("convnextpose_test", logit_scale=16.0).eval()
    scaled.load_state_dict(base.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(scaled.forward_heatmaps(x), 16.0 * base.forward_heatmaps(x), rtol=1e-5, atol=1e-6)
        # the same function as folding the factor into the final conv
        base.final.weight.mul_(16.0)
        base.final.bias.mul_(16.0)
        torch.testing.assert_close(scaled(x), base(x), rtol=1e-5, atol=1e-4)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="logit_scale"):
            create_model("convnextpose_test", logit_scale=bad)
