"""Tests for mobpose.losses: known answers on hand-built tensors, agreement with the numpy metrics,
gradients, and input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mobpose import metrics
from mobpose.losses import (
    PRM_JOINT_WEIGHTS,
    bone_length_loss,
    l1_coordinate_loss,
    mpjpe_loss,
    n_mpjpe_loss,
    prm_loss,
    reprojection_loss,
    velocity_loss,
    weighted_mpjpe_loss,
)
from mobpose.skeleton import H36M_17


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def unit_bone_pose() -> torch.Tensor:
    """(17, 3) H36M_17 pose whose every bone has length 1 (each joint one unit from its parent)."""
    directions = torch.eye(3, dtype=torch.float64)
    pose = torch.zeros(17, 3, dtype=torch.float64)
    for j, p in H36M_17.edges:
        pose[j] = pose[p] + directions[j % 3]
    return pose


def test_prm_joint_weights() -> None:
    assert PRM_JOINT_WEIGHTS == (1, 1, 2.5, 2.5, 1, 2.5, 2.5, 1, 1, 1, 1.5, 1.5, 4, 4, 1.5, 4, 4)


def test_mpjpe_and_weighted_known_answer() -> None:
    pred = torch.zeros(1, 2, 3)
    target = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]])
    assert mpjpe_loss(pred, target).item() == pytest.approx(3.0)
    assert weighted_mpjpe_loss(pred, target, [1.0, 3.0]).item() == pytest.approx((5 + 3) / 2)
    assert weighted_mpjpe_loss(pred, target, torch.ones(2)).item() == pytest.approx(3.0)


def test_velocity_known_answer() -> None:
    t = torch.arange(5.0).reshape(1, 5, 1, 1)
    target = t * torch.tensor([0.0, 0.0, 2.0]).expand(1, 5, 3, 3)  # moves 2 along z per frame
    pred = torch.zeros_like(target) + 7.0  # static: its position offset does not matter
    assert velocity_loss(pred, target).item() == pytest.approx(2.0)
    # Frames on axis 0 instead of 1.
    assert velocity_loss(pred.transpose(0, 1), target.transpose(0, 1), frame_axis=0).item() == pytest.approx(2)
    assert velocity_loss(target + 7.0, target).item() == pytest.approx(0.0)


def test_n_mpjpe_known_answer() -> None:
    target = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]])
    assert n_mpjpe_loss(2.5 * target, target).item() == pytest.approx(0.0, abs=1e-7)
    pred = torch.tensor([[[2.0, 0, 0], [0, 0, 2.0]]])  # s = 2 / 8: rows (0.5,0,0), (0,0,0.5)
    assert n_mpjpe_loss(pred, target).item() == pytest.approx((0.5 + np.sqrt(1.25)) / 2)
    assert n_mpjpe_loss(torch.zeros(1, 2, 3), target).item() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("loss", "metric"),
    [
        (mpjpe_loss, metrics.mpjpe),
        (n_mpjpe_loss, metrics.n_mpjpe),
        (lambda p, t: velocity_loss(p, t, frame_axis=1), lambda p, t: metrics.mpjve(p, t, axis=1)),
    ],
)
def test_losses_match_numpy_metrics(loss, metric) -> None:
    pred, target = randn(3, 6, 17, 3, seed=1), randn(3, 6, 17, 3, seed=2)
    assert loss(pred, target).item() == pytest.approx(metric(pred.numpy(), target.numpy()), rel=1e-12)


def test_l1_coordinate_known_answer() -> None:
    target = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])
    pred = torch.zeros_like(target)
    assert l1_coordinate_loss(pred, target).item() == pytest.approx(21 / 6)
    z_unknown = torch.tensor([[[1, 1, 0], [1, 1, 0]]], dtype=torch.bool)
    assert l1_coordinate_loss(pred, target, z_unknown).item() == pytest.approx((1 + 2 + 4 + 5) / 4)
    joint_mask = torch.tensor([[1.0, 0.0]])
    assert l1_coordinate_loss(pred, target, joint_mask).item() == pytest.approx(2.0)
    assert l1_coordinate_loss(pred, target, torch.zeros(1, 2)).item() == 0.0


def test_bone_length_known_answer() -> None:
    pose = unit_bone_pose()
    assert torch.allclose(torch.from_numpy(H36M_17.bone_lengths(pose.numpy())), torch.ones(16, dtype=pose.dtype))
    pred = torch.stack([2 * pose, 4 * pose])  # mean bone length 3
    assert bone_length_loss(pred, H36M_17, torch.ones(16)).item() == pytest.approx(4.0)
    assert bone_length_loss(pred, H36M_17, reference=pose[None, None]).item() == pytest.approx(4.0)
    assert bone_length_loss(pred, H36M_17, torch.ones(16), squared=False).item() == pytest.approx(2.0)
    lengths = torch.full((16,), 3.0, dtype=torch.float64)
    lengths[0] = 1.0
    assert bone_length_loss(pred, H36M_17, lengths).item() == pytest.approx(4 / 16)


def test_reprojection_known_answer() -> None:
    intrinsics = torch.tensor([100.0, 100.0, 50.0, 40.0, 0, 0, 0, 0, 0], dtype=torch.float64)
    pred = torch.zeros(2, 3, 17, 3, dtype=torch.float64)
    pred[..., 1, 0] = 1.0  # joint 1 one unit right of the root
    trajectory = torch.zeros(2, 3, 1, 3, dtype=torch.float64)
    trajectory[..., 2] = 10.0
    keypoints = torch.zeros(2, 3, 17, 2, dtype=torch.float64)
    keypoints[..., 0], keypoints[..., 1] = 50.0, 40.0
    keypoints[..., 1, 0] = 60.0  # u = 100 * 1 / 10 + 50
    assert reprojection_loss(pred, trajectory, keypoints, intrinsics).item() == pytest.approx(0.0)
    shifted = keypoints + torch.tensor([3.0, 4.0], dtype=torch.float64)
    for k in (intrinsics, intrinsics.expand(2, 9), intrinsics.expand(2, 3, 9)):
        assert reprojection_loss(pred, trajectory, shifted, k).item() == pytest.approx(5.0)
        assert reprojection_loss(pred, trajectory[..., 0, :], shifted, k).item() == pytest.approx(5.0)
    # Per-camera intrinsics: the second camera has twice the focal length.
    cams = torch.stack([intrinsics, intrinsics * torch.tensor([2, 2, 1, 1, 1, 1, 1, 1, 1])])
    loss = reprojection_loss(pred, trajectory, keypoints, cams)
    assert loss.item() == pytest.approx(10.0 / 17 / 2)  # joint 1 of camera 2 lands at u = 70


def test_prm_loss_known_answer() -> None:
    mean_w = sum(PRM_JOINT_WEIGHTS) / 17
    target = torch.zeros(2, 4, 17, 3)
    offset = target + torch.tensor([3.0, 4.0, 0.0])  # static error 5, no velocity error
    assert prm_loss(offset, target).item() == pytest.approx(5 * mean_w)
    moving = torch.arange(4.0).reshape(1, 4, 1, 1) * torch.tensor([0.0, 0.0, 1.0]).expand(2, 4, 17, 3)
    assert prm_loss(moving, target).item() == pytest.approx(1.5 * mean_w + 2.0)
    assert prm_loss(moving, target, velocity_weight=0.5).item() == pytest.approx(1.5 * mean_w + 0.5)
    assert prm_loss(moving[:, :1], target[:, :1], velocity_weight=0).item() == 0.0


def _all_losses(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    trajectory = torch.tensor([0.0, 0.0, 5.0], dtype=pred.dtype).expand(*pred.shape[:-2], 1, 3)
    intrinsics = torch.tensor([100.0, 100.0, 50.0, 50.0, 0.1, 0, 0, 0, 0], dtype=pred.dtype)
    keypoints = 50 + 10 * randn(*pred.shape[:-1], 2, seed=5, dtype=pred.dtype)
    return {
        "mpjpe": mpjpe_loss(pred, target),
        "weighted": weighted_mpjpe_loss(pred, target, PRM_JOINT_WEIGHTS),
        "velocity": velocity_loss(pred, target),
        "n_mpjpe": n_mpjpe_loss(pred, target),
        "l1": l1_coordinate_loss(pred, target, torch.ones(pred.shape[:-1], dtype=torch.bool)),
        "bone": bone_length_loss(pred, H36M_17, reference=target),
        "reprojection": reprojection_loss(pred, trajectory, keypoints, intrinsics),
        "prm": prm_loss(pred, target),
    }


@pytest.mark.parametrize("name", ["mpjpe", "weighted", "velocity", "n_mpjpe", "l1", "bone", "reprojection", "prm"])
def test_gradients_flow(name: str) -> None:
    target = randn(2, 4, 17, 3, seed=3)
    pred = randn(2, 4, 17, 3, seed=4).requires_grad_(True)
    _all_losses(pred, target)[name].backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    # At the optimum (pred == target) the norms have finite (zero) gradients.
    exact = target.clone().requires_grad_(True)
    loss = _all_losses(exact, target)[name]
    loss.backward()
    assert torch.isfinite(exact.grad).all()


def test_gradcheck_float64() -> None:
    target = randn(1, 3, 17, 3, seed=6)
    pred = randn(1, 3, 17, 3, seed=7).requires_grad_(True)
    for name in ("mpjpe", "n_mpjpe", "bone", "reprojection", "prm"):
        assert torch.autograd.gradcheck(lambda p, n=name: _all_losses(p, target)[n], (pred,)), name


def test_bad_inputs() -> None:
    a = torch.zeros(2, 4, 17, 3)
    with pytest.raises(ValueError, match="target must have the shape"):
        mpjpe_loss(a, a[:, :3])
    with pytest.raises(ValueError, match="pred must have rank"):
        mpjpe_loss(a[..., :2], a[..., :2])
    with pytest.raises(TypeError, match="target must be a torch.Tensor"):
        mpjpe_loss(a, a.numpy())
    with pytest.raises(TypeError, match="pred must be a floating-point"):
        n_mpjpe_loss(a.long(), a)
    with pytest.raises(ValueError, match="pred is empty"):
        mpjpe_loss(a[:0], a[:0])
    with pytest.raises(ValueError, match="weights must have shape"):
        weighted_mpjpe_loss(a, a, torch.ones(16))
    with pytest.raises(ValueError, match="frame_axis"):
        velocity_loss(a, a, frame_axis=2)
    with pytest.raises(ValueError, match="at least 2 frames"):
        velocity_loss(a[:, :1], a[:, :1])
    with pytest.raises(ValueError, match="at least 2 frames"):
        prm_loss(a[:, :1], a[:, :1])
    with pytest.raises(ValueError, match="mask must have shape"):
        l1_coordinate_loss(a, a, torch.ones(2, 4, 17, 2))
    with pytest.raises(ValueError, match="pred must have J=17"):
        bone_length_loss(a[..., :16, :], H36M_17, torch.ones(15))
    with pytest.raises(ValueError, match="exactly one"):
        bone_length_loss(a, H36M_17)
    with pytest.raises(ValueError, match="exactly one"):
        bone_length_loss(a, H36M_17, torch.ones(16), reference=a)
    with pytest.raises(ValueError, match="target_lengths must have shape"):
        bone_length_loss(a, H36M_17, torch.ones(17))
    traj, kp, k = torch.ones(2, 4, 1, 3), torch.zeros(2, 4, 17, 2), torch.ones(9)
    with pytest.raises(ValueError, match="trajectory must have shape"):
        reprojection_loss(a, torch.ones(2, 4, 2, 3), kp, k)
    with pytest.raises(ValueError, match="keypoints_2d must have shape"):
        reprojection_loss(a, traj, kp[:, :, :16], k)
    with pytest.raises(ValueError, match="intrinsics must have"):
        reprojection_loss(a, traj, kp, torch.ones(3, 9))
    with pytest.raises(ValueError, match="intrinsics must have"):
        reprojection_loss(a, traj, kp, torch.ones(8))


def test_heatmap_marginal_ce_prefers_heatmaps_peaked_at_the_target() -> None:
    from mobpose.functional import soft_argmax_3d
    from mobpose.losses import heatmap_marginal_ce

    # (B=1, J=2, 3): x, y, z in bins, 3 bins from the borders (a Gaussian cut by a border has its mean moved)
    target = torch.tensor([[[4.0, 3.0, 4.0], [4.5, 3.0, 3.5]]])
    logits = torch.zeros(1, 2, 8, 7, 9, requires_grad=True)  # D=8, H=7, W=9
    flat_loss = heatmap_marginal_ce(logits, target).item()
    opt = torch.optim.SGD([logits], lr=50.0)
    for _ in range(100):
        opt.zero_grad()
        heatmap_marginal_ce(logits, target).backward()
        opt.step()
    assert heatmap_marginal_ce(logits, target).item() < flat_loss - 0.5  # the minimum is the Gaussian's entropy, ~1.42
    xyz = soft_argmax_3d(logits.detach(), "exact")
    torch.testing.assert_close(xyz, target, atol=0.3, rtol=0)
    # masked entries do not count; shapes are named
    mask = torch.tensor([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]])
    wrong = target.clone()
    wrong[0, 1] = torch.tensor([8.0, 0.0, 0.0])
    with torch.no_grad():
        torch.testing.assert_close(heatmap_marginal_ce(logits, wrong, mask), heatmap_marginal_ce(logits, target, mask))
    with pytest.raises(ValueError, match="logits must have shape"):
        heatmap_marginal_ce(torch.zeros(1, 2, 8, 7), target)
    with pytest.raises(ValueError, match="target must have shape"):
        heatmap_marginal_ce(logits, target[:, :1])
