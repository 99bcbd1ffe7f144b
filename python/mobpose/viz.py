"""Drawing poses on images (OpenCV): 2D skeletons with left/right colours, contact-sheet grids."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from .skeleton import H36M_18, Skeleton

__all__ = ["draw_pose_3d", "draw_skeleton", "grid"]

LEFT_RGB = (40, 120, 255)
RIGHT_RGB = (255, 60, 40)
CENTRE_RGB = (60, 220, 60)


def draw_skeleton(
    image: np.ndarray,
    joints_2d: np.ndarray,
    visibility: np.ndarray | None = None,
    skeleton: Skeleton = H36M_18,
    thickness: int | None = None,
) -> np.ndarray:
    """Draws bones and joints on a copy of an RGB uint8 image (left side blue, right red, centre green).

    Joints marked not visible get hollow circles and their bones thin lines; non-finite joints are
    skipped. `joints_2d` (J, 2) pixels with J = skeleton.num_joints (or 17 for H36M_18's first 17).
    """
    img = np.ascontiguousarray(image).copy()
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3), got {img.dtype} {img.shape}")
    pts = np.asarray(joints_2d, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] > skeleton.num_joints:
        raise ValueError(f"joints_2d must have shape (J <= {skeleton.num_joints}, 2), got {pts.shape}")
    vis = np.ones(len(pts), bool) if visibility is None else np.asarray(visibility, bool)
    t = thickness or max(1, int(round(max(img.shape[:2]) / 200)))
    left, right = set(skeleton.left), set(skeleton.right)

    def colour(j: int) -> tuple[int, int, int]:
        return LEFT_RGB if j in left else RIGHT_RGB if j in right else CENTRE_RGB

    for j, p in enumerate(skeleton.parents[: len(pts)]):
        if p < 0 or not (np.isfinite(pts[j]).all() and np.isfinite(pts[p]).all()):
            continue
        a, b = tuple(int(round(v)) for v in pts[p]), tuple(int(round(v)) for v in pts[j])
        cv2.line(img, a, b, colour(j), t if vis[j] and vis[p] else max(1, t // 2), cv2.LINE_AA)
    for j, q in enumerate(pts):
        if np.isfinite(q).all():
            c = tuple(int(round(v)) for v in q)
            cv2.circle(img, c, t + 1, colour(j), -1 if vis[j] else 1, cv2.LINE_AA)
    return img


def grid(tiles: Sequence[np.ndarray], tile: int = 256, cols: int | None = None) -> np.ndarray:
    """Pastes RGB tiles (each resized to fit `tile` x `tile`, letterboxed) into one sheet."""
    if not tiles:
        raise ValueError("need at least one tile")
    cols = cols or math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    sheet = np.full((rows * tile, cols * tile, 3), 24, np.uint8)
    for i, t in enumerate(tiles):
        h, w = t.shape[:2]
        s = tile / max(h, w)
        r = cv2.resize(t, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        y, x = (i // cols) * tile + (tile - r.shape[0]) // 2, (i % cols) * tile + (tile - r.shape[1]) // 2
        sheet[y : y + r.shape[0], x : x + r.shape[1]] = r
    return sheet


def draw_pose_3d(
    pose_mm: np.ndarray,
    size: int = 256,
    azimuth_deg: float = 0.0,
    elevation_deg: float = 15.0,
    extent_mm: float = 1300.0,
    skeleton: Skeleton = H36M_18,
    title: str | None = None,
    margin: float = 0.05,
) -> np.ndarray:
    """A root-relative camera-space pose (J, 3) mm (X right, Y down, Z forward) drawn in a fixed 3D view.

    The view orbits the root: azimuth 0 looks along the camera's own axis (what the camera saw), 90 from
    the person's right-hand side of the image; elevation looks down from above. Fixed axes, centred on
    the root: `extent_mm` from the root to each side of the panel, inside a `margin` (a fraction of
    `size`) left free on every side, so that a whole standing person (head to feet, up to about 2 m tall,
    also with the hands raised over the head or the body tilted by a pitched camera) fits; and a ground
    grid (`extent_mm` half-width) through the lowest joint, so frames of a video are comparable. A pose
    reaching beyond the view (a gross estimate) is drawn smaller, to fit that frame.
    """
    pose = np.asarray(pose_mm, dtype=np.float64)
    if pose.ndim != 2 or pose.shape[1] != 3:
        raise ValueError(f"pose_mm must have shape (J, 3), got {pose.shape}")
    if not 0 <= margin < 0.5:
        raise ValueError(f"margin must be in [0, 0.5), got {margin}")
    img = np.full((size, size, 3), 250, np.uint8)
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    # orbit: rotate about the vertical (camera -Y) axis by azimuth, then tilt by elevation
    ry = np.array([[math.cos(az), 0, -math.sin(az)], [0, 1, 0], [math.sin(az), 0, math.cos(az)]])
    rx = np.array([[1, 0, 0], [0, math.cos(el), math.sin(el)], [0, -math.sin(el), math.cos(el)]])
    rot = rx @ ry
    finite = np.isfinite(pose).all(1)
    joint_px = 4  # what a joint's circle (radius thickness + 1) and its anti-aliased rim add around its centre
    room = max(size / 2 - margin * size - joint_px, 1.0)  # pixels from the root to the free margin
    scale = room / extent_mm
    if finite.any():
        reach = float(np.abs(pose[finite] @ rot.T)[:, :2].max()) * scale
        if reach > room:
            scale *= room / reach

    def to_px(p: np.ndarray) -> np.ndarray:
        q = p @ rot.T
        return np.stack([size / 2 + q[..., 0] * scale, size / 2 + q[..., 1] * scale], -1)

    ground = float(np.nanmax(pose[finite, 1])) if finite.any() else extent_mm
    e = extent_mm
    for t in np.linspace(-e, e, 9):
        for a, b in (((t, ground, -e), (t, ground, e)), ((-e, ground, t), (e, ground, t))):
            pa, pb = to_px(np.array(a)), to_px(np.array(b))
            cv2.line(img, tuple(int(v) for v in pa), tuple(int(v) for v in pb), (215, 215, 215), 1, cv2.LINE_AA)
    out = draw_skeleton(img, to_px(pose), skeleton=skeleton, thickness=2)
    if title:
        cv2.putText(out, title, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
    return out
