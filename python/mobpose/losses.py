"""Training losses (PyTorch, differentiable): the torch counterparts of `mobpose.metrics`, the
semi-supervised terms of VideoPose3D and the PRM loss.

Poses are (..., J, 3) tensors (any leading dims, e.g. B batch, T frames) in the training unit (mm);
pass root-relative poses where a metric would want them. Every loss returns a scalar tensor averaged
over all leading dims and joints. Inputs are checked for type and shape (TypeError for a non-float
tensor, ValueError naming the argument for a bad shape); values are not checked, so NaN propagates to
the loss instead of forcing a device sync.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from .camera import project
from .skeleton import Skeleton

__all__ = [
    "PRM_JOINT_WEIGHTS",
    "bone_length_loss",
    "heatmap_marginal_ce",
    "l1_coordinate_loss",
    "mpjpe_loss",
    "n_mpjpe_loss",
    "prm_loss",
    "reprojection_loss",
    "velocity_loss",
    "weighted_mpjpe_loss",
]

logger = logging.getLogger(__name__)

# fmt: off
PRM_JOINT_WEIGHTS: tuple[float, ...] = (
    1.0, 1.0, 2.5, 2.5, 1.0, 2.5, 2.5, 1.0, 1.0, 1.0, 1.5, 1.5, 4.0, 4.0, 1.5, 4.0, 4.0,
)
# fmt: on
"""Per-joint weights of the PRM loss in H36M_17 order (MixSTE/KTPFormer, DESIGN section 4): 1 for the
pelvis, hips and trunk, 1.5 for the head top and shoulders, 2.5 for knees and ankles, 4 for elbows and
wrists."""


def _check(x: torch.Tensor, name: str, coords: int = 3, min_rank: int = 2) -> None:
    """Checks that `x` is a non-empty floating-point (..., J, coords) tensor of rank >= min_rank."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    shape = tuple(x.shape)
    if x.dim() < min_rank or shape[-1] != coords:
        raise ValueError(f"{name} must have rank >= {min_rank} and last dim {coords}, got shape {shape}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty: shape {shape}")


def _check_pair(pred: torch.Tensor, target: torch.Tensor, min_rank: int = 2) -> None:
    _check(pred, "pred", min_rank=min_rank)
    _check(target, "target", min_rank=min_rank)
    if pred.shape != target.shape:
        raise ValueError(f"target must have the shape of pred {tuple(pred.shape)}, got {tuple(target.shape)}")


def _joint_weights(weights: torch.Tensor | Sequence[float], pred: torch.Tensor) -> torch.Tensor:
    w = torch.as_tensor(weights, dtype=pred.dtype, device=pred.device)
    if w.shape != pred.shape[-2:-1]:
        raise ValueError(f"weights must have shape ({pred.shape[-2]},) (one per joint), got {tuple(w.shape)}")
    return w


def _frame_axis(pred: torch.Tensor, frame_axis: int) -> int:
    """Normalises a frame axis that must index a leading dim (not J or the coordinates)."""
    ndim = pred.dim()
    if not -ndim <= frame_axis < ndim or frame_axis % ndim >= ndim - 2:
        raise ValueError(
            f"frame_axis must index a leading dim of pred {tuple(pred.shape)} (not J or xyz), got {frame_axis}"
        )
    axis = frame_axis % ndim
    if pred.shape[axis] < 2:
        raise ValueError(
            f"pred must have at least 2 frames along frame_axis {frame_axis}, got shape {tuple(pred.shape)}"
        )
    return axis


def mpjpe_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-joint position error: mean over joints and leading dims of ||pred - target||_2.

    Args:
        pred: (..., J, 3) predicted poses.
        target: (..., J, 3) ground truth, same shape.
    """
    _check_pair(pred, target)
    return torch.linalg.vector_norm(pred - target, dim=-1).mean()


def weighted_mpjpe_loss(
    pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | Sequence[float]
) -> torch.Tensor:
    """Weighted MPJPE: mean over joints and leading dims of w_j * ||pred_j - target_j||_2.

    The weights are not normalised: all ones give `mpjpe_loss`, PRM_JOINT_WEIGHTS scale the loss by
    their mean (2.15).

    Args:
        pred: (..., J, 3) predicted poses.
        target: (..., J, 3) ground truth.
        weights: (J,) per-joint weights.
    """
    _check_pair(pred, target)
    w = _joint_weights(weights, pred)
    return (w * torch.linalg.vector_norm(pred - target, dim=-1)).mean()


def velocity_loss(pred: torch.Tensor, target: torch.Tensor, frame_axis: int = 1) -> torch.Tensor:
    """Mean per-joint velocity error (MPJVE): MPJPE of the first differences along the frame axis.

    Args:
        pred: (..., T, ..., J, 3) predicted poses, T >= 2, e.g. (B, T, J, 3).
        target: Ground truth of the same shape.
        frame_axis: The frame dim; must be a leading dim (not J or the coordinates).
    """
    _check_pair(pred, target, min_rank=3)
    axis = _frame_axis(pred, frame_axis)
    diff = torch.diff(pred, dim=axis) - torch.diff(target, dim=axis)
    return torch.linalg.vector_norm(diff, dim=-1).mean()


def n_mpjpe_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MPJPE after one optimal scale per sample (N-MPJPE).

    Each pose is scaled by s = <pred, target> / <pred, pred> (sums over J and xyz), the least-squares
    scale; the gradient flows through s. A zero pose keeps s = 0 instead of dividing by zero.

    Args:
        pred: (..., J, 3) predicted poses (root-relative).
        target: (..., J, 3) ground truth.
    """
    _check_pair(pred, target)
    norm_sq = (pred * pred).sum(dim=(-2, -1), keepdim=True)
    dot = (pred * target).sum(dim=(-2, -1), keepdim=True)
    scale = dot / norm_sq.clamp_min(torch.finfo(pred.dtype).tiny)
    return torch.linalg.vector_norm(scale * pred - target, dim=-1).mean()


def l1_coordinate_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error of the coordinates x, y, z, over the entries the mask keeps.

    loss = sum(m * |pred - target|) / sum(m), with m broadcast to (..., J, 3); 0 if the mask keeps
    nothing. A (..., J) mask drops joints (e.g. invisible); a (..., J, 3) mask drops single
    coordinates (e.g. z where the depth is unknown). A float mask acts as weights.

    Args:
        pred: (..., J, 3) predicted coordinates, e.g. (B, J, 3).
        target: (..., J, 3) ground truth.
        mask: None (all entries), (..., J) or (..., J, 3), bool or float.
    """
    _check_pair(pred, target)
    err = (pred - target).abs()
    if mask is None:
        return err.mean()
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor or None, got {type(mask).__name__}")
    if mask.shape == pred.shape[:-1]:
        mask = mask.unsqueeze(-1)
    elif mask.shape != pred.shape:
        raise ValueError(
            f"mask must have shape {tuple(pred.shape[:-1])} or {tuple(pred.shape)}, got {tuple(mask.shape)}"
        )
    m = mask.to(err.dtype).expand_as(err)
    return (m * err).sum() / m.sum().clamp_min(torch.finfo(err.dtype).tiny)


def heatmap_marginal_ce(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, sigma: float = 1.0
) -> torch.Tensor:
    """Cross-entropy of each axis' marginal of the softmax heatmap against a Gaussian at the target.

    An auxiliary loss for training an integral (soft-argmax) network from scratch: the coordinate loss
    alone gives little gradient while the heatmaps are still diffuse, a dense target on the heatmap
    shapes them early (heatmap + integral losses: Sun et al. 2018; a distribution prior: DSNT, Nibali
    et al. 2018). p = softmax over the D*H*W volume; for axis a its marginal m_a (summing the two other
    axes); loss = mean over joints and axes of -sum_i g_a(i) log m_a(i), g_a a normalised Gaussian of
    width `sigma` bins centred on the target coordinate.

    Args:
        logits: (B, J, D, H, W) heatmap logits.
        target: (B, J, 3) x (along W), y (along H), z (along D) in bins.
        mask: None, (B, J) or (B, J, 3) weights (as l1_coordinate_loss).
        sigma: Gaussian width in bins.
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 5:
        raise ValueError(f"logits must have shape (B, J, D, H, W), got {getattr(logits, 'shape', type(logits))}")
    b, j, d, h, w = logits.shape
    if not isinstance(target, torch.Tensor) or tuple(target.shape) != (b, j, 3):
        raise ValueError(f"target must have shape {(b, j, 3)}, got {getattr(target, 'shape', type(target))}")
    lp = torch.log_softmax(logits.reshape(b, j, -1).float(), dim=-1).reshape(b, j, d, h, w)
    marginals = (lp.logsumexp(dim=(2, 3)), lp.logsumexp(dim=(2, 4)), lp.logsumexp(dim=(3, 4)))  # x, y, z
    ce = []
    for axis, lm in enumerate(marginals):
        grid = torch.arange(lm.shape[-1], dtype=lm.dtype, device=lm.device)
        g = torch.exp(-0.5 * ((grid - target[..., axis : axis + 1]) / sigma) ** 2)
        g = g / g.sum(-1, keepdim=True).clamp_min(1e-12)
        ce.append(-(g * lm).sum(-1))
    ce = torch.stack(ce, dim=-1)  # (B, J, 3)
    if mask is None:
        return ce.mean()
    if mask.shape == ce.shape[:-1]:
        mask = mask.unsqueeze(-1)
    m = mask.to(ce.dtype).expand_as(ce)
    return (m * ce).sum() / m.sum().clamp_min(torch.finfo(ce.dtype).tiny)


def _mean_bone_lengths(poses: torch.Tensor, skeleton: Skeleton, name: str) -> torch.Tensor:
    """(J-1,) bone lengths averaged over all leading dims, in `skeleton.edges` order."""
    _check(poses, name)
    if poses.shape[-2] != skeleton.num_joints:
        raise ValueError(
            f"{name} must have J={skeleton.num_joints} joints ({skeleton.name}) in dim -2, got shape "
            f"{tuple(poses.shape)}"
        )
    joints, parents = zip(*skeleton.edges, strict=True)
    bones = poses[..., list(joints), :] - poses[..., list(parents), :]
    return torch.linalg.vector_norm(bones, dim=-1).reshape(-1, len(joints)).mean(dim=0)


def bone_length_loss(
    pred: torch.Tensor,
    skeleton: Skeleton,
    target_lengths: torch.Tensor | None = None,
    *,
    reference: torch.Tensor | None = None,
    squared: bool = True,
) -> torch.Tensor:
    """Bone-length term of VideoPose3D's semi-supervised training.

    Without 3D labels the lifted poses of unlabelled video can drift in scale; this term matches the
    mean length of every bone over the unlabelled batch `pred` to the mean over a labelled batch
    `reference` (or to given `target_lengths`): mean over bones of (L_pred - L_ref)^2, or |L_pred -
    L_ref| with `squared=False` (the form of the VideoPose3D release). Gradients flow into both
    batches; detach `reference` to keep them out of it.

    Args:
        pred: (..., J, 3) predicted poses of the unlabelled batch.
        skeleton: Gives the bones (joint, parent), e.g. `mobpose.skeleton.H36M_17`.
        target_lengths: (J-1,) reference bone lengths in `skeleton.edges` order.
        reference: (..., J, 3) poses of the labelled batch (predicted or ground truth).
        squared: Squared (default) or absolute difference.

    Raises:
        ValueError: Unless exactly one of `target_lengths` and `reference` is given, or on bad shapes.
    """
    if (target_lengths is None) == (reference is None):
        raise ValueError("target_lengths or reference: give exactly one of them")
    lengths = _mean_bone_lengths(pred, skeleton, "pred")
    if reference is not None:
        ref = _mean_bone_lengths(reference, skeleton, "reference")
    else:
        ref = torch.as_tensor(target_lengths, dtype=pred.dtype, device=pred.device)
        if ref.shape != lengths.shape:
            raise ValueError(f"target_lengths must have shape {tuple(lengths.shape)}, got {tuple(ref.shape)}")
    diff = lengths - ref
    return (diff * diff).mean() if squared else diff.abs().mean()


def reprojection_loss(
    pred_3d_cam: torch.Tensor,
    trajectory: torch.Tensor,
    keypoints_2d: torch.Tensor,
    intrinsics: torch.Tensor,
) -> torch.Tensor:
    """Back-projection loss of VideoPose3D's semi-supervised training, in pixels.

    The root-relative poses are moved to camera space by the predicted root trajectory, projected
    with the camera's intrinsics (`mobpose.camera.project`, distortion included) and compared with
    the 2D keypoints they were lifted from: mean over joints and leading dims of ||proj - kp||_2.

    Args:
        pred_3d_cam: (..., J, 3) root-relative poses in camera axes, e.g. (B, T, J, 3).
        trajectory: (..., 1, 3) or (..., 3) camera-space root positions, e.g. the trajectory model's
            (B, T, 1, 3); its points must lie in front of the camera (Z > 0).
        keypoints_2d: (..., J, 2) the input keypoints in pixels.
        intrinsics: (9,) or (B, 9) or (..., 9) in pixels (`mobpose.camera`); the dims present align
            with the leading dims of the poses from the left, missing ones broadcast.
    """
    _check(pred_3d_cam, "pred_3d_cam")
    _check(trajectory, "trajectory", min_rank=1)
    _check(keypoints_2d, "keypoints_2d", coords=2)
    _check(intrinsics, "intrinsics", coords=9, min_rank=1)
    lead = pred_3d_cam.shape[:-2]
    if trajectory.shape == lead + (3,):
        trajectory = trajectory.unsqueeze(-2)
    elif trajectory.shape != lead + (1, 3):
        raise ValueError(
            f"trajectory must have shape {tuple(lead) + (1, 3)} or {tuple(lead) + (3,)}, got {tuple(trajectory.shape)}"
        )
    if keypoints_2d.shape != pred_3d_cam.shape[:-1] + (2,):
        raise ValueError(
            f"keypoints_2d must have shape {tuple(pred_3d_cam.shape[:-1]) + (2,)}, got {tuple(keypoints_2d.shape)}"
        )
    k_lead = intrinsics.shape[:-1]
    if len(k_lead) > len(lead) or any(a not in (1, b) for a, b in zip(k_lead, lead, strict=False)):
        raise ValueError(
            f"intrinsics must have shape (9,) or leading dims matching {tuple(lead)} from the left, got "
            f"{tuple(intrinsics.shape)}"
        )
    intrinsics = intrinsics.reshape(k_lead + (1,) * (len(lead) - len(k_lead)) + (9,))
    projected = project(pred_3d_cam + trajectory, intrinsics)
    return torch.linalg.vector_norm(projected - keypoints_2d, dim=-1).mean()


def prm_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | Sequence[float] = PRM_JOINT_WEIGHTS,
    velocity_weight: float = 2.0,
) -> torch.Tensor:
    """Training loss of the PRM (MixSTE/KTPFormer form, DESIGN section 4), two terms:

    - position: `weighted_mpjpe_loss(pred, target, weights)`, mean of w_j * ||pred_j - target_j||_2,
      which stresses the distal joints (limbs' ends) that carry most of the error;
    - velocity: `velocity_weight` * `velocity_loss` along the frame dim T, the MPJVE of the first
      differences, which penalises jitter between frames.

    (The optional 0.5 * temporal-consistency term of MixSTE is not included.)

    Args:
        pred: (..., T, J, 3) predicted poses, e.g. (B, T, J, 3); T >= 2 unless velocity_weight is 0.
        target: Ground truth of the same shape.
        weights: (J,) per-joint weights.
        velocity_weight: Weight of the velocity term.
    """
    loss = weighted_mpjpe_loss(pred, target, weights)
    if velocity_weight != 0:
        loss = loss + velocity_weight * velocity_loss(pred, target, frame_axis=-3)
    return loss
