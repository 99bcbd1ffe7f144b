"""Top-down 2D pose with PoseResNet (mobpose.models.poseresnet), in numpy around the network: the person crop,
and the heatmaps decoded back to image pixels.

- **Crop** (:func:`crop_box_topdown`, :func:`rect_affine`): the person box (x, y, w, h) widened to the input's
  aspect ratio (W/H) around its centre and enlarged 1.25 times (mobpose.models.decode.process_bbox), then mapped
  onto the H x W input (rotation and scale only in training).
- **Pixel convention.** Coordinates are of pixel centres (pixel i spans [i - 0.5, i + 0.5]); a heatmap pixel j
  covers the input pixels whose centres map to it: u_input = (x_heatmap + 0.5) * W / w - 0.5 (and the inverse for
  the targets), so the three resolutions agree.
- **Decoding** (:func:`decode_heatmaps`): each joint's argmax, moved 0.25 heatmap pixels toward the higher of its
  two neighbours in x and in y (the paper's quarter offset), to input pixels, then through the inverse crop
  affine to image pixels. The joint's score is its heatmap maximum (the target's peak is 1).

Joints: H36M-17. A model trained on LSPET alone has no label for ``pelvis``, ``spine`` and ``neck_nose``: its
:class:`TopDown` fills them from the joints around them (:func:`fill_unlabelled`) when asked.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import numpy as np

from ..models.decode import process_bbox
from ..skeleton import H36M_17

__all__ = ["BOX_SCALE", "TopDown", "crop_box_topdown", "decode_heatmaps", "fill_unlabelled", "from_heatmap",
           "rect_affine", "to_heatmap"]

BOX_SCALE = 1.25
_N = H36M_17.joint_names


def crop_box_topdown(box, image_size: tuple[int, int], input_hw: tuple[int, int]) -> np.ndarray:
    """(x, y, w, h) of the crop of a person box in a (width, height) image for an input of (H, W)."""
    h, w = input_hw
    return process_bbox(box, image_size[0], image_size[1], aspect_ratio=w / h, scale=BOX_SCALE)


def rect_affine(crop_box, input_hw: tuple[int, int], scale: float = 1.0, rot_deg: float = 0.0,
                shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """(3, 3) image pixels -> input pixels for a crop box (already at the input's aspect ratio): its centre to
    the input's centre, its width to the input's width; `scale` > 1 shows more around the person, `rot_deg`
    turns the content counter-clockwise, `shift` moves the box by fractions of its size."""
    x, y, bw, bh = (float(v) for v in crop_box)
    h, w = input_hw
    cx, cy = x + bw / 2 + shift[0] * bw, y + bh / 2 + shift[1] * bh
    s = w / (bw * scale)
    a = math.radians(rot_deg)
    c, sn = math.cos(a) * s, math.sin(a) * s
    m = np.array([[c, sn, 0.0], [-sn, c, 0.0], [0.0, 0.0, 1.0]])
    m[0, 2] = (w - 1) / 2 - (m[0, 0] * cx + m[0, 1] * cy)
    m[1, 2] = (h - 1) / 2 - (m[1, 0] * cx + m[1, 1] * cy)
    return m


def to_heatmap(uv: np.ndarray, input_hw: tuple[int, int], heatmap_hw: tuple[int, int]) -> np.ndarray:
    """Input pixels (..., 2) -> heatmap pixels (see the module docstring)."""
    f = np.array([heatmap_hw[1] / input_hw[1], heatmap_hw[0] / input_hw[0]])
    return (np.asarray(uv, np.float64) + 0.5) * f - 0.5


def from_heatmap(xy: np.ndarray, input_hw: tuple[int, int], heatmap_hw: tuple[int, int]) -> np.ndarray:
    """Heatmap pixels (..., 2) -> input pixels."""
    f = np.array([input_hw[1] / heatmap_hw[1], input_hw[0] / heatmap_hw[0]])
    return (np.asarray(xy, np.float64) + 0.5) * f - 0.5


def decode_heatmaps(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, J, h, w) -> (N, J, 2) heatmap pixels (argmax + the quarter offset) and (N, J) maxima."""
    hm = np.asarray(heatmaps, np.float64)
    n, j, h, w = hm.shape
    flat = hm.reshape(n, j, -1)
    idx = flat.argmax(-1)
    score = np.take_along_axis(flat, idx[..., None], -1)[..., 0]
    y, x = np.divmod(idx, w)
    xy = np.stack([x, y], -1).astype(np.float64)
    nn_, jj = np.meshgrid(np.arange(n), np.arange(j), indexing="ij")
    xl, xr = np.clip(x - 1, 0, w - 1), np.clip(x + 1, 0, w - 1)
    yu, yd = np.clip(y - 1, 0, h - 1), np.clip(y + 1, 0, h - 1)
    dx = hm[nn_, jj, y, xr] - hm[nn_, jj, y, xl]
    dy = hm[nn_, jj, yd, x] - hm[nn_, jj, yu, x]
    inner_x, inner_y = (x > 0) & (x < w - 1), (y > 0) & (y < h - 1)
    xy[..., 0] += np.where(inner_x, 0.25 * np.sign(dx), 0.0)
    xy[..., 1] += np.where(inner_y, 0.25 * np.sign(dy), 0.0)
    return xy, score


def fill_unlabelled(kp: np.ndarray) -> np.ndarray:
    """(..., 17, 2) keypoints with ``pelvis`` = the hips' midpoint, ``spine`` = halfway from it to the thorax and
    ``neck_nose`` = halfway from the thorax to the head top (for models trained on LSPET, which labels none of
    the three)."""
    kp = np.array(kp, np.float64, copy=True)
    pelvis = (kp[..., _N.index("left_hip"), :] + kp[..., _N.index("right_hip"), :]) / 2
    thorax = kp[..., _N.index("thorax"), :]
    kp[..., _N.index("pelvis"), :] = pelvis
    kp[..., _N.index("spine"), :] = (pelvis + thorax) / 2
    kp[..., _N.index("neck_nose"), :] = (thorax + kp[..., _N.index("head_top"), :]) / 2
    return kp


class TopDown:
    """PoseResNet on person boxes: ``keypoints, scores = topdown(image, boxes)``.

    Args:
        model: a PoseResNet module, a checkpoint path or a shipped name.
        backend: "torch" (the module) or "tflite" (its export on XNNPACK, made on first use into the export
            cache: needs the export extra).
        threads: CPU threads.
        fill: fill the joints LSPET-trained models do not learn (:func:`fill_unlabelled`).
    """

    def __init__(self, model: Any, *, backend: str = "torch", threads: int = 1, fill: bool = True) -> None:
        if backend not in ("torch", "tflite"):
            raise ValueError(f"backend must be 'torch' or 'tflite', got {backend!r}")
        if isinstance(model, str | os.PathLike):
            from ..pretrained import load_model

            model = load_model(str(model))
        from ..models.poseresnet import PoseResNet

        if not isinstance(model, PoseResNet):
            raise ValueError(f"model must be a PoseResNet, got {type(model).__name__}")
        self.module = model.eval()
        self.backend = backend
        self._runner = None
        if backend == "tflite":
            from .backends import _Runner, export_cached

            self._runner = _Runner(export_cached(self.module, "poseresnet"), threads)
        self.config = dataclasses.asdict(model.config)
        self.input_hw = (int(self.config["input_height"]), int(self.config["input_width"]))
        self.heatmap_hw = tuple(model.config.heatmap_size)
        self.threads, self.fill = int(threads), fill

    def crops(self, image: np.ndarray, boxes) -> tuple[np.ndarray, np.ndarray]:
        """(N, H, W, 3) uint8 crops of `boxes` (N, 4) x, y, w, h and their (N, 3, 3) affines."""
        import cv2

        h, w = self.input_hw
        crops, affines = [], []
        for box in np.asarray(boxes, np.float64).reshape(-1, 4):
            a = rect_affine(crop_box_topdown(box, (image.shape[1], image.shape[0]), self.input_hw), self.input_hw)
            crops.append(cv2.warpAffine(image, a[:2], (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0)))
            affines.append(a)
        return np.stack(crops) if crops else np.zeros((0, h, w, 3), np.uint8), np.asarray(affines).reshape(-1, 3, 3)

    def heatmaps(self, crops: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 crops -> (N, J, h, w) heatmaps."""
        if self._runner is not None:
            return np.concatenate([next(iter(self._runner(image=c[None].astype(np.float32)).values()))
                                   for c in crops])
        import torch

        from ..models.convnextpose import normalize_images

        with torch.no_grad():
            torch.set_num_threads(self.threads)
            return self.module(normalize_images(crops)).numpy()

    def __call__(self, image: np.ndarray, boxes) -> tuple[np.ndarray, np.ndarray]:
        """(N, 17, 2) image pixels and (N, 17) scores of the people in `boxes` (N, 4) (x, y, w, h) of one
        (H, W, 3) uint8 RGB image."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be a uint8 (H, W, 3) RGB array, got "
                             f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}")
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        j = int(self.config["num_joints"])
        if not len(boxes):
            return np.zeros((0, j, 2), np.float32), np.zeros((0, j), np.float32)
        crops, affines = self.crops(image, boxes)
        xy, score = decode_heatmaps(self.heatmaps(crops))
        uv = from_heatmap(xy, self.input_hw, self.heatmap_hw)
        inv = np.linalg.inv(affines)
        pts = np.einsum("nij,nkj->nki", inv[:, :2, :2], uv) + inv[:, None, :2, 2]
        if self.fill and j == 17:
            pts = fill_unlabelled(pts)
        return pts.astype(np.float32), score.astype(np.float32)
