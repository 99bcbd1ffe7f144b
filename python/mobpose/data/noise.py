"""Synthetic errors imitating a per-frame 3D pose estimator and a 2D keypoint detector.

Used to make training inputs for temporal models from clean motion: ``corrupt`` for camera-space 3D
poses in mm, ``corrupt_2d`` for pixel keypoints. Every random draw comes from the ``rng`` argument,
so a seed fixes the result. Shapes: T frames, J joints (H36M-17 joint indices in the defaults).

Default 3D parameters (:class:`EstimatorNoise`), chosen so the root-relative MPJPE of the result is
about 50 mm (measured: 49 mm on H36M-17 poses; 36 mm before subtracting the noisy root), the level of
a good single-frame monocular estimator, with its typical failure modes:

- ``jitter_mm = 10``: white Gaussian error per frame, joint and axis;
- ``drift_mm = 12``, ``drift_corr = 0.95``: slowly varying error, an AR(1) process per joint and axis
  (stationary std ``drift_mm``, lag-1 correlation ``drift_corr`` per frame: ~20 frames of memory,
  meant for 25-50 fps);
- ``extremity_scale = 1.5``: jitter and drift x1.5 on wrists, ankles and head top (3, 6, 10, 13, 16);
- ``depth_scale = 1.5``: jitter and drift x1.5 along Z (depth is the least observable axis);
  ``depth_offset_mm = 0``: optional AR(1) whole-body depth offset (cancels in root-relative poses);
- ``swap_prob = 0.01``: per frame, the probability that one limb pair (lower legs or forearms,
  chosen uniformly) has its left and right joints exchanged;
- ``outlier_frame_prob = 0.005`` (every joint of the frame) and ``outlier_joint_prob = 0.002`` (single
  joints): gross errors, Gaussian with std ``outlier_mm = 200`` per axis.

Default 2D parameters (:class:`DetectorNoise`): jitter 1% of the person's size per axis (size = the
longer side of that frame's keypoint box), 1.5x on extremities, limb swaps with probability 0.01
per frame, single-joint outliers with probability 0.005 and std 20% of the person's size.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["DetectorNoise", "EstimatorNoise", "corrupt", "corrupt_2d"]

logger = logging.getLogger(__name__)

_EXTREMITIES = (3, 6, 10, 13, 16)
# (right group, left group): lower legs (knee, ankle) and forearms (elbow, wrist) of H36M-17.
_SWAP_GROUPS = (((2, 3), (5, 6)), ((15, 16), (12, 13)))


def _describe(params) -> dict:
    """asdict with tuples made lists and the class name under 'type' (EstimatorNoise, DetectorNoise)."""
    d = asdict(params)
    d["extremity_joints"] = list(params.extremity_joints)
    d["swap_groups"] = [[list(a), list(b)] for a, b in params.swap_groups]
    return {"type": type(params).__name__, **d}


def _check_prob(name: str, v: float) -> None:
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {v}")


def _check_nonneg(name: str, v: float) -> None:
    if not (np.isfinite(v) and v >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {v}")


def _check_groups(groups) -> None:
    for g in groups:
        if len(g) != 2 or len(g[0]) != len(g[1]) or not g[0]:
            raise ValueError(f"swap_groups entries must be pairs of equal-length joint tuples, got {g!r}")


@dataclass(frozen=True)
class EstimatorNoise:
    """Parameters of :func:`corrupt` (3D, mm); see the module docstring for the defaults' meaning."""

    jitter_mm: float = 10.0
    drift_mm: float = 12.0
    drift_corr: float = 0.95
    extremity_scale: float = 1.5
    extremity_joints: tuple[int, ...] = _EXTREMITIES
    depth_scale: float = 1.5
    depth_offset_mm: float = 0.0
    swap_prob: float = 0.01
    swap_groups: tuple = _SWAP_GROUPS
    outlier_frame_prob: float = 0.005
    outlier_joint_prob: float = 0.002
    outlier_mm: float = 200.0

    def __post_init__(self) -> None:
        for n in ("jitter_mm", "drift_mm", "extremity_scale", "depth_scale", "depth_offset_mm", "outlier_mm"):
            _check_nonneg(n, getattr(self, n))
        if not 0.0 <= self.drift_corr < 1.0:
            raise ValueError(f"drift_corr must be in [0, 1), got {self.drift_corr}")
        for n in ("swap_prob", "outlier_frame_prob", "outlier_joint_prob"):
            _check_prob(n, getattr(self, n))
        _check_groups(self.swap_groups)

    def describe(self) -> dict:
        """JSON-friendly parameters (for checkpoint metadata)."""
        return _describe(self)


@dataclass(frozen=True)
class DetectorNoise:
    """Parameters of :func:`corrupt_2d` (pixels, scaled by the person's size per frame)."""

    jitter_frac: float = 0.01
    extremity_scale: float = 1.5
    extremity_joints: tuple[int, ...] = _EXTREMITIES
    swap_prob: float = 0.01
    swap_groups: tuple = _SWAP_GROUPS
    outlier_prob: float = 0.005
    outlier_frac: float = 0.2

    def __post_init__(self) -> None:
        for n in ("jitter_frac", "extremity_scale", "outlier_frac"):
            _check_nonneg(n, getattr(self, n))
        for n in ("swap_prob", "outlier_prob"):
            _check_prob(n, getattr(self, n))
        _check_groups(self.swap_groups)

    def describe(self) -> dict:
        """JSON-friendly parameters (for checkpoint metadata)."""
        return _describe(self)


def _check_array(a: np.ndarray, name: str, coords: int, joints_needed: int) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 3 or arr.shape[-1] != coords or arr.shape[0] < 1:
        raise ValueError(f"{name} must have shape (T, J, {coords}) with T >= 1, got {arr.shape}")
    if arr.shape[1] < joints_needed:
        raise ValueError(f"{name} has J={arr.shape[1]} joints but the parameters use joint {joints_needed - 1}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr


def _max_joint(extremities, groups) -> int:
    idx = list(extremities) + [j for a, b in groups for j in (*a, *b)]
    return max(idx) + 1 if idx else 0


def _ar1(rng: np.random.Generator, shape: tuple[int, ...], rho: float) -> np.ndarray:
    """Unit-variance AR(1) series along axis 0: x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t, x_0 ~ N(0, 1)."""
    e = rng.standard_normal(shape)
    out = np.empty(shape)
    out[0] = e[0]
    a = np.sqrt(1.0 - rho * rho)
    for t in range(1, shape[0]):
        out[t] = rho * out[t - 1] + a * e[t]
    return out


def _apply_swaps(out: np.ndarray, rng: np.random.Generator, prob: float, groups) -> np.ndarray:
    t_len = out.shape[0]
    swapped = rng.random(t_len) < prob if groups else np.zeros(t_len, dtype=bool)
    choice = rng.integers(0, max(len(groups), 1), size=t_len)
    for t in np.flatnonzero(swapped):
        a, b = (list(x) for x in groups[choice[t]])
        out[t, a + b] = out[t, b + a]
    return swapped


def corrupt(
    poses_cam_mm: np.ndarray, rng: np.random.Generator, params: EstimatorNoise | None = None, return_info: bool = False
):
    """Adds estimator-like errors to clean camera-space 3D poses.

    Order: limb swaps on the clean pose, then jitter + drift (scaled per joint and along Z), the
    depth offset, then outliers.

    Args:
        poses_cam_mm: (T, J, 3) clean camera-space poses in mm.
        rng: numpy Generator.
        params: EstimatorNoise (defaults if None).
        return_info: Also return a dict with ``swapped`` (T,) bool and ``outlier`` (T, J) bool.

    Returns:
        (T, J, 3) float32 noisy poses, or ``(noisy, info)``.

    Raises:
        ValueError: If the array is not (T, J, 3) or has fewer joints than the parameters use.
    """
    p = params if params is not None else EstimatorNoise()
    arr = _check_array(poses_cam_mm, "poses_cam_mm", 3, _max_joint(p.extremity_joints, p.swap_groups))
    t_len, j_len, _ = arr.shape
    out = arr.astype(np.float64)
    swapped = _apply_swaps(out, rng, p.swap_prob, p.swap_groups)
    scale = np.ones((j_len, 3))
    scale[list(p.extremity_joints)] *= p.extremity_scale
    scale[:, 2] *= p.depth_scale
    err = p.jitter_mm * rng.standard_normal((t_len, j_len, 3))
    if p.drift_mm > 0:
        err += p.drift_mm * _ar1(rng, (t_len, j_len, 3), p.drift_corr)
    out += err * scale
    if p.depth_offset_mm > 0:
        out[..., 2] += p.depth_offset_mm * _ar1(rng, (t_len, 1), p.drift_corr)
    outlier = rng.random((t_len, j_len)) < p.outlier_joint_prob
    outlier |= (rng.random(t_len) < p.outlier_frame_prob)[:, None]
    n_out = int(outlier.sum())
    if n_out:
        out[outlier] += p.outlier_mm * rng.standard_normal((n_out, 3))
    noisy = out.astype(np.float32)
    if return_info:
        return noisy, {"swapped": swapped, "outlier": outlier}
    return noisy


def corrupt_2d(
    keypoints: np.ndarray, rng: np.random.Generator, params2d: DetectorNoise | None = None, return_info: bool = False
):
    """Adds detector-like errors to clean 2D keypoints.

    The person's size per frame is the longer side of the keypoints' bounding box; jitter and outlier
    displacements are that size times ``jitter_frac`` / ``outlier_frac`` (extremities times
    ``extremity_scale`` for the jitter). Swaps are applied first, on the clean keypoints.

    Args:
        keypoints: (T, J, 2) clean pixels.
        rng: numpy Generator.
        params2d: DetectorNoise (defaults if None).
        return_info: Also return ``swapped`` (T,), ``outlier`` (T, J) and ``size`` (T,) in a dict.

    Returns:
        (T, J, 2) float32 noisy pixels, or ``(noisy, info)``.

    Raises:
        ValueError: If the array is not (T, J, 2), has too few joints, or contains NaN/Inf.
    """
    p = params2d if params2d is not None else DetectorNoise()
    arr = _check_array(keypoints, "keypoints", 2, _max_joint(p.extremity_joints, p.swap_groups))
    if not np.isfinite(arr).all():
        raise ValueError("keypoints contain NaN or Inf (drop or fill invisible joints first)")
    t_len, j_len, _ = arr.shape
    out = arr.astype(np.float64)
    size = np.max(out.max(axis=1) - out.min(axis=1), axis=-1)  # (T,)
    swapped = _apply_swaps(out, rng, p.swap_prob, p.swap_groups)
    scale = np.ones(j_len)
    scale[list(p.extremity_joints)] = p.extremity_scale
    out += (p.jitter_frac * size)[:, None, None] * scale[None, :, None] * rng.standard_normal((t_len, j_len, 2))
    outlier = rng.random((t_len, j_len)) < p.outlier_prob
    ti, ji = np.nonzero(outlier)
    if len(ti):
        out[ti, ji] += (p.outlier_frac * size[ti])[:, None] * rng.standard_normal((len(ti), 2))
    noisy = out.astype(np.float32)
    if return_info:
        return noisy, {"swapped": swapped, "outlier": outlier, "size": size}
    return noisy
