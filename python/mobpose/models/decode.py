"""From ConvNeXtPose's heatmap coordinates to pixels and camera-space millimetres, and back.

Dimensions: J joints, D x H x W heatmap volume; `...` any leading dims (B, T) shared by every argument
(broadcast). Bounding boxes are (x, y, w, h) in pixels, x and y the top-left corner. Cameras follow
mobpose.camera: intrinsics (fx, fy, cx, cy, k1, k2, k3, p1, p2), X right, Y down, Z forward.

Heatmap -> image: u = x / W * bbox_w + bbox_x, v = y / H * bbox_h + bbox_y; depth:
Z = (z / D * 2 - 1) * depth_range / 2 + root_depth (2000 mm around the root: 62.5 mm per bin at D = 32);
then X = (u - cx) / fx * Z, Y = (v - cy) / fy * Z (pinhole). `encode_pose` is the inverse (it projects
with the camera's distortion, so the two round-trip exactly for a pinhole camera).

Every function except `process_bbox` takes numpy arrays or torch tensors (then differentiable); if any
array argument is a tensor, the result is one. No model state.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..camera import project, unproject

__all__ = ["crop_affine", "decode_pose", "encode_pose", "heatmap_to_image", "process_bbox"]


def process_bbox(
    bbox: Any,
    image_width: float,
    image_height: float,
    aspect_ratio: float = 1.0,
    scale: float = 1.25,
) -> np.ndarray:
    """The network's crop box for a person box: clamped, widened to the input aspect ratio, scaled.

    The box is clamped to [0, image_width] x [0, image_height], then its shorter side (relative to
    `aspect_ratio`) is grown around the centre until width / height = aspect_ratio, then both sides are
    multiplied by `scale` around the centre (the result may extend past the image).

    Args:
        bbox: (4,) person box (x, y, w, h) in pixels.
        image_width: image width in pixels.
        image_height: image height in pixels.
        aspect_ratio: width / height of the network input (1 for 256x256).
        scale: enlargement factor.

    Returns:
        (4,) float64 crop box (x, y, w, h).

    Raises:
        ValueError: on a non-finite value, a non-positive size or factor, or a box outside the image.
    """
    box = np.asarray(bbox, dtype=np.float64)
    if box.shape != (4,):
        raise ValueError(f"bbox must have shape (4,) (x, y, w, h), got {box.shape}")
    if not np.isfinite(box).all():
        raise ValueError(f"bbox must be finite, got {box.tolist()}")
    if box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"bbox must have positive width and height, got {box.tolist()}")
    for name, value in (("image_width", image_width), ("image_height", image_height),
                        ("aspect_ratio", aspect_ratio), ("scale", scale)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be positive and finite, got {value}")
    x1, y1 = max(box[0], 0.0), max(box[1], 0.0)
    x2, y2 = min(box[0] + box[2], float(image_width)), min(box[1] + box[3], float(image_height))
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"bbox {box.tolist()} does not overlap the {image_width}x{image_height} image")
    w, h = x2 - x1, y2 - y1
    cx, cy = x1 + w / 2, y1 + h / 2
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    w, h = w * scale, h * scale
    return np.array([cx - w / 2, cy - h / 2, w, h])


# ---- helpers for numpy arrays and torch tensors alike ------------------------------------------------


def _is_torch(a: Any) -> bool:
    return type(a).__module__.startswith("torch")


def _convert(args: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Makes every argument a float64 numpy array, or a tensor like the first tensor among them."""
    ref = next((a for a in args.values() if _is_torch(a)), None)
    if ref is None:
        out = {}
        for name, a in args.items():
            arr = np.asarray(a)
            if arr.dtype.kind not in "fiu":
                raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
            out[name] = arr.astype(np.float64)
        return out, np
    import torch

    dtype = ref.dtype if ref.is_floating_point() else torch.float32
    out = {}
    for name, a in args.items():
        t = torch.as_tensor(a, device=ref.device)
        if t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"{name} must hold real numbers, got dtype {t.dtype}")
        out[name] = t.to(dtype)
    return out, torch


def _check(arrays: dict[str, Any], xp: Any, lead: tuple[int, ...]) -> None:
    """Finite values, and leading dims that broadcast against `lead`."""
    for name, a in arrays.items():
        finite = np.isfinite(a).all() if xp is np else bool(xp.isfinite(a.detach()).all())
        if not finite:
            raise ValueError(f"{name} must be finite, found NaN or Inf")
    for name, tail in (("bbox", 1), ("intrinsics", 1), ("root_depth", 0)):
        if name in arrays:
            shape = tuple(arrays[name].shape)
            try:
                np.broadcast_shapes(shape[: len(shape) - tail], lead)
            except ValueError:
                raise ValueError(f"{name} of shape {shape} does not broadcast against leading dims {lead}") from None


def _check_last(a: Any, name: str, size: int, dims: str, min_ndim: int = 1) -> None:
    shape = tuple(a.shape)
    if len(shape) < min_ndim or shape[-1] != size:
        raise ValueError(f"{name} must have shape {dims}, got {shape}")


def _check_heatmap_size(heatmap_size: Any) -> tuple[int, int, int]:
    try:
        d, h, w = (int(s) for s in heatmap_size)
    except (TypeError, ValueError):
        raise ValueError(f"heatmap_size must be 3 integers (D, H, W), got {heatmap_size!r}") from None
    if min(d, h, w) < 1:
        raise ValueError(f"heatmap_size must be positive, got {(d, h, w)}")
    return d, h, w


def _check_depth_range(depth_range: float) -> float:
    if not (math.isfinite(depth_range) and depth_range > 0):
        raise ValueError(f"depth_range must be positive and finite, got {depth_range}")
    return float(depth_range)


def _check_bbox_size(bbox: Any) -> None:
    if not bool((bbox[..., 2:] > 0).all()):
        raise ValueError("bbox must have positive width and height")


# ---- decoding and encoding -------------------------------------------------------------------------


def heatmap_to_image(xyz_hm: Any, bbox: Any, heatmap_size: tuple[int, int, int]) -> Any:
    """Heatmap (x, y) -> image pixels: u = x / W * bbox_w + bbox_x, v = y / H * bbox_h + bbox_y.

    Args:
        xyz_hm: (..., J, 3) or (..., J, 2) coordinates in heatmap units.
        bbox: (..., 4) crop boxes (x, y, w, h) the heatmaps were computed on.
        heatmap_size: (D, H, W).

    Returns:
        (..., J, 2) pixels (u, v).
    """
    _, h, w = _check_heatmap_size(heatmap_size)
    arrays, xp = _convert({"xyz_hm": xyz_hm, "bbox": bbox})
    xyz, box = arrays["xyz_hm"], arrays["bbox"]
    if xyz.ndim < 2 or xyz.shape[-1] not in (2, 3):
        raise ValueError(f"xyz_hm must have shape (..., J, 3), got {tuple(xyz.shape)}")
    _check_last(box, "bbox", 4, "(..., 4)")
    _check(arrays, xp, tuple(xyz.shape[:-2]))
    _check_bbox_size(box)
    b = box[..., None, :]
    u = xyz[..., 0] / w * b[..., 2] + b[..., 0]
    v = xyz[..., 1] / h * b[..., 3] + b[..., 1]
    return xp.stack([u, v], -1)


def decode_pose(
    xyz_hm: Any,
    bbox: Any,
    root_depth: Any,
    intrinsics: Any,
    heatmap_size: tuple[int, int, int],
    depth_range: float = 2000.0,
    root: int = 0,
) -> dict[str, Any]:
    """Heatmap coordinates -> pixels and camera-space millimetres.

    Args:
        xyz_hm: (..., J, 3) network output (x, y, z) in heatmap units.
        bbox: (..., 4) crop boxes (x, y, w, h) in pixels.
        root_depth: (...) camera-space Z of the root joint in mm (a scalar for one pose).
        intrinsics: (..., 9) camera intrinsics (pinhole back-projection: distortion is ignored).
        heatmap_size: (D, H, W).
        depth_range: depth extent of the D bins in mm, centred on the root.
        root: index of the root joint.

    Returns:
        'pixels' (..., J, 2), 'camera_mm' (..., J, 3) absolute camera-space positions and
        'root_relative_mm' (..., J, 3) = camera_mm minus its root joint.

    Raises:
        ValueError: on a bad shape or a non-finite value (naming the argument), a non-positive box size,
            heatmap size or depth range, or a root index out of range.
    """
    d, _, _ = _check_heatmap_size(heatmap_size)
    depth_range = _check_depth_range(depth_range)
    arrays, xp = _convert({"xyz_hm": xyz_hm, "bbox": bbox, "root_depth": root_depth, "intrinsics": intrinsics})
    xyz, depth0, k = arrays["xyz_hm"], arrays["root_depth"], arrays["intrinsics"]
    _check_last(xyz, "xyz_hm", 3, "(..., J, 3)", min_ndim=2)
    _check_last(arrays["bbox"], "bbox", 4, "(..., 4)")
    _check_last(k, "intrinsics", 9, "(..., 9)")
    num_joints = xyz.shape[-2]
    if not -num_joints <= root < num_joints:
        raise ValueError(f"root must index one of the {num_joints} joints, got {root}")
    _check(arrays, xp, tuple(xyz.shape[:-2]))
    pixels = heatmap_to_image(xyz, arrays["bbox"], heatmap_size)
    z = (xyz[..., 2] / d * 2 - 1) * (depth_range / 2) + depth0[..., None]
    camera = unproject(pixels, z, k)
    return {"pixels": pixels, "camera_mm": camera, "root_relative_mm": camera - camera[..., root : root + 1, :]}


def encode_pose(
    camera_mm: Any,
    bbox: Any,
    root_depth: Any,
    intrinsics: Any,
    heatmap_size: tuple[int, int, int],
    depth_range: float = 2000.0,
) -> Any:
    """Camera-space joints -> heatmap-unit training targets, the inverse of `decode_pose`.

    x = (u - bbox_x) / bbox_w * W, y = (v - bbox_y) / bbox_h * H with (u, v) = project(camera_mm),
    z = ((Z - root_depth) / (depth_range / 2) + 1) * D / 2. Targets outside [0, W] etc. are not clipped.

    Args:
        camera_mm: (..., J, 3) camera-space positions in mm, Z > 0.
        bbox: (..., 4) crop boxes (x, y, w, h) in pixels.
        root_depth: (...) camera-space Z of the root joint in mm.
        intrinsics: (..., 9) camera intrinsics (with distortion if any).
        heatmap_size: (D, H, W).
        depth_range: depth extent of the D bins in mm, centred on the root.

    Returns:
        (..., J, 3) (x, y, z) in heatmap units.

    Raises:
        ValueError: on a bad shape or a non-finite value (naming the argument), a joint with Z <= 0, or a
            non-positive box size, heatmap size or depth range.
    """
    d, h, w = _check_heatmap_size(heatmap_size)
    depth_range = _check_depth_range(depth_range)
    arrays, xp = _convert({"camera_mm": camera_mm, "bbox": bbox, "root_depth": root_depth, "intrinsics": intrinsics})
    pts, box, depth0, k = arrays["camera_mm"], arrays["bbox"], arrays["root_depth"], arrays["intrinsics"]
    _check_last(pts, "camera_mm", 3, "(..., J, 3)", min_ndim=2)
    _check_last(box, "bbox", 4, "(..., 4)")
    _check_last(k, "intrinsics", 9, "(..., 9)")
    _check(arrays, xp, tuple(pts.shape[:-2]))
    _check_bbox_size(box)
    if not bool((pts[..., 2] > 0).all()):
        raise ValueError("camera_mm must have Z > 0 (every joint in front of the camera)")
    uv = project(pts, k)
    b = box[..., None, :]
    x = (uv[..., 0] - b[..., 0]) / b[..., 2] * w
    y = (uv[..., 1] - b[..., 1]) / b[..., 3] * h
    z = ((pts[..., 2] - depth0[..., None]) / (depth_range / 2) + 1) * (d / 2)
    return xp.stack([x, y, z], -1)


def crop_affine(box: np.ndarray, size: int, scale: float = 1.0, rot_deg: float = 0.0,
                shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """(3, 3) affine taking image pixels to crop pixels for the crop box `box` (x, y, w, h).

    The box (already expanded by process_bbox) maps onto the size x size crop; `scale` enlarges the
    box, `rot_deg` rotates the content counter-clockwise about the box centre, `shift` moves the box
    by fractions of its size. With the defaults this is the inference crop: u' = (u - x) * size / w.
    """
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w / 2 + shift[0] * w, y + h / 2 + shift[1] * h
    s = size / (max(w, h) * scale)
    a = math.radians(rot_deg)
    c, sn = math.cos(a) * s, math.sin(a) * s
    # crop = R S (p - centre) + size / 2, with image y pointing down (counter-clockwise on screen)
    m = np.array([[c, sn, 0.0], [-sn, c, 0.0], [0.0, 0.0, 1.0]])
    m[0, 2] = size / 2 - (m[0, 0] * cx + m[0, 1] * cy)
    m[1, 2] = size / 2 - (m[1, 0] * cx + m[1, 1] * cy)
    return m
