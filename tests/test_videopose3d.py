"""Tests for mobpose.models.videopose3d: receptive fields, shapes, causality, the reference vs the
optimised path with shared weights, parameter counts, a short training run and input errors."""

from __future__ import annotations

import math

import pytest
import torch

from mobpose.camera import project
from mobpose.losses import mpjpe_loss
from mobpose.models import create_model, list_models
from mobpose.models.videopose3d import (
    TemporalModel,
    TemporalModelOptimized,
    make_trajectory_model,
    videopose3d_test,
)

SMALL = {"channels": 16}


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def randomise_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Gives every BatchNorm non-trivial running statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                n = m.num_features
                m.running_mean.copy_(0.3 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.weight.copy_(1 + 0.2 * torch.randn(n, generator=g))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))


def input_support(model: TemporalModel, x: torch.Tensor, t: int) -> list[int]:
    """Input frames on which output frame t depends (non-zero gradient)."""
    x = x.clone().requires_grad_(True)
    model(x)[:, t].sum().backward()
    return torch.nonzero(x.grad.abs().sum(dim=(0, 2, 3))).flatten().tolist()


@pytest.mark.parametrize(
    ("name", "field"),
    [("videopose3d_27", 27), ("videopose3d_81", 81), ("videopose3d_243", 243), ("videopose3d_test", 9)],
)
def test_registered_receptive_fields(name: str, field: int) -> None:
    assert name in list_models("videopose3d")
    model = create_model(name, channels=8)
    assert model.receptive_field == field
    assert type(model) is TemporalModel
    assert type(create_model(name, channels=8, optimized=True)) is TemporalModelOptimized


@pytest.mark.parametrize(("widths", "field"), [((3,), 3), ((3, 3, 3), 27), ((3, 5), 15), ((5, 3, 1), 15)])
@pytest.mark.parametrize("causal", [False, True])
def test_output_shape(widths: tuple[int, ...], field: int, causal: bool) -> None:
    model = TemporalModel(num_joints_in=5, num_joints_out=4, filter_widths=widths, causal=causal, **SMALL)
    assert model.receptive_field == field
    assert model.frame_offset == (field - 1 if causal else (field - 1) // 2)
    for t in (field, field + 7):
        assert model(randn(2, t, 5, 2)).shape == (2, t - field + 1, 4, 3)
    optimized = TemporalModelOptimized(**model.config)
    assert optimized(randn(2, 2 * field + 1, 5, 2)).shape == (2, 2, 4, 3)


@pytest.mark.parametrize("widths", [(3, 3), (3, 3, 3), (3, 5)])
def test_support_is_the_receptive_field(widths: tuple[int, ...]) -> None:
    model = TemporalModel(filter_widths=widths, **SMALL).eval()
    r = model.receptive_field
    assert input_support(model, randn(1, r + 6, 17, 2), t=4) == list(range(4, 4 + r))


@pytest.mark.parametrize("causal", [False, True])
def test_residual_path_aligns_with_estimated_frame(causal: bool) -> None:
    """With the wide convolutions of the blocks zeroed, only the skip connections carry the input:
    output t then sees the expansion window (w_0 frames) ending at (causal) or centred on the frame it
    estimates, t + frame_offset. Wrong residual slicing moves this window."""
    model = TemporalModel(filter_widths=(3, 3, 3), causal=causal, **SMALL).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.conv.weight.zero_()
    t, w0 = 2, model.filter_widths[0]
    frame = t + model.frame_offset
    first = frame - w0 + 1 if causal else frame - w0 // 2
    assert input_support(model, randn(1, model.receptive_field + 4, 17, 2), t) == list(range(first, first + w0))


@pytest.mark.parametrize("causal", [False, True])
def test_causal_output_ignores_future_frames(causal: bool) -> None:
    model = videopose3d_test(causal=causal).eval()
    r, t = model.receptive_field, 3
    frame = t + model.frame_offset  # the input frame that output t estimates
    x = randn(1, r + 8, 17, 2)
    future, past = x.clone(), x.clone()
    future[:, frame + 1 :] += randn(1, x.shape[1] - frame - 1, 17, 2, seed=1)
    past[:, frame] += 1.0
    with torch.no_grad():
        out, out_future, out_past = model(x)[:, t], model(future)[:, t], model(past)[:, t]
    assert not torch.allclose(out, out_past)
    if causal:
        torch.testing.assert_close(out_future, out, rtol=0, atol=0)
    else:
        assert (out_future - out).abs().max() > 1e-3


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("widths", [(3, 3, 3), (3, 5), (1, 3)])
def test_optimized_matches_reference(causal: bool, widths: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    reference = TemporalModel(filter_widths=widths, causal=causal, **SMALL)
    randomise_bn(reference)
    optimized = TemporalModelOptimized(**reference.config)
    assert list(optimized.state_dict()) == list(reference.state_dict())
    optimized.load_state_dict(reference.state_dict())
    reference.eval()
    optimized.eval()
    r = reference.receptive_field
    with torch.no_grad():
        x = randn(3, r, 17, 2, seed=1)
        want = reference(x)
        torch.testing.assert_close(optimized(x), want, rtol=0, atol=1e-5)
        assert want.abs().max() > 0.1
        # Longer input: output k of the optimised path is the window starting at frame k * R.
        x = randn(2, 3 * r + 2, 17, 2, seed=2)
        torch.testing.assert_close(optimized(x), reference(x)[:, ::r][:, :3], rtol=0, atol=1e-5)
        # And the weights go back the other way.
        reference.load_state_dict(optimized.state_dict())


def test_parameter_counts() -> None:
    """Exact count of the architecture at any C, and DESIGN's 8.6 / 12.8 / 17.0 M at C = 1024."""
    c, j = 16, 17
    model = videopose3d_test()
    expected = (j * 2 * c * 3 + 2 * c) + (3 * c * c + c * c + 4 * c) + (c * j * 3 + j * 3)
    assert sum(p.numel() for p in model.parameters()) == expected
    for name, millions in (("videopose3d_27", 8.6), ("videopose3d_81", 12.8), ("videopose3d_243", 17.0)):
        count = sum(p.numel() for p in create_model(name).parameters())
        assert count == pytest.approx(millions * 1e6, rel=0.01), (name, count)


def toy_batch(batch: int, frames: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random 3D poses (m) in front of a fixed camera and their 2D projections, normalised to [-1, 1].

    Returns:
        keypoints (B, T, 17, 2) and root-relative poses (B, T, 17, 3).
    """
    g = torch.Generator().manual_seed(seed)
    base = 0.25 * torch.randn(batch, 1, 17, 3, generator=g)
    motion = 0.02 * torch.randn(batch, frames, 17, 3, generator=g).cumsum(dim=1)
    poses = base + motion
    poses = poses - poses[:, :, :1]
    root = torch.tensor([0.0, 0.0, 4.0]) + 0.3 * torch.randn(batch, 1, 1, 3, generator=g)
    intrinsics = torch.tensor([1000.0, 1000.0, 500.0, 500.0, 0, 0, 0, 0, 0])
    keypoints = (project(poses + root, intrinsics) - 500.0) / 500.0
    return keypoints, poses


def test_training_reduces_mpjpe() -> None:
    torch.manual_seed(0)
    model = videopose3d_test(dropout=0.0)
    keypoints, poses = toy_batch(16, model.receptive_field + 4)
    target = poses[:, model.frame_offset : model.frame_offset + 5]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = mpjpe_loss(model(keypoints), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.6 * losses[0], losses
    # Better than any input-blind guess such as the mean pose (0.52 here): the model reads the 2D.
    mean_pose = mpjpe_loss(target.mean(dim=(0, 1), keepdim=True).expand_as(target), target).item()
    assert losses[-1] < 0.9 * mean_pose, (losses[-1], mean_pose)


@pytest.mark.parametrize("optimized", [False, True])
def test_trajectory_model(optimized: bool) -> None:
    pose_model = videopose3d_test(optimized=optimized, causal=True)
    trajectory = make_trajectory_model(pose_model, dropout=0.1)
    assert type(trajectory) is type(pose_model)
    assert trajectory.config == {**pose_model.config, "num_joints_out": 1, "dropout": 0.1}
    r = pose_model.receptive_field
    frames = r if optimized else r + 5
    assert trajectory(randn(2, frames, 17, 2)).shape == (2, 1 if optimized else 6, 1, 3)


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((9, 17, 2), "keypoints must have 4 dimensions"),
        ((1, 9, 16, 2), "keypoints must have J=17"),
        ((1, 9, 17, 3), "keypoints must have 2 coordinates"),
        ((1, 8, 17, 2), "keypoints: sequence of 8 frames is shorter than the receptive field 9"),
    ],
)
def test_bad_input_shapes(shape: tuple[int, ...], match: str) -> None:
    model = videopose3d_test()
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(shape))


def test_bad_input_values_and_config() -> None:
    model = videopose3d_test()
    x = torch.zeros(1, 9, 17, 2)
    x[0, 4, 3, 1] = float("nan")
    with pytest.raises(ValueError, match="keypoints contain NaN"):
        model(x)
    with pytest.raises(TypeError, match="keypoints"):
        model(x.numpy())
    with pytest.raises(ValueError, match="filter_widths"):
        TemporalModel(filter_widths=(3, 4))
    with pytest.raises(ValueError, match="dropout"):
        TemporalModel(dropout=1.0)
