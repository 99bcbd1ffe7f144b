"""A torch Dataset of fixed-length pose windows cut from sequences.

Shapes: T frames of a sequence, W frames of a window, J joints, C coordinates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["PoseWindowDataset"]

logger = logging.getLogger(__name__)

_MODES = ("centred", "causal")


def _as_array(a, name: str, i: int) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if arr.ndim < 1 or arr.shape[0] < 1:
        raise ValueError(f"{name}[{i}] must be an array (T, ...) with T >= 1, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name}[{i}] must be numeric, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


class PoseWindowDataset(Dataset):
    """Windows of W consecutive frames of (input, target) sequence pairs.

    Each item is anchored at one frame ``t`` of one sequence:

    - ``mode="centred"``: frames ``t - W//2 .. t + (W-1)//2`` (the anchor is window index ``W//2``;
      for even W one more past than future frame);
    - ``mode="causal"``: frames ``t - W + 1 .. t`` (the anchor is the last index; never a future frame).

    With ``pad=True`` every frame ``0, stride, 2*stride, ...`` of every sequence is an anchor and
    frames outside the sequence are replaced by its first/last frame (edge replication; ``mask``
    marks real frames). With ``pad=False`` only anchors whose window lies inside the sequence are used,
    still every ``stride``-th from the first such anchor.

    Items are dicts of tensors: ``input`` (W, ...) and ``target`` (W, ...) float32, ``mask`` (W,)
    bool, ``sequence`` and ``frame`` (the anchor) and ``anchor`` (its index in the window), all int64.
    The dataset is deterministic; ``transform(input, target, rng)`` (numpy arrays in and out), if
    given, gets ``numpy.random.default_rng((seed, epoch, index))`` so an item depends only on the
    seed, the epoch (:meth:`set_epoch`) and its index — also with DataLoader workers.

    Args:
        inputs: Per sequence, an array (T_i, ...) e.g. noisy poses (T_i, J, 3) or keypoints (T_i, J, 2).
        targets: Per sequence, an array (T_i, ...) with the same T_i, e.g. clean poses.
        window: W >= 1.
        mode: ``"centred"`` or ``"causal"``.
        stride: Distance between anchors (>= 1).
        pad: Edge padding (see above).
        transform: Optional augmentation ``(input, target, rng) -> (input, target)``.
        seed: Seed of the transform's generators.

    Raises:
        ValueError: If the lists differ in length or are empty, a sequence's input and target have
            different lengths, an argument is invalid, or (``pad=False``) a sequence is shorter than
            the window.
    """

    def __init__(
        self,
        inputs: Sequence,
        targets: Sequence,
        window: int,
        mode: str = "centred",
        stride: int = 1,
        pad: bool = True,
        transform: Callable | None = None,
        seed: int = 0,
    ) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"inputs and targets must have the same length, got {len(inputs)} and {len(targets)}")
        if len(inputs) == 0:
            raise ValueError("inputs must contain at least one sequence")
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f"window must be an integer >= 1, got {window!r}")
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
            raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        self.window = int(window)
        self.mode = mode
        self.stride = int(stride)
        self.pad = bool(pad)
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self.inputs = [_as_array(a, "inputs", i) for i, a in enumerate(inputs)]
        self.targets = [_as_array(a, "targets", i) for i, a in enumerate(targets)]
        self.past = self.window - 1 if mode == "causal" else self.window // 2
        future = self.window - 1 - self.past
        index = []
        for i, (x, y) in enumerate(zip(self.inputs, self.targets, strict=True)):
            t_len = x.shape[0]
            if y.shape[0] != t_len:
                raise ValueError(f"sequence {i}: inputs has {t_len} frames but targets has {y.shape[0]}")
            if self.pad:
                anchors = np.arange(0, t_len, self.stride)
            else:
                if t_len < self.window:
                    raise ValueError(
                        f"sequence {i} has {t_len} frames, shorter than window={self.window}, and pad=False; "
                        "use pad=True or drop short sequences"
                    )
                anchors = np.arange(self.past, t_len - future, self.stride)
            index.append(np.stack([np.full(len(anchors), i), anchors], 1))
        self._index = np.concatenate(index).astype(np.int64)
        logger.debug(
            "PoseWindowDataset: %d windows of %d frames from %d sequences",
            len(self._index),
            self.window,
            len(self.inputs),
        )

    def __len__(self) -> int:
        return len(self._index)

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch that, with the seed and the index, seeds the transform."""
        self.epoch = int(epoch)

    def frames(self, index: int) -> tuple[int, np.ndarray, np.ndarray]:
        """Sequence number, frame indices (W,) (clipped to the sequence) and mask (W,) of an item."""
        s, t = (int(v) for v in self._index[index])
        raw = t - self.past + np.arange(self.window)
        t_len = self.inputs[s].shape[0]
        return s, np.clip(raw, 0, t_len - 1), (raw >= 0) & (raw < t_len)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} windows")
        index = index % len(self)
        s, idx, mask = self.frames(index)
        x = self.inputs[s][idx]
        y = self.targets[s][idx]
        if self.transform is not None:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            x, y = self.transform(x, y, rng)
        return {
            "input": torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32)),
            "target": torch.as_tensor(np.ascontiguousarray(y, dtype=np.float32)),
            "mask": torch.as_tensor(mask),
            "sequence": torch.tensor(s, dtype=torch.int64),
            "frame": torch.tensor(int(self._index[index, 1]), dtype=torch.int64),
            "anchor": torch.tensor(self.past, dtype=torch.int64),
        }
