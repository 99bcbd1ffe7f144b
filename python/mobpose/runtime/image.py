"""One image, known person boxes: the IPEM's crop, forward pass and decoding to pixels and millimetres.

Crop: the box goes through :func:`mobpose.models.decode.process_bbox` (clamped, square, x1.25) and is
warped to the network's input size (pixels outside the image are black), exactly as the synthetic
engine makes its training crops. Decoding: ConvNeXtPose's (DESIGN.md section 2) with the camera
intrinsics (given, or :func:`mobpose.camera.default_intrinsics`) and a root depth (given, or from the
box height and an assumed body height).
"""

from __future__ import annotations

import logging
import os

import cv2
import numpy as np

from ..camera import default_intrinsics
from ..models.decode import crop_affine, process_bbox

__all__ = ["check_image", "crop_person", "estimate_root_depth", "load_image", "predict_image", "to_rgb8"]

logger = logging.getLogger(__name__)

BODY_HEIGHT_MM = 1700.0
"""Assumed standing height when the root depth must be guessed from the box size."""


def check_image(img, name: str, what: str = "image") -> None:
    """Raises TypeError (not an array; a dtype other than uint8/uint16) or ValueError (not (H, W), (H, W, 1),
    (H, W, 3) or (H, W, 4); no pixels) naming `name`; `what` is the noun of the messages."""
    if not isinstance(img, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array {what}, got {type(img).__name__}")
    if img.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"{name}: dtype {img.dtype} is not accepted, only uint8 or uint16 (convert floats "
                        f"explicitly, e.g. (x * 255).round().astype(np.uint8) for values in [0, 1])")
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 3, 4))):
        raise ValueError(f"{name}: expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) {what}, got shape "
                         f"{img.shape}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"{name}: zero-size {what} {img.shape}")


def to_rgb8(img: np.ndarray, bgr: bool, *, name: str = "image") -> np.ndarray:
    """Converts one decoded or given frame to contiguous RGB uint8 (H, W, 3).

    Parameters
    ----------
    img : np.ndarray
        uint8 or uint16, (H, W) or (H, W, 1) grayscale, (H, W, 3) colour or (H, W, 4) colour with alpha
        (dropped). uint16 is scaled to 8 bits by ``>> 8``. Other dtypes (floats in particular) are refused
        rather than guessed at: a float image may be in [0, 1] or [0, 255].
    bgr : bool
        True if the channels are OpenCV's BGR(A) order (what cv2 decodes), False if already RGB(A).
    name : str
        What `img` is (a path, "frame 7 of ..."), for the error messages.

    Returns
    -------
    np.ndarray
        (H, W, 3) uint8 RGB, C-contiguous (a new array unless `img` already was exactly that, RGB).

    Raises
    ------
    TypeError
        If `img` is not a numpy array or its dtype is not uint8/uint16.
    ValueError
        If its shape is not a 2D image with 1, 3 or 4 channels, or it has no pixels.
    """
    check_image(img, name)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGRA2RGB if bgr else cv2.COLOR_RGBA2RGB)
    if bgr:
        return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(img)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file as RGB uint8 (H, W, 3): grayscale and RGBA are converted, 16-bit scaled.

    Raises FileNotFoundError if `path` is not a file, ValueError if cv2 cannot decode it or it decodes to
    something :func:`to_rgb8` refuses (e.g. a float TIFF).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image {path} does not exist")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{path} is not a readable image")
    try:
        return to_rgb8(img, bgr=True, name=str(path))
    except TypeError as e:
        raise ValueError(str(e)) from None


def crop_person(image: np.ndarray, bbox, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The network crop of a person box: (crop (size, size, 3) uint8, crop_box (4,) x, y, w, h)."""
    h, w = image.shape[:2]
    crop_box = process_bbox(bbox, w, h)
    a = crop_affine(crop_box, size)
    crop = cv2.warpAffine(image, a[:2], (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    return crop, crop_box


def estimate_root_depth(bbox, intrinsics, body_height_mm: float = BODY_HEIGHT_MM) -> float:
    """Pelvis depth (mm) of a standing person whose box is `bbox` tall: fy * body height / box height."""
    return float(intrinsics[1] * body_height_mm / max(float(bbox[3]), 1.0))


def predict_image(model, image: np.ndarray, boxes, intrinsics=None, root_depths=None) -> dict:
    """Runs the IPEM on person boxes of one RGB uint8 image.

    Args:
        model: a ConvNeXtPose (e.g. mobpose.load_model("ipem-xs")).
        image: (H, W, 3) uint8 RGB.
        boxes: (P, 4) person boxes (x, y, w, h) in pixels.
        intrinsics: (9,) camera intrinsics or None for the default of the image size.
        root_depths: (P,) pelvis depths in mm or None to estimate them from the box heights.

    Returns:
        dict: ``pixels`` (P, J, 2), ``root_relative_mm`` (P, J, 3) and ``camera_mm`` (P, J, 3) camera frame
        (X right, Y down, Z forward), ``crops`` (P, S, S, 3), ``crop_boxes`` (P, 4), ``intrinsics``,
        ``root_depths`` (P,).
    """
    import torch

    from ..data.synthetic.dataset import normalise_crop
    from ..models.decode import decode_pose

    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(f"image must be uint8 (H, W, 3) RGB, got {getattr(image, 'dtype', type(image))} "
                         f"{getattr(image, 'shape', '')}")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    h, w = image.shape[:2]
    k = default_intrinsics(w, h) if intrinsics is None else np.asarray(intrinsics, dtype=np.float32)
    depths = (np.array([estimate_root_depth(b, k) for b in boxes]) if root_depths is None
              else np.asarray(root_depths, dtype=np.float64).reshape(-1))
    size = model.config.input_size
    crops, crop_boxes = zip(*(crop_person(image, b, size) for b in boxes), strict=True)
    x = torch.from_numpy(np.stack([normalise_crop(c) for c in crops]))
    model.eval()
    with torch.no_grad():
        xyz = model(x)
    dec = decode_pose(xyz.numpy(), np.stack(crop_boxes), depths, np.broadcast_to(k, (len(boxes), 9)),
                      model.heatmap_size)
    return {"pixels": dec["pixels"], "root_relative_mm": dec["root_relative_mm"], "camera_mm": dec["camera_mm"],
            "crops": np.stack(crops), "crop_boxes": np.stack(crop_boxes), "intrinsics": k, "root_depths": depths}
