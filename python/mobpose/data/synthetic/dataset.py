"""The IPEM's training and evaluation sets: synthetic renders of CMU poses, made on the fly.

An item is a pure function of (seed, epoch, index): any worker, any resume, same image. The training
set draws a random frame of the chosen CMU split for every item; the evaluation set (``augment=False``)
renders a fixed list of frames of the held-out test split with the inference crop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ...models.convnextpose import IMAGENET_MEAN, IMAGENET_STD
from ..motion import MotionSequence, resample
from .scene import EngineConfig, make_sample

__all__ = ["SyntheticPoseDataset", "pose_pool", "normalise_crop"]


def pose_pool(sequences: Sequence[MotionSequence], fps: float = 30.0) -> np.ndarray:
    """All frames of `sequences` resampled to `fps`, stacked: (N, 17, 3) float32 world mm."""
    if not sequences:
        raise ValueError("need at least one motion sequence")
    frames = [resample(s, fps).positions if s.fps != fps else s.positions for s in sequences]
    return np.concatenate(frames).astype(np.float32)


def normalise_crop(crop: np.ndarray) -> np.ndarray:
    """uint8 (S, S, 3) RGB -> float32 (3, S, S), ImageNet mean/std (as models.convnextpose.normalize_images)."""
    mean, std = np.asarray(IMAGENET_MEAN, np.float32), np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(((crop.astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1))


class SyntheticPoseDataset(Dataset):
    """Renders one IPEM sample per item.

    Items are dicts of tensors: ``image`` (3, S, S) float32 normalised, ``target`` (18, 3), ``mask``
    (18, 3), ``facing`` (scene.facing_yaw, radians); with ``with_labels`` also ``joints_cam`` (18, 3) mm,
    ``crop_box`` (4,), ``root_depth``, ``intrinsics`` (9,) to decode predictions to millimetres.

    Args:
        poses: (N, 17, 3) world poses (see :func:`pose_pool`).
        length: items per epoch.
        seed: base seed.
        config: engine configuration (``augment=False`` for evaluation).
        fixed: draw the same items every epoch (evaluation); otherwise epoch-dependent.
        with_labels: add the decoding labels to each item.
    """

    def __init__(self, poses: np.ndarray, length: int, seed: int = 0, config: EngineConfig | None = None,
                 fixed: bool = False, with_labels: bool = False) -> None:
        poses = np.asarray(poses, dtype=np.float32)
        if poses.ndim != 3 or poses.shape[1:] != (17, 3) or len(poses) == 0:
            raise ValueError(f"poses must have shape (N, 17, 3) with N > 0, got {poses.shape}")
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.poses = poses
        self.length = int(length)
        self.seed = int(seed)
        self.config = config or EngineConfig()
        self.fixed = fixed
        self.with_labels = with_labels
        self.epoch = 0

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch that, with the seed and the index, seeds each item."""
        self.epoch = int(epoch)

    def sample(self, index: int) -> dict:
        """The raw engine sample of item `index` (see scene.make_sample)."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        rng = np.random.default_rng([self.seed, 0 if self.fixed else self.epoch, index])
        if self.fixed:  # evaluation: frames evenly spread over the pool
            pose = self.poses[(index * len(self.poses)) // self.length]
        else:
            pose = self.poses[int(rng.integers(len(self.poses)))]
        return make_sample(rng, pose, self.config)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        s = self.sample(int(index))
        item = {
            "image": torch.from_numpy(normalise_crop(s["crop"])),
            "target": torch.from_numpy(s["target"]),
            "mask": torch.from_numpy(s["mask"]),
            "facing": torch.tensor(float(s["facing"])),
        }
        if self.with_labels:
            for k in ("joints_cam", "crop_box", "intrinsics"):
                item[k] = torch.from_numpy(np.asarray(s[k], dtype=np.float32))
            item["root_depth"] = torch.tensor(float(s["root_depth"]))
        return item
