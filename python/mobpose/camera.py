"""Cameras: intrinsics, world-to-camera transforms and projection, for numpy arrays and torch tensors.

Conventions (the same everywhere in mobpose):
- Camera space: X right, Y down, Z forward (depth), in the unit of the input (mm in the models).
- Intrinsics: a vector of 9 per camera, in pixels: (fx, fy, cx, cy, k1, k2, k3, p1, p2), the layout of
  the Human3.6M camera files (focal, centre, radial, tangential). A pinhole camera has zeros for k, p.
- Distortion as in the VideoPose3D projection of Human3.6M: with (x, y) = (X/Z, Y/Z) and
  r2 = x^2 + y^2, radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3, tan = p1 x + p2 y,
  u = fx (x (radial + tan) + p1 r2) + cx,  v = fy (y (radial + tan) + p2 r2) + cy.
- Extrinsics: X_cam = R (X_world - C), R (3, 3) world-to-camera rotation, C the camera centre in
  world coordinates.

Every function works on numpy arrays or torch tensors (differentiable) alike, with any leading dims.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "INTRINSICS_FIELDS",
    "camera_to_world",
    "default_intrinsics",
    "project",
    "quaternion_to_matrix",
    "unproject",
    "world_to_camera",
]

INTRINSICS_FIELDS = ("fx", "fy", "cx", "cy", "k1", "k2", "k3", "p1", "p2")


def _xp(a: Any):
    if type(a).__module__.startswith("torch"):
        import torch

        return torch
    return np


def _check_last(a: Any, size: int, name: str) -> None:
    shape = tuple(a.shape)
    if len(shape) == 0 or shape[-1] != size:
        raise ValueError(f"{name} must have last dimension {size}, got shape {shape}")


def default_intrinsics(width: int, height: int, focal: float | None = None) -> np.ndarray:
    """Pinhole intrinsics for an image of `width` x `height` pixels.

    Without `focal`, the focal length is the image diagonal's length (a field of view of about 53
    degrees on the diagonal, typical of a phone's main camera); the centre is the image centre.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    f = float(np.hypot(width, height)) if focal is None else float(focal)
    if not np.isfinite(f) or f <= 0:
        raise ValueError(f"focal must be positive and finite, got {focal}")
    return np.array([f, f, width / 2.0, height / 2.0, 0, 0, 0, 0, 0], dtype=np.float32)


def project(points: Any, intrinsics: Any) -> Any:
    """Projects camera-space points to pixels.

    Args:
        points: (..., J, 3) camera-space points (Z > 0 in front of the camera).
        intrinsics: (..., 9) per camera, broadcast against the leading dims of `points`.

    Returns:
        (..., J, 2) pixel coordinates (u, v).
    """
    _check_last(points, 3, "points")
    _check_last(intrinsics, 9, "intrinsics")
    xp = _xp(points)
    k = intrinsics[..., None, :]  # broadcast over joints
    x = points[..., 0] / points[..., 2]
    y = points[..., 1] / points[..., 2]
    r2 = x * x + y * y
    radial = 1 + k[..., 4] * r2 + k[..., 5] * r2 * r2 + k[..., 6] * r2 * r2 * r2
    tan = k[..., 7] * x + k[..., 8] * y
    u = k[..., 0] * (x * (radial + tan) + k[..., 7] * r2) + k[..., 2]
    v = k[..., 1] * (y * (radial + tan) + k[..., 8] * r2) + k[..., 3]
    return xp.stack([u, v], -1)


def unproject(pixels: Any, depth: Any, intrinsics: Any) -> Any:
    """Back-projects pixels at given depths through a pinhole camera (distortion ignored).

    Args:
        pixels: (..., J, 2) pixel coordinates.
        depth: (..., J) camera-space Z of each point.
        intrinsics: (..., 9).

    Returns:
        (..., J, 3) camera-space points: X = (u - cx) / fx * Z, Y = (v - cy) / fy * Z.
    """
    _check_last(pixels, 2, "pixels")
    _check_last(intrinsics, 9, "intrinsics")
    xp = _xp(pixels)
    k = intrinsics[..., None, :]
    x = (pixels[..., 0] - k[..., 2]) / k[..., 0] * depth
    y = (pixels[..., 1] - k[..., 3]) / k[..., 1] * depth
    return xp.stack([x, y, depth + 0 * x], -1)


def world_to_camera(points: Any, rotation: Any, centre: Any) -> Any:
    """X_cam = R (X_world - C) for points (..., J, 3), R (..., 3, 3), C (..., 3)."""
    _check_last(points, 3, "points")
    _check_last(centre, 3, "centre")
    return (points - centre[..., None, :]) @ _transpose(rotation)


def camera_to_world(points: Any, rotation: Any, centre: Any) -> Any:
    """X_world = R^T X_cam + C, the inverse of `world_to_camera`."""
    _check_last(points, 3, "points")
    _check_last(centre, 3, "centre")
    return points @ rotation + centre[..., None, :]


def _transpose(m: Any) -> Any:
    return m.transpose(-1, -2) if _xp(m) is not np else np.swapaxes(m, -1, -2)


def quaternion_to_matrix(q: Any) -> Any:
    """Rotation matrix (..., 3, 3) of unit quaternions (..., 4) in (w, x, y, z) order.

    Human3.6M stores each camera's orientation as such a quaternion rotating camera axes into world
    axes; its world-to-camera rotation is the transpose of this matrix.
    """
    _check_last(q, 4, "q")
    xp = _xp(q)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return xp.stack([xp.stack(r, -1) for r in rows], -2)
