"""3D pose error metrics (MPJPE and its aligned variants).

All metrics take ``predicted`` and ``target`` of shape (..., J, 3), where
``...`` is any number of leading dims (e.g. B batch, T frames) and J joints.
They compute in float64 and return the mean over everything as a Python float,
or with ``reduce=False`` the per-sample errors (averaged over J) of shape (...).
Inputs may be array-likes or torch tensors (converted without importing torch).

Protocol names clash between code bases: VideoPose3D calls plain MPJPE
"protocol 1" and similarity-aligned P-MPJPE "protocol 2", whereas ConvNeXtPose
calls rigid-aligned PA-MPJPE "protocol 1" and plain MPJPE "protocol 2".
Use the metric names of ``METRICS`` to avoid ambiguity.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "METRICS",
    "PROTOCOLS",
    "evaluate",
    "mpjpe",
    "mpjve",
    "n_mpjpe",
    "p_mpjpe",
    "pa_mpjpe",
    "root_relative",
]

logger = logging.getLogger(__name__)

Result = float | np.ndarray


def _to_float64(x: Any, name: str) -> np.ndarray:
    """Converts an array-like or torch tensor to a real float64 ndarray."""
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except ValueError as exc:  # e.g. ragged nested lists
        raise ValueError(f"{name} cannot be converted to an array: {exc}") from exc
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def _check_poses(arr: np.ndarray, name: str, coords: tuple[int, ...]) -> None:
    """Validates rank, coordinate dim, emptiness and finiteness of one pose array."""
    if arr.ndim < 2:
        raise ValueError(f"{name} must have rank >= 2 (..., J, C), got shape {arr.shape}")
    if arr.shape[-1] not in coords:
        allowed = " or ".join(map(str, coords))
        raise ValueError(f"{name} must have last dim {allowed} (coordinates), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has non-finite values (NaN or Inf)")


def _validate_pair(
    predicted: Any, target: Any, coords: tuple[int, ...] = (3,)
) -> tuple[np.ndarray, np.ndarray]:
    """Converts and validates a (predicted, target) pair of (..., J, C) arrays."""
    pred = _to_float64(predicted, "predicted")
    targ = _to_float64(target, "target")
    _check_poses(pred, "predicted", coords)
    _check_poses(targ, "target", coords)
    if pred.shape != targ.shape:
        raise ValueError(
            f"predicted and target must have the same shape, got {pred.shape} and {targ.shape}"
        )
    return pred, targ


def _joint_error(pred: np.ndarray, targ: np.ndarray, reduce: bool) -> Result:
    """Mean Euclidean joint error: a float, or per-sample (...) if not ``reduce``."""
    per_sample = np.linalg.norm(pred - targ, axis=-1).mean(axis=-1)
    return float(per_sample.mean()) if reduce else per_sample


def _procrustes_align(pred: np.ndarray, targ: np.ndarray, scale: bool) -> np.ndarray:
    """Aligns each sample of ``pred`` to ``targ`` by least squares (Kabsch/Umeyama).

    Finds per sample the proper rotation R (det +1, reflections excluded),
    translation and, if ``scale``, isotropic scale s minimising
    ``||s * pred @ R + t - targ||_F``.

    Args:
        pred: Array of shape (..., J, 3).
        targ: Array of shape (..., J, 3).
        scale: Whether to also fit the scale (similarity vs. rigid alignment).

    Returns:
        Aligned prediction of shape (..., J, 3).
    """
    mu_p = pred.mean(axis=-2, keepdims=True)
    mu_t = targ.mean(axis=-2, keepdims=True)
    x = pred - mu_p
    y = targ - mu_t
    u, sing, vt = np.linalg.svd(np.swapaxes(x, -1, -2) @ y)  # (..., 3, 3) cross-covariance
    # Exclude reflections: flip the last singular vector/value when det(U V^T) < 0.
    sign = np.where(np.linalg.det(u @ vt) < 0, -1.0, 1.0)
    u[..., :, -1] *= sign[..., None]
    sing[..., -1] *= sign
    rot = u @ vt
    if scale:
        norm_sq = (x**2).sum(axis=(-2, -1))
        s = np.where(norm_sq > 0, sing.sum(axis=-1) / np.where(norm_sq > 0, norm_sq, 1.0), 1.0)
        x = x * s[..., None, None]
    return x @ rot + mu_t


def root_relative(poses: Any, root: int = 0) -> np.ndarray:
    """Subtracts the root joint from every joint.

    Args:
        poses: Array of shape (..., J, C).
        root: Index of the root joint in ``[-J, J)``.

    Returns:
        float64 array of shape (..., J, C) with the root joint at the origin.

    Raises:
        ValueError: If ``poses`` has rank < 2, is empty or non-finite, or
            ``root`` is out of range.
    """
    arr = _to_float64(poses, "poses")
    if arr.ndim < 2:
        raise ValueError(f"poses must have rank >= 2 (..., J, C), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"poses is empty (shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise ValueError("poses has non-finite values (NaN or Inf)")
    num_joints = arr.shape[-2]
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)):
        raise ValueError(f"root must be an integer, got {type(root).__name__}")
    if not -num_joints <= root < num_joints:
        raise ValueError(f"root must be in [-{num_joints}, {num_joints}), got {root}")
    return arr - arr[..., [root], :]


def mpjpe(predicted: Any, target: Any, *, reduce: bool = True) -> Result:
    """Mean per-joint position error without alignment.

    Mean Euclidean distance over joints (and all leading dims). Callers should
    pass root-relative poses (see ``root_relative``). Called "protocol 1" in
    VideoPose3D but "protocol 2" in ConvNeXtPose.

    Args:
        predicted: Array of shape (..., J, C) with C in {2, 3}.
        target: Array of the same shape.
        reduce: If False, return per-sample errors of shape (...).

    Returns:
        Mean error as a float, or an ndarray of shape (...) if not ``reduce``.

    Raises:
        ValueError: On mismatched shapes, rank < 2, C not in {2, 3}, empty or
            non-finite input.
    """
    pred, targ = _validate_pair(predicted, target, coords=(2, 3))
    return _joint_error(pred, targ, reduce)


def p_mpjpe(predicted: Any, target: Any, *, reduce: bool = True) -> Result:
    """MPJPE after per-sample similarity Procrustes alignment.

    ``predicted`` is aligned to ``target`` by rotation, translation and scale
    (reflections excluded), then MPJPE is taken. Called "protocol 2" in
    VideoPose3D; not to be confused with ConvNeXtPose's rigid "PA-MPJPE"
    (see ``pa_mpjpe``).

    Args:
        predicted: Array of shape (..., J, 3).
        target: Array of the same shape.
        reduce: If False, return per-sample errors of shape (...).

    Returns:
        Mean error as a float, or an ndarray of shape (...) if not ``reduce``.

    Raises:
        ValueError: On mismatched shapes, rank < 2, last dim != 3, empty or
            non-finite input.
    """
    pred, targ = _validate_pair(predicted, target)
    return _joint_error(_procrustes_align(pred, targ, scale=True), targ, reduce)


def pa_mpjpe(predicted: Any, target: Any, *, reduce: bool = True) -> Result:
    """MPJPE after per-sample rigid Procrustes alignment (no scale).

    ``predicted`` is aligned to ``target`` by rotation and translation only
    (reflections excluded), then MPJPE is taken. This is ConvNeXtPose's
    "PA-MPJPE" / "protocol 1"; VideoPose3D's "protocol 2" also fits scale
    (see ``p_mpjpe``).

    Args:
        predicted: Array of shape (..., J, 3).
        target: Array of the same shape.
        reduce: If False, return per-sample errors of shape (...).

    Returns:
        Mean error as a float, or an ndarray of shape (...) if not ``reduce``.

    Raises:
        ValueError: On mismatched shapes, rank < 2, last dim != 3, empty or
            non-finite input.
    """
    pred, targ = _validate_pair(predicted, target)
    return _joint_error(_procrustes_align(pred, targ, scale=False), targ, reduce)


def n_mpjpe(predicted: Any, target: Any, *, reduce: bool = True) -> Result:
    """MPJPE after a per-sample optimal scale (N-MPJPE, Rhodin et al. 2018).

    Each sample of ``predicted`` is multiplied by
    ``s = <predicted, target> / <predicted, predicted>`` (Frobenius products
    over J and coordinates); no rotation or translation. Pass root-relative
    poses. Sometimes called "protocol 3" (VideoPose3D semi-supervised setting).

    Args:
        predicted: Array of shape (..., J, 3).
        target: Array of the same shape.
        reduce: If False, return per-sample errors of shape (...).

    Returns:
        Mean error as a float, or an ndarray of shape (...) if not ``reduce``.

    Raises:
        ValueError: On mismatched shapes, rank < 2, last dim != 3, empty or
            non-finite input.
    """
    pred, targ = _validate_pair(predicted, target)
    norm_sq = (pred**2).sum(axis=(-2, -1), keepdims=True)
    dot = (pred * targ).sum(axis=(-2, -1), keepdims=True)
    s = np.where(norm_sq > 0, dot / np.where(norm_sq > 0, norm_sq, 1.0), 1.0)
    return _joint_error(s * pred, targ, reduce)


def mpjve(predicted: Any, target: Any, *, axis: int = -3, reduce: bool = True) -> Result:
    """Mean per-joint velocity error (MPJVE).

    MPJPE of the first temporal differences along the frame ``axis``, i.e.
    ``mpjpe(diff(predicted), diff(target))``; no alignment. Same name in
    VideoPose3D and other code bases.

    Args:
        predicted: Array of shape (..., T, ..., J, 3) with T >= 2 frames.
        target: Array of the same shape.
        axis: Frame axis; must be a leading dim (not J or the coordinates).
            Defaults to the dim just before J.
        reduce: If False, return per-sample errors whose shape is the leading
            dims with T replaced by T-1.

    Returns:
        Mean error as a float, or an ndarray if not ``reduce``.

    Raises:
        ValueError: On mismatched shapes, rank < 3, last dim != 3, empty or
            non-finite input, an invalid ``axis`` or fewer than 2 frames.
    """
    pred, targ = _validate_pair(predicted, target)
    ndim = pred.ndim
    if ndim < 3:
        raise ValueError(f"predicted must have rank >= 3 (..., T, J, 3) for MPJVE, got shape {pred.shape}")
    if not -ndim <= axis < ndim or axis % ndim >= ndim - 2:
        raise ValueError(f"axis must index a leading (frame) dim in [-{ndim}, {ndim - 2}), got {axis}")
    if pred.shape[axis] < 2:
        raise ValueError(
            f"predicted must have at least 2 frames along axis {axis} for MPJVE, got shape {pred.shape}"
        )
    return _joint_error(np.diff(pred, axis=axis), np.diff(targ, axis=axis), reduce)


METRICS: dict[str, Callable[..., Result]] = {
    "MPJPE": mpjpe,
    "P-MPJPE": p_mpjpe,
    "PA-MPJPE": pa_mpjpe,
    "N-MPJPE": n_mpjpe,
    "MPJVE": mpjve,
}

PROTOCOLS: dict[str, str] = {
    "MPJPE": "no alignment (root-relative)",
    "P-MPJPE": "similarity: rotation+translation+scale",
    "PA-MPJPE": "rigid: rotation+translation, no scale",
    "N-MPJPE": "per-sample scale",
    "MPJVE": "first differences along the frame axis",
}


def evaluate(predicted: Any, target: Any, *, frame_axis: int | None = -3) -> dict[str, float]:
    """Computes every metric of ``METRICS`` as a float.

    Args:
        predicted: Array of shape (..., J, 3).
        target: Array of the same shape.
        frame_axis: Frame axis for MPJVE, or None to skip it. MPJVE is also
            skipped if the input has no such leading dim or it holds < 2 frames.

    Returns:
        Dict mapping metric name to its mean value.

    Raises:
        ValueError: On invalid input (see the individual metrics).
    """
    pred, targ = _validate_pair(predicted, target)
    results = {name: fn(pred, targ) for name, fn in METRICS.items() if name != "MPJVE"}
    ndim = pred.ndim
    has_frames = (
        frame_axis is not None
        and -ndim <= frame_axis < ndim
        and frame_axis % ndim < ndim - 2
        and pred.shape[frame_axis] >= 2
    )
    if has_frames:
        results["MPJVE"] = mpjve(pred, targ, axis=frame_axis)
    else:
        logger.debug("evaluate: MPJVE skipped (frame_axis=%s, shape=%s)", frame_axis, pred.shape)
    return results
