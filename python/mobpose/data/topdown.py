"""LSPET train photos as top-down training items for PoseResNet: the person crop and Gaussian heatmap targets.

An item is the crop of the labelled joints' box (mobpose.lspet.person_box) as the runtime makes it
(mobpose.runtime.topdown: widened to the input's aspect ratio, x1.25), with the paper's augmentations: scale
0.7-1.3 (x 1 +- 0.3, clipped N(0, 0.15)), rotation N(0, 20 deg) clipped to +-40 with probability 0.6, a horizontal
flip with probability 0.5 (left and right labels swapped), and mobpose's photometric ones (colour, blur, noise,
JPEG and a synthetic occluder, the engine's ``_finish``/``_occlude``). Targets: per joint a Gaussian of sigma
`sigma` heatmap pixels at the joint (sub-pixel centre, peak 1), and a weight of 1 where the joint is labelled,
visible and inside the crop, else 0. Joints in H36M-17 order; ``pelvis``, ``spine`` and ``neck_nose`` have no
LSP label and weigh 0 (mobpose.lspet for the others' definitions). Items are a pure function of (seed, epoch,
index).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ..lspet import H36M_OF_LSP, TRAIN_ROWS, load, person_box
from ..runtime.topdown import crop_box_topdown, rect_affine, to_heatmap
from ..skeleton import H36M_17
from .synthetic.dataset import normalise_crop
from .synthetic.scene import EngineConfig, _finish, _occlude

__all__ = ["TopDownLSPET", "gaussian_targets"]


def gaussian_targets(xy: np.ndarray, heatmap_hw: tuple[int, int], sigma: float) -> np.ndarray:
    """(J, h, w) float32 Gaussians of std `sigma` (heatmap pixels) peaking at 1 at each joint (J, 2)."""
    h, w = heatmap_hw
    ys, xs = np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32)
    gx = np.exp(-((xs[None] - xy[:, :1]) ** 2) / (2 * sigma ** 2))
    gy = np.exp(-((ys[None] - xy[:, 1:]) ** 2) / (2 * sigma ** 2))
    return (gy[:, :, None] * gx[:, None, :]).astype(np.float32)


class TopDownLSPET(Dataset):
    """LSPET photos (default: the train rows) as PoseResNet items: ``image`` (3, H, W), ``target`` (J, h, w),
    ``weight`` (J,).

    Args:
        length: items per epoch (each draws a random row).
        input_hw, heatmap_hw: the network's input and heatmap sizes (H, W).
        sigma: the targets' std in heatmap pixels (2 in the paper at 64x48).
        seed: base seed.
        augment: the training augmentations (False: the inference crop).
        rows: the LSPET rows drawn from (never the val rows 9000-9999 for training).
        folder: the LSPET folder.
    """

    def __init__(self, length: int, input_hw: tuple[int, int], heatmap_hw: tuple[int, int], *, sigma: float = 2.0,
                 seed: int = 0, augment: bool = True, rows=TRAIN_ROWS, folder=None) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        data = load(folder)
        self.rows = np.asarray(list(rows), np.int64)
        if len(self.rows) == 0:
            raise ValueError("no LSPET rows to draw from")
        self.joints, self.images, self.folder = data["joints"], data["images"], data["folder"]
        names = list(H36M_17.joint_names)
        self.index = np.array([names.index(H36M_OF_LSP[n]) for n in data["names"]])
        self.flip = np.asarray(H36M_17.flip_indices)
        self.input_hw, self.heatmap_hw, self.sigma = tuple(input_hw), tuple(heatmap_hw), float(sigma)
        self.length, self.seed, self.augment, self.epoch = int(length), int(seed), bool(augment), 0
        self.engine = EngineConfig(augment=augment) if augment else EngineConfig(
            augment=False, blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.0)

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def sample(self, index: int) -> dict:
        """The crop (uint8 (H, W, 3)), keypoints in input pixels (17, 2), their weights (17,), the row and the
        (3, 3) image -> input affine of item `index`."""
        import cv2

        from ..runtime.image import load_image

        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        rng = np.random.default_rng([self.seed, self.epoch, index, 13])
        row = int(self.rows[int(rng.integers(len(self.rows)))])
        img = load_image(self.folder / "images" / self.images[row])
        lab = self.joints[row]
        box = crop_box_topdown(person_box(lab), (img.shape[1], img.shape[0]), self.input_hw)
        h, w = self.input_hw
        scale, rot, flip = 1.0, 0.0, False
        if self.augment:
            scale = float(np.clip(1 + rng.normal(0, 0.15), 0.7, 1.3))
            if rng.random() < 0.6:
                rot = float(np.clip(rng.normal(0, 20.0), -40.0, 40.0))
            flip = bool(rng.random() < 0.5)
        a = rect_affine(box, self.input_hw, scale, rot)
        if flip:  # x' = W - 1 - x on pixel centres, as cv2.flip
            a = np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ a
        crop = cv2.warpAffine(img, a[:2], (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
        if self.augment:
            fimg, _ = _occlude(rng, crop.astype(np.float32) / 255.0, self.engine)
            crop = _finish(rng, fimg, self.engine)
        uv = np.concatenate([lab[:, :2], np.ones((len(lab), 1))], 1) @ a[:2].T
        kp = np.zeros((17, 2), np.float32)
        weight = np.zeros(17, np.float32)
        kp[self.index] = uv
        inside = (lab[:, 2] > 0) & (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1)
        weight[self.index[inside]] = 1.0
        if flip:  # the image is mirrored: a left label now marks the right joint
            kp, weight = kp[self.flip], weight[self.flip]
        return {"crop": crop, "keypoints": kp, "weight": weight, "row": row, "affine": a.astype(np.float32)}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        s = self.sample(int(index))
        target = gaussian_targets(to_heatmap(s["keypoints"], self.input_hw, self.heatmap_hw), self.heatmap_hw,
                                  self.sigma)
        return {"image": torch.from_numpy(normalise_crop(s["crop"])), "target": torch.from_numpy(target),
                "weight": torch.from_numpy(s["weight"])}
