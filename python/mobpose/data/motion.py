"""Motion sequences, the mobpose world convention and resampling.

World convention (every loader in :mod:`mobpose.data` returns this):
    right-handed, **millimetres**, **Z up**, ground plane near z = 0 — the Human3.6M world frame.
    Y-up sources (the CMU file, most BVH files) are rotated by +90 degrees about X:
    ``(x, y, z)_Yup -> (x, -z, y)_Zup`` (a proper rotation: handedness and left/right are kept).
    Camera space follows :mod:`mobpose.camera` (X right, Y down, Z forward, mm).

Shapes: T frames, J joints.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

__all__ = [
    "WORLD_UNITS",
    "WORLD_UP",
    "MotionSequence",
    "resample",
    "summary",
    "y_up_to_z_up",
]

logger = logging.getLogger(__name__)

WORLD_UNITS = "mm"
"""Length unit of every world and camera-space array in mobpose.data."""

WORLD_UP = (0.0, 0.0, 1.0)
"""Up direction of the mobpose world frame (Z up, right-handed, ground near z = 0)."""


def y_up_to_z_up(points: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Rotates Y-up points into the Z-up world and scales them: ``(x, y, z) -> scale * (x, -z, y)``.

    Args:
        points: (..., 3) array in a right-handed Y-up frame.
        scale: Factor applied after the rotation, e.g. 1000 for metres to millimetres.

    Returns:
        (..., 3) float array of the same dtype (float64 for integer input).

    Raises:
        ValueError: If ``points`` does not have a last dimension of 3.
    """
    arr = np.asarray(points)
    if arr.ndim == 0 or arr.shape[-1] != 3:
        raise ValueError(f"points must have last dimension 3, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    out = np.empty_like(arr)
    out[..., 0] = arr[..., 0] * scale
    out[..., 1] = -arr[..., 2] * scale
    out[..., 2] = arr[..., 1] * scale
    return out


@dataclass
class MotionSequence:
    """One motion clip in the mobpose world convention.

    Attributes:
        name: Clip name, e.g. ``"walking_1"``.
        split: ``"train"``, ``"test"`` or ``""`` when the source has no split.
        action: Action label, ``""`` if unknown.
        fps: Frame rate in frames per second (> 0).
        positions: (T, J, 3) float32 world positions in millimetres, Z up.
        source: Where the clip came from (a file path or description), for provenance only.
    """

    name: str
    split: str
    action: str
    fps: float
    positions: np.ndarray
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        pos = np.asarray(self.positions)
        if pos.ndim != 3 or pos.shape[-1] != 3 or pos.shape[0] < 1 or pos.shape[1] < 1:
            raise ValueError(f"positions must have shape (T, J, 3) with T, J >= 1, got {pos.shape}")
        if not np.issubdtype(pos.dtype, np.number):
            raise ValueError(f"positions must be numeric, got dtype {pos.dtype}")
        pos = pos.astype(np.float32, copy=False)
        if not np.isfinite(pos).all():
            raise ValueError(f"positions of sequence {self.name!r} contain NaN or Inf")
        fps = float(self.fps)
        if not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be positive and finite, got {self.fps!r}")
        self.positions = pos
        self.fps = fps

    @property
    def key(self) -> str:
        """``split/action/name`` (empty parts dropped)."""
        return "/".join(p for p in (self.split, self.action, self.name) if p)

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return int(self.positions.shape[0])

    @property
    def num_joints(self) -> int:
        """Number of joints J."""
        return int(self.positions.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds, ``T / fps``."""
        return self.num_frames / self.fps


def resample(seq: MotionSequence, target_fps: float) -> MotionSequence:
    """Resamples a sequence to another frame rate.

    When ``seq.fps / target_fps`` is an integer k (within 1e-6), frames are decimated exactly
    (every k-th frame from frame 0: ``ceil(T / k)`` frames, e.g. 120 -> 30 Hz keeps frames 0, 4, 8 ...).
    Otherwise positions are linearly interpolated at times ``n / target_fps`` for
    ``n = 0 .. floor((T - 1) * target_fps / fps)``, which never extrapolates past the last frame.

    Args:
        seq: Sequence with positions (T, J, 3).
        target_fps: Wanted frame rate (> 0); upsampling is allowed.

    Returns:
        A new MotionSequence at ``target_fps`` with positions (T', J, 3) float32.

    Raises:
        ValueError: If ``target_fps`` is not positive and finite.
    """
    target = float(target_fps)
    if not np.isfinite(target) or target <= 0:
        raise ValueError(f"target_fps must be positive and finite, got {target_fps!r}")
    ratio = seq.fps / target
    k = round(ratio)
    if k >= 1 and abs(ratio - k) < 1e-6:
        pos = seq.positions[::k].copy()
    else:
        t_count = int(np.floor((seq.num_frames - 1) * target / seq.fps + 1e-9)) + 1
        src = np.arange(t_count, dtype=np.float64) * (seq.fps / target)  # fractional source frame
        i0 = np.clip(np.floor(src).astype(np.int64), 0, seq.num_frames - 1)
        i1 = np.minimum(i0 + 1, seq.num_frames - 1)
        w = (src - i0)[:, None, None]
        p = seq.positions.astype(np.float64)
        pos = ((1.0 - w) * p[i0] + w * p[i1]).astype(np.float32)
    logger.debug("resampled %s: %d frames at %g fps -> %d at %g", seq.key, seq.num_frames, seq.fps, len(pos), target)
    return replace(seq, fps=target, positions=pos)


def summary(sequences: Iterable[MotionSequence]) -> dict:
    """Counts of a list of sequences.

    Returns:
        dict with ``sequences``, ``frames``, ``seconds`` (totals), ``fps`` (sorted distinct rates),
        ``by_split`` {split: sequence count}, ``by_action`` {action: sequence count} and
        ``frames_by_split`` {split: frame count}.
    """
    seqs = list(sequences)
    by_split: Counter[str] = Counter()
    by_action: Counter[str] = Counter()
    frames_by_split: Counter[str] = Counter()
    for s in seqs:
        by_split[s.split] += 1
        by_action[s.action] += 1
        frames_by_split[s.split] += s.num_frames
    return {
        "sequences": len(seqs),
        "frames": int(sum(s.num_frames for s in seqs)),
        "seconds": float(sum(s.duration for s in seqs)),
        "fps": sorted({s.fps for s in seqs}),
        "by_split": dict(sorted(by_split.items())),
        "by_action": dict(sorted(by_action.items())),
        "frames_by_split": dict(sorted(frames_by_split.items())),
    }
