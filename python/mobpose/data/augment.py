"""Pose augmentations (numpy, seeded): bone-length and global scaling, left/right flipping.

Shapes: T frames (any leading dims ``...`` are accepted where noted), J joints.
"""

from __future__ import annotations

import logging

import numpy as np

from ..skeleton import H36M_17, Skeleton

__all__ = [
    "flip_intrinsics",
    "flip_pose",
    "random_bone_scale",
    "random_global_scale",
    "scale_bones",
]

logger = logging.getLogger(__name__)


def _poses(positions: np.ndarray, skeleton: Skeleton, name: str = "positions") -> np.ndarray:
    arr = np.asarray(positions)
    if arr.ndim < 2 or arr.shape[-2] != skeleton.num_joints or arr.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., {skeleton.num_joints}, 3), got {arr.shape}")
    return arr


def _topological_order(skeleton: Skeleton) -> list[int]:
    order, placed = [skeleton.root], {skeleton.root}
    while len(order) < skeleton.num_joints:
        for j, p in enumerate(skeleton.parents):
            if j not in placed and p in placed:
                order.append(j)
                placed.add(j)
    return order


def scale_bones(positions: np.ndarray, skeleton: Skeleton, factors: np.ndarray) -> np.ndarray:
    """Rescales every bone by a given factor, keeping bone directions and the root's position.

    Forward kinematics from the root outward: ``new[j] = new[parent] + factors[j] * (old[j] - old[parent])``.

    Args:
        positions: (..., J, 3) positions (any units, any frame).
        skeleton: Skeleton giving the parents.
        factors: (J,) positive factor of the bone ending at each joint (the root's entry is ignored).

    Returns:
        Array like ``positions`` (float32 input stays float32).

    Raises:
        ValueError: If the shapes do not match the skeleton or a factor is not positive and finite.
    """
    arr = _poses(positions, skeleton)
    f = np.asarray(factors, dtype=np.float64).reshape(-1)
    if f.shape != (skeleton.num_joints,):
        raise ValueError(f"factors must have shape ({skeleton.num_joints},), got {np.shape(factors)}")
    if not (np.isfinite(f).all() and (f > 0).all()):
        raise ValueError("factors must be positive and finite")
    old = arr.astype(np.float64)
    new = np.empty_like(old)
    for j in _topological_order(skeleton):
        p = skeleton.parents[j]
        new[..., j, :] = old[..., j, :] if p < 0 else new[..., p, :] + f[j] * (old[..., j, :] - old[..., p, :])
    return new.astype(arr.dtype) if np.issubdtype(arr.dtype, np.floating) else new


def random_bone_scale(
    positions: np.ndarray,
    skeleton: Skeleton = H36M_17,
    rng: np.random.Generator | None = None,
    sigma: float = 0.05,
    return_factors: bool = False,
):
    """Gives the body other proportions: each bone's length times a random factor.

    Factors are log-normal, ``exp(N(0, sigma))`` clipped to ``exp(+-3 sigma)``, drawn once per call
    (the same body for every frame); a left bone and its right mirror (``skeleton.left``/``right``)
    get the same factor. Bone directions and the root trajectory are kept.

    Args:
        positions: (..., J, 3) positions, e.g. a sequence (T, J, 3).
        skeleton: Skeleton (parents and left/right pairs).
        rng: numpy Generator; required for reproducibility (a ValueError if None).
        sigma: Standard deviation of the log factor (>= 0).
        return_factors: Also return the (J,) factors (the root's is 1).

    Returns:
        Scaled positions, or ``(positions, factors)`` if ``return_factors``.

    Raises:
        ValueError: On a missing rng, a negative sigma or a shape mismatch.
    """
    if rng is None:
        raise ValueError("rng must be a numpy Generator (e.g. np.random.default_rng(seed))")
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    _poses(positions, skeleton)
    f = np.exp(np.clip(rng.normal(0.0, sigma, size=skeleton.num_joints), -3 * sigma, 3 * sigma))
    mirror = skeleton.flip_indices
    f = np.where(mirror < np.arange(skeleton.num_joints), f[mirror], f)  # the higher index of a pair copies the lower
    f[skeleton.root] = 1.0
    out = scale_bones(positions, skeleton, f)
    return (out, f) if return_factors else out


def random_global_scale(
    positions: np.ndarray,
    rng: np.random.Generator | None = None,
    low: float = 0.85,
    high: float = 1.15,
    about: str = "root",
    root: int = 0,
    return_factor: bool = False,
):
    """Scales the whole body by one factor uniform in ``[low, high]`` (a taller or smaller person).

    Args:
        positions: (T, J, 3) or (J, 3) positions.
        rng: numpy Generator (a ValueError if None).
        low: Smallest factor (> 0).
        high: Largest factor (>= low).
        about: Fixed point of the scaling: ``"root"`` (each frame about its own root: trajectory kept,
            works in any frame), ``"ground"`` (each frame about the point (x_root, y_root, 0): feet stay
            on the ground; Z-up world only), or ``"origin"`` (everything, trajectory included).
        root: Root joint index.
        return_factor: Also return the factor.

    Returns:
        Scaled positions, or ``(positions, factor)``.

    Raises:
        ValueError: On bad arguments or shapes.
    """
    if rng is None:
        raise ValueError("rng must be a numpy Generator (e.g. np.random.default_rng(seed))")
    if not 0 < low <= high:
        raise ValueError(f"need 0 < low <= high, got low={low}, high={high}")
    arr = np.asarray(positions)
    if arr.ndim < 2 or arr.shape[-1] != 3 or not 0 <= root < arr.shape[-2]:
        raise ValueError(f"positions must have shape (..., J, 3) with root {root} < J, got {arr.shape}")
    s = float(rng.uniform(low, high))
    p = arr.astype(np.float64)
    if about == "root":
        centre = p[..., root : root + 1, :]
    elif about == "ground":
        centre = p[..., root : root + 1, :].copy()
        centre[..., 2] = 0.0
    elif about == "origin":
        centre = np.zeros(3)
    else:
        raise ValueError(f"about must be 'root', 'ground' or 'origin', got {about!r}")
    out = centre + s * (p - centre)
    out = out.astype(arr.dtype) if np.issubdtype(arr.dtype, np.floating) else out
    return (out, s) if return_factor else out


def flip_pose(
    positions_3d: np.ndarray | None,
    keypoints_2d: np.ndarray | None,
    image_width: int | None = None,
    skeleton: Skeleton = H36M_17,
):
    """Mirrors a pose left-right: camera-space 3D and/or image 2D, swapping left/right joints.

    3D (camera space): X -> -X. 2D: u -> (W - 1) - u. The two agree exactly when the camera's
    intrinsics are mirrored too (:func:`flip_intrinsics`: cx -> W - 1 - cx, p1 -> -p1); for a
    centred principal point that is a no-op up to lens distortion. Applying it twice gives the input.

    Args:
        positions_3d: (..., J, 3) camera-space positions, or None.
        keypoints_2d: (..., J, 2) pixels, or None.
        image_width: Image width W in pixels (required with ``keypoints_2d``).
        skeleton: Skeleton with the left/right pairs.

    Returns:
        ``(flipped_3d, flipped_2d)``; an entry is None when its input was None.

    Raises:
        ValueError: On shape mismatches or a missing/invalid ``image_width``.
    """
    out3 = out2 = None
    if positions_3d is not None:
        out3 = skeleton.flip(_poses(positions_3d, skeleton, "positions_3d"), axis=0)
    if keypoints_2d is not None:
        kp = np.asarray(keypoints_2d)
        if kp.ndim < 2 or kp.shape[-2] != skeleton.num_joints or kp.shape[-1] != 2:
            raise ValueError(f"keypoints_2d must have shape (..., {skeleton.num_joints}, 2), got {kp.shape}")
        if image_width is None or int(image_width) <= 0:
            raise ValueError(f"image_width must be a positive integer with keypoints_2d, got {image_width!r}")
        out2 = kp[..., skeleton.flip_indices, :].copy()
        out2[..., 0] = (int(image_width) - 1) - out2[..., 0]
    return out3, out2


def flip_intrinsics(intrinsics: np.ndarray, image_width: int) -> np.ndarray:
    """Intrinsics (..., 9) of the mirrored image: cx -> W - 1 - cx and p1 -> -p1.

    With them, ``project(flip_3d, flip_intrinsics(k, W))`` equals the 2D flip of ``project(X, k)``.

    Raises:
        ValueError: If the last dimension is not 9 or ``image_width`` is not positive.
    """
    k = np.array(intrinsics, dtype=np.float64)
    if k.ndim == 0 or k.shape[-1] != 9:
        raise ValueError(f"intrinsics must have last dimension 9, got shape {k.shape}")
    if int(image_width) <= 0:
        raise ValueError(f"image_width must be positive, got {image_width}")
    k[..., 2] = (int(image_width) - 1) - k[..., 2]
    k[..., 7] = -k[..., 7]
    return k
