"""Real photos for the IPEM: LSPET train crops with 2D targets, and a mix of them with the synthetic renders.

An LSPET item is a crop made as the engine makes its training crops (the labelled joints' box x1.15, then
the inference box processing: square, x1.25; scale, rotation and shift augmentation; mirror with the left and
right labels swapped; colour, blur, noise, JPEG and a synthetic occluder as the engine's ``_finish`` /
``_occlude``), with the target of the 18 IPEM joints in heatmap units and a mask that keeps x and y of the
labelled joints inside the crop and never z (LSPET has no depth: the heatmap-marginal and L1 losses then
train the 2D part only). Items are a pure function of (seed, epoch, index), as the synthetic set's.

Joints (see mobpose.lspet for the differences): ankles, knees, hips, wrists, elbows, shoulders by name, LSP's
``head_top`` as ``head_top`` and LSP's ``neck`` as ``thorax``. LSP's hips sit lower and wider than H36M's hip
joints: they are supervised as they are (the IPEM's hips on photos drift toward LSP's definition; on renders
the 3D loss keeps H36M's). ``pelvis``, ``spine``, ``neck_nose`` and ``thorax_mid`` have no LSP label and are
masked out (the pelvis is deliberately not made from LSP's hips: that midpoint sits below H36M's pelvis).
``facing`` is NaN (unknown): the facing loss skips such items.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ..lspet import H36M_OF_LSP, TRAIN_ROWS, load, person_box
from ..models.decode import process_bbox
from ..skeleton import H36M_18
from .synthetic.dataset import normalise_crop
from .synthetic.scene import EngineConfig, _finish, _occlude, augmented_affine

__all__ = ["LSPETCropDataset", "MixedIPEMDataset"]


class LSPETCropDataset(Dataset):
    """LSPET photos (default: the train rows) as IPEM training items (``image``, ``target``, ``mask``, ``facing``).

    Args:
        length: items per epoch (each draws a random row).
        seed: base seed.
        config: the engine configuration whose crop size, heatmap size and augmentation settings apply.
        rows: the LSPET rows drawn from (never the val rows 9000-9999 for training).
        folder: the LSPET folder (default mobpose.lspet.default_dir()).
    """

    def __init__(self, length: int, seed: int = 0, config: EngineConfig | None = None, rows=TRAIN_ROWS,
                 folder=None) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        data = load(folder)
        self.rows = np.asarray(list(rows), np.int64)
        if len(self.rows) == 0:
            raise ValueError("no LSPET rows to draw from")
        self.joints, self.images, self.folder = data["joints"], data["images"], data["folder"]
        names18 = list(H36M_18.joint_names)
        self.index18 = np.array([names18.index(H36M_OF_LSP[n]) for n in data["names"]])
        self.flip = np.asarray(H36M_18.flip_indices)
        self.length, self.seed, self.config, self.epoch = int(length), int(seed), config or EngineConfig(), 0

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def sample(self, index: int) -> dict:
        """The crop (uint8 (S, S, 3)), target and mask (18, 3), the row and the affine of item `index`."""
        import cv2

        from ..runtime.image import load_image

        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        cfg = self.config
        rng = np.random.default_rng([self.seed, self.epoch, index, 7])
        row = int(self.rows[int(rng.integers(len(self.rows)))])
        img = load_image(self.folder / "images" / self.images[row])
        h, w = img.shape[:2]
        lab = self.joints[row]
        crop_box = process_bbox(person_box(lab), w, h)
        size = cfg.crop_size
        a = augmented_affine(rng, crop_box, cfg)
        mirror = bool(cfg.augment and rng.random() < cfg.mirror_prob)
        if mirror:  # x' = size - 1 - x on pixel centres, as cv2.flip
            a = np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ a
        crop = cv2.warpAffine(img, a[:2], (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
        fimg, _ = _occlude(rng, crop.astype(np.float32) / 255.0, cfg)
        crop = _finish(rng, fimg, cfg)

        d, hh, ww = cfg.heatmap_size
        uv = np.concatenate([lab[:, :2], np.ones((len(lab), 1), np.float32)], 1) @ a[:2].T
        target = np.zeros((H36M_18.num_joints, 3), np.float32)
        mask = np.zeros((H36M_18.num_joints, 3), np.float32)
        target[self.index18, 0] = uv[:, 0] * ww / size
        target[self.index18, 1] = uv[:, 1] * hh / size
        target[:, 2] = d / 2  # unused (masked): the root's depth bin
        inside = (lab[:, 2] > 0) & (uv[:, 0] >= 0) & (uv[:, 0] <= size - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= size - 1)
        mask[self.index18[inside], :2] = 1.0
        if mirror:  # the image is mirrored: a left label now marks the right joint
            target, mask = target[self.flip], mask[self.flip]
        return {"crop": crop, "target": target, "mask": mask, "row": row, "crop_affine": a.astype(np.float32),
                "mirrored": mirror}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        s = self.sample(int(index))
        return {"image": torch.from_numpy(normalise_crop(s["crop"])), "target": torch.from_numpy(s["target"]),
                "mask": torch.from_numpy(s["mask"]), "facing": torch.tensor(float("nan"))}


class MixedIPEMDataset(Dataset):
    """The synthetic renders and LSPET crops in one training set: each item is an LSPET crop with probability
    `fraction` (drawn from (seed, epoch, index)), else the synthetic item of that index."""

    def __init__(self, synthetic: Dataset, real: Dataset, fraction: float, seed: int = 0) -> None:
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"the LSPET fraction must be in (0, 1), got {fraction}")
        self.synthetic, self.real, self.fraction, self.seed, self.epoch = synthetic, real, float(fraction), seed, 0

    def __len__(self) -> int:
        return len(self.synthetic)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for d in (self.synthetic, self.real):
            if hasattr(d, "set_epoch"):
                d.set_epoch(epoch)

    def is_real(self, index: int) -> bool:
        return bool(np.random.default_rng([self.seed, self.epoch, index, 11]).random() < self.fraction)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.is_real(index):
            return self.real[index % len(self.real)]
        return self.synthetic[index]
