"""Cameras for synthetic views of world motion: random phone-like cameras and a fixed protocol set.

World: mm, Z up (see :mod:`mobpose.data.motion`). Camera space and intrinsics follow
:mod:`mobpose.camera`: X right, Y down, Z forward; ``X_cam = R (X_world - C)``; intrinsics
(fx, fy, cx, cy, k1, k2, k3, p1, p2) in pixels. Shapes: T frames, J joints.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from ..camera import project, world_to_camera
from .motion import MotionSequence

__all__ = [
    "Camera",
    "PoseViews",
    "camera_views",
    "fit_camera",
    "look_at",
    "make_views",
    "protocol_cameras",
    "random_camera",
]

logger = logging.getLogger(__name__)

_NEAR_MM = 100.0  # points closer than this in depth count as behind the camera


@dataclass(frozen=True, eq=False)
class Camera:
    """A calibrated camera (compared by identity: it holds arrays).

    Attributes:
        intrinsics: (9,) float64 (fx, fy, cx, cy, k1, k2, k3, p1, p2) in pixels.
        rotation: (3, 3) world-to-camera rotation R.
        centre: (3,) camera centre C in world mm.
        width: Image width in pixels.
        height: Image height in pixels.
        name: Optional identifier (e.g. a Human3.6M camera id).
    """

    intrinsics: np.ndarray
    rotation: np.ndarray
    centre: np.ndarray
    width: int
    height: int
    name: str = field(default="")

    def __post_init__(self) -> None:
        k = np.asarray(self.intrinsics, dtype=np.float64).reshape(-1)
        r = np.asarray(self.rotation, dtype=np.float64)
        c = np.asarray(self.centre, dtype=np.float64).reshape(-1)
        if k.shape != (9,) or not np.isfinite(k).all() or k[0] <= 0 or k[1] <= 0:
            raise ValueError(f"intrinsics must be 9 finite values with fx, fy > 0, got {self.intrinsics!r}")
        if r.shape != (3, 3) or not np.isfinite(r).all():
            raise ValueError(f"rotation must be a finite (3, 3) matrix, got shape {r.shape}")
        if not np.allclose(r @ r.T, np.eye(3), atol=1e-5) or np.linalg.det(r) < 0:
            raise ValueError("rotation must be a proper rotation matrix (orthonormal, det +1)")
        if c.shape != (3,) or not np.isfinite(c).all():
            raise ValueError(f"centre must be 3 finite values, got {self.centre!r}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"width and height must be positive, got {self.width}x{self.height}")
        object.__setattr__(self, "intrinsics", k)
        object.__setattr__(self, "rotation", r)
        object.__setattr__(self, "centre", c)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., J, 3) world mm -> (..., J, 3) camera-space mm."""
        return world_to_camera(np.asarray(points, dtype=np.float64), self.rotation, self.centre)

    def to_dict(self) -> dict:
        """JSON-friendly description (for checkpoint metadata)."""
        return {
            "name": self.name,
            "intrinsics": self.intrinsics.tolist(),
            "rotation": self.rotation.tolist(),
            "centre": self.centre.tolist(),
            "width": self.width,
            "height": self.height,
        }


@dataclass(frozen=True, eq=False)
class PoseViews:
    """One sequence seen by one camera.

    Attributes:
        positions_cam: (T, J, 3) float32 camera-space positions in mm.
        positions_rel: (T, J, 3) float32 root-relative camera-space positions (joint 0 subtracted).
        keypoints_2d: (T, J, 2) float32 pixels from :func:`mobpose.camera.project`; NaN for joints
            behind the camera (depth < 100 mm), where a projection has no meaning.
        visible: (T, J) bool: in front of the camera and inside ``[0, W-1] x [0, H-1]``.
        camera: The camera used (after fitting, if any).
    """

    positions_cam: np.ndarray
    positions_rel: np.ndarray
    keypoints_2d: np.ndarray
    visible: np.ndarray
    camera: Camera


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0), roll_deg: float = 0.0) -> np.ndarray:
    """World-to-camera rotation of a camera at ``eye`` looking at ``target``.

    Camera axes (rows of R): X right, Y down, Z forward = normalised ``target - eye``; "down" is
    as close to ``-up`` as possible; then the image is rolled by ``roll_deg`` about the optical axis
    (positive: the camera turns clockwise about its forward axis as seen from behind it).

    Args:
        eye: (3,) camera centre.
        target: (3,) point to look at.
        up: (3,) world up direction.
        roll_deg: Roll about the optical axis in degrees.

    Returns:
        (3, 3) float64 rotation R with ``X_cam = R (X_world - eye)``.

    Raises:
        ValueError: If ``eye`` equals ``target`` or the viewing direction is parallel to ``up``.
    """
    eye = np.asarray(eye, dtype=np.float64).reshape(3)
    target = np.asarray(target, dtype=np.float64).reshape(3)
    up = np.asarray(up, dtype=np.float64).reshape(3)
    fwd = target - eye
    n = np.linalg.norm(fwd)
    if n < 1e-9:
        raise ValueError("eye and target must differ")
    fwd /= n
    right = np.cross(fwd, up)
    rn = np.linalg.norm(right)
    if rn < 1e-6 * max(np.linalg.norm(up), 1e-12):
        raise ValueError("the viewing direction target - eye must not be parallel to up")
    right /= rn
    down = np.cross(fwd, right)
    rot = np.stack([right, down, fwd])
    if roll_deg:
        a = np.deg2rad(roll_deg)
        c, s = np.cos(a), np.sin(a)
        roll = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        rot = roll @ rot
    return rot


def random_camera(
    rng: np.random.Generator,
    target=(0.0, 0.0, 950.0),
    image_size: tuple[int, int] = (1000, 1000),
    fov_deg: tuple[float, float] = (40.0, 75.0),
    distance_mm: tuple[float, float] = (2500.0, 6000.0),
    height_mm: tuple[float, float] = (500.0, 2500.0),
    roll_deg: float = 5.0,
    principal_jitter: float = 0.02,
    azimuth_deg: float | None = None,
    name: str = "",
) -> Camera:
    """Samples a phone-like pinhole camera looking at ``target`` (the subject's root).

    Horizontal field of view uniform in ``fov_deg`` (fx = fy = (W / 2) / tan(fov / 2)); principal
    point at the image centre plus Gaussian jitter of ``principal_jitter`` x size (clipped to 3
    sigma); centre at a uniform distance in ``distance_mm`` from ``target``, a height (world z) uniform
    in ``height_mm`` and a uniform azimuth (or ``azimuth_deg``); looking at ``target`` with a roll
    uniform in ``[-roll_deg, roll_deg]``. No lens distortion. The root therefore projects to the
    principal point, inside the image.

    Args:
        rng: numpy Generator (the only source of randomness).
        target: (3,) world point in mm the camera looks at.
        image_size: (width, height) in pixels.
        fov_deg: (min, max) horizontal field of view in degrees, within (0, 180).
        distance_mm: (min, max) distance from the camera centre to ``target``; the minimum must
            exceed the largest height difference so the camera can reach every sampled height.
        height_mm: (min, max) camera height above the ground (world z).
        roll_deg: Maximum absolute roll in degrees.
        principal_jitter: Standard deviation of the principal point offset as a fraction of the size.
        azimuth_deg: Fixed azimuth (degrees about world Z, from +X) instead of a random one.
        name: Name stored on the camera.

    Returns:
        Camera.

    Raises:
        ValueError: If a range is empty or out of bounds.
    """
    width, height = (int(v) for v in image_size)
    if width <= 0 or height <= 0:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    for nm, rg in (("fov_deg", fov_deg), ("distance_mm", distance_mm), ("height_mm", height_mm)):
        if len(rg) != 2 or not rg[0] <= rg[1]:
            raise ValueError(f"{nm} must be a (min, max) pair with min <= max, got {rg!r}")
    if not (0 < fov_deg[0] and fov_deg[1] < 180):
        raise ValueError(f"fov_deg must lie in (0, 180), got {fov_deg!r}")
    target = np.asarray(target, dtype=np.float64).reshape(3)
    max_dz = max(abs(height_mm[0] - target[2]), abs(height_mm[1] - target[2]))
    if distance_mm[0] <= max_dz:
        raise ValueError(
            f"distance_mm minimum {distance_mm[0]} must exceed the largest height difference {max_dz:.0f} "
            "between the camera heights and the target"
        )
    fov = np.deg2rad(rng.uniform(*fov_deg))
    f = (width / 2.0) / np.tan(fov / 2.0)
    jit = np.clip(rng.normal(0.0, principal_jitter, size=2), -3 * principal_jitter, 3 * principal_jitter)
    cx = width / 2.0 + jit[0] * width
    cy = height / 2.0 + jit[1] * height
    dist = rng.uniform(*distance_mm)
    cam_z = rng.uniform(*height_mm)
    az = np.deg2rad(azimuth_deg) if azimuth_deg is not None else rng.uniform(0.0, 2 * np.pi)
    horiz = np.sqrt(dist**2 - (cam_z - target[2]) ** 2)
    eye = np.array([target[0] + horiz * np.cos(az), target[1] + horiz * np.sin(az), cam_z])
    roll = rng.uniform(-roll_deg, roll_deg) if roll_deg > 0 else 0.0
    rot = look_at(eye, target, roll_deg=roll)
    intr = np.array([f, f, cx, cy, 0, 0, 0, 0, 0], dtype=np.float64)
    return Camera(intr, rot, eye, width, height, name)


def protocol_cameras(seed: int = 0, count: int = 4, image_size: tuple[int, int] = (1000, 1000)) -> list[Camera]:
    """The fixed "CMU-17 protocol" camera set.

    ``count`` cameras from :func:`random_camera` with ``numpy.random.default_rng(seed)``, azimuths
    spread evenly (``360 * i / count`` plus up to +-20 degrees), looking at (0, 0, 950) mm — a
    subject's root once its sequence is recentred (``make_views(..., anchor="centre")``).
    Names are ``"cmu17_s{seed}_c{i}"``. The same arguments always give the same cameras.

    Raises:
        ValueError: If ``count`` < 1.
    """
    if int(count) < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    rng = np.random.default_rng(seed)
    cams = []
    for i in range(int(count)):
        az = 360.0 * i / count + rng.uniform(-20.0, 20.0)
        cams.append(random_camera(rng, image_size=image_size, azimuth_deg=az, name=f"cmu17_s{seed}_c{i}"))
    return cams


def fit_camera(camera: Camera, positions: np.ndarray, margin: float = 0.02, min_depth_mm: float = 1000.0) -> Camera:
    """Moves a camera back along its optical axis just enough to see every point.

    Rotation and intrinsics are kept; the camera only moves backwards (never forwards), so a camera
    that already sees everything is returned unchanged. Exact for distortion-free cameras; with
    distortion the result is checked and pushed further back until every point projects inside.

    Args:
        camera: Camera to move.
        positions: (..., J, 3) world points in mm (e.g. a whole sequence (T, J, 3)).
        margin: Border kept free on each side, as a fraction of the image size (< 0.5).
        min_depth_mm: Minimum camera-space depth of every point.

    Returns:
        A new Camera (same name).

    Raises:
        ValueError: If ``margin`` is not in [0, 0.5) or the principal point lies outside the
            image minus its margin (then no distance makes every point visible).
    """
    if not 0 <= margin < 0.5:
        raise ValueError(f"margin must be in [0, 0.5), got {margin}")
    k = camera.intrinsics
    lo_u, hi_u = margin * camera.width, (1 - margin) * camera.width - 1
    lo_v, hi_v = margin * camera.height, (1 - margin) * camera.height - 1
    if not (lo_u < k[2] < hi_u and lo_v < k[3] < hi_v):
        raise ValueError("the principal point must lie inside the image minus the margin")
    world = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    pts = camera.world_to_camera(world)
    x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
    # pinhole: u = fx * x / (z + d) + cx must lie in [lo_u, hi_u]  ->  z + d >= fx * x / (hi_u - cx) ...
    need = np.maximum.reduce(
        [
            np.full_like(z, min_depth_mm),
            k[0] * x / (hi_u - k[2]),
            k[0] * -x / (k[2] - lo_u),
            k[1] * y / (hi_v - k[3]),
            k[1] * -y / (k[3] - lo_v),
        ]
    )
    d = max(0.0, float(np.max(need - z))) * (1 + 1e-9)
    fwd = camera.rotation[2]
    cam = replace(camera, centre=camera.centre - d * fwd)
    for _ in range(60):  # only matters with lens distortion
        uv = project(cam.world_to_camera(world), cam.intrinsics)
        ok = (
            (uv[:, 0] >= lo_u - 1e-6)
            & (uv[:, 0] <= hi_u + 1e-6)
            & (uv[:, 1] >= lo_v - 1e-6)
            & (uv[:, 1] <= hi_v + 1e-6)
        )
        if ok.all():
            break
        d = d * 1.1 + 100.0
        cam = replace(camera, centre=camera.centre - d * fwd)
    if d > 0:
        logger.debug("fit_camera moved %s back by %.0f mm", camera.name or "camera", d)
    return cam


def camera_views(positions: np.ndarray, camera: Camera, root: int = 0) -> PoseViews:
    """Views of world positions through a camera.

    Args:
        positions: (T, J, 3) world positions in mm.
        camera: The camera.
        root: Joint subtracted for ``positions_rel``.

    Returns:
        PoseViews (camera-space, root-relative, 2D pixels, visibility).

    Raises:
        ValueError: If ``positions`` is not (T, J, 3) or ``root`` is out of range.
    """
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 3 or pos.shape[-1] != 3:
        raise ValueError(f"positions must have shape (T, J, 3), got {pos.shape}")
    if not 0 <= root < pos.shape[1]:
        raise ValueError(f"root must be in [0, {pos.shape[1]}), got {root}")
    cam = camera.world_to_camera(pos)
    in_front = cam[..., 2] > _NEAR_MM
    safe = cam.copy()
    safe[..., 2] = np.where(in_front, cam[..., 2], 1.0)
    uv = project(safe, camera.intrinsics)
    uv[~in_front] = np.nan
    with np.errstate(invalid="ignore"):
        inside = (
            (uv[..., 0] >= 0) & (uv[..., 0] <= camera.width - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= camera.height - 1)
        )
    rel = cam - cam[:, root : root + 1]
    return PoseViews(
        positions_cam=cam.astype(np.float32),
        positions_rel=rel.astype(np.float32),
        keypoints_2d=uv.astype(np.float32),
        visible=in_front & inside,
        camera=camera,
    )


def make_views(
    seq: MotionSequence | np.ndarray,
    camera: Camera,
    anchor: str = "centre",
    fit: bool = False,
    root: int = 0,
) -> PoseViews:
    """Camera-space 3D, root-relative 3D, 2D pixels and visibility of a sequence.

    Args:
        seq: MotionSequence, or world positions (T, J, 3) in mm.
        camera: Camera, e.g. from :func:`random_camera` or :func:`protocol_cameras`.
        anchor: How the motion is placed before viewing:
            ``"centre"``: shifted horizontally so the middle of the root's x/y range is at the world
            origin (a static camera filming the whole clip; heights kept);
            ``"follow"``: shifted per frame so the root's x/y is at the origin (a camera that tracks
            the subject; the global trajectory is lost);
            ``"none"``: world positions used as they are.
        fit: If True, the camera is first moved back with :func:`fit_camera` until every joint of
            every frame is in view.
        root: Root joint index.

    Returns:
        PoseViews; ``views.camera`` is the camera actually used.

    Raises:
        ValueError: If ``anchor`` is unknown or the positions are not (T, J, 3).
    """
    pos = np.asarray(seq.positions if isinstance(seq, MotionSequence) else seq, dtype=np.float64)
    if pos.ndim != 3 or pos.shape[-1] != 3:
        raise ValueError(f"seq positions must have shape (T, J, 3), got {pos.shape}")
    if not 0 <= root < pos.shape[1]:
        raise ValueError(f"root must be in [0, {pos.shape[1]}), got {root}")
    if anchor == "centre":
        r = pos[:, root, :2]
        pos = pos.copy()
        pos[..., :2] -= (0.5 * (r.min(0) + r.max(0)))[None, None]
    elif anchor == "follow":
        pos = pos.copy()
        pos[..., :2] -= pos[:, root : root + 1, :2]
    elif anchor != "none":
        raise ValueError(f"anchor must be 'centre', 'follow' or 'none', got {anchor!r}")
    if fit:
        camera = fit_camera(camera, pos)
    return camera_views(pos, camera, root=root)
