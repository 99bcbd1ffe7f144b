"""The CMU motion-capture file of the shared data (Human3.6M-17 joints, 120 Hz).

File: ``<data>/cmu_mocap/cmu_h36m17_120hz.npz`` (see that folder's README): one float32 array
(T, 17, 3) per sequence under the key ``SPLIT/ACTION/NAME``, metres, Y up, 120 Hz, H36M-17 joint
order. :func:`load_cmu` converts to the mobpose world convention (mm, Z up; see
:mod:`mobpose.data.motion`). Results on this data are a "CMU-17" protocol, not comparable with
Human3.6M numbers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import numpy as np

from .motion import MotionSequence, resample, summary, y_up_to_z_up
from .paths import resolve_data_file

__all__ = [
    "CMU_FILE",
    "CMU_FPS",
    "MotionSequence",
    "cmu_path",
    "load_cmu",
    "resample",
    "summary",
]

logger = logging.getLogger(__name__)

CMU_FILE = "cmu_mocap/cmu_h36m17_120hz.npz"
"""Path of the CMU file relative to the shared data folder."""

CMU_FPS = 120.0
"""Capture rate of the CMU file."""

_SPLITS = ("train", "test")
_NUM_JOINTS = 17


def cmu_path(path: str | os.PathLike[str] | None = None) -> str:
    """Returns the CMU file path: ``path`` if given, else the default under the data folder.

    Raises:
        FileNotFoundError: If the file does not exist (the message says how to set MOBPOSE_DATA_DIR).
    """
    return str(resolve_data_file(CMU_FILE, path))


def _parse_key(key: str, source: str) -> tuple[str, str, str]:
    parts = key.split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"{source}: key {key!r} is not of the form SPLIT/ACTION/NAME")
    if parts[0] not in _SPLITS:
        raise ValueError(f"{source}: key {key!r} has split {parts[0]!r}, expected one of {_SPLITS}")
    return parts[0], parts[1], parts[2]


def load_cmu(
    path: str | os.PathLike[str] | None = None,
    split: str | None = None,
    actions: Iterable[str] | str | None = None,
) -> list[MotionSequence]:
    """Loads the CMU sequences, converted to mm and Z up.

    Args:
        path: The npz file; default: ``cmu_mocap/cmu_h36m17_120hz.npz`` under the data folder
            (``$MOBPOSE_DATA_DIR`` or ``<repo>/../shared/data``).
        split: ``"train"``, ``"test"`` or None for both.
        actions: Action name(s) to keep (e.g. ``["walking", "running"]``), None for all.

    Returns:
        MotionSequence list sorted by key; each has positions (T, 17, 3) float32 in millimetres,
        Z up (``(x, y, z)_file -> 1000 * (x, -z, y)``), fps 120.

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: If ``split`` or ``actions`` are unknown, or the file is malformed (bad key,
            shape, dtype or non-finite values).
    """
    if split is not None and split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS} or None, got {split!r}")
    wanted = None
    if actions is not None:
        wanted = {actions} if isinstance(actions, str) else set(actions)
        if not all(isinstance(a, str) for a in wanted):
            raise ValueError(f"actions must be strings, got {sorted(map(repr, wanted))}")
    file = cmu_path(path)
    sequences: list[MotionSequence] = []
    seen_actions: set[str] = set()
    with np.load(file, allow_pickle=False) as npz:
        keys = sorted(npz.files)
        if not keys:
            raise ValueError(f"{file}: the file holds no sequences")
        for key in keys:
            s, action, name = _parse_key(key, file)
            seen_actions.add(action)
            if (split is not None and s != split) or (wanted is not None and action not in wanted):
                continue
            arr = npz[key]
            if arr.ndim != 3 or arr.shape[1:] != (_NUM_JOINTS, 3) or arr.shape[0] < 1:
                raise ValueError(f"{file}: array {key!r} must have shape (T, 17, 3), got {arr.shape}")
            if not np.issubdtype(arr.dtype, np.floating):
                raise ValueError(f"{file}: array {key!r} must be floating point, got {arr.dtype}")
            if not np.isfinite(arr).all():
                raise ValueError(f"{file}: array {key!r} contains NaN or Inf")
            pos = y_up_to_z_up(arr.astype(np.float64), scale=1000.0).astype(np.float32)
            sequences.append(MotionSequence(name, s, action, CMU_FPS, pos, source=f"{file}:{key}"))
    if wanted is not None:
        unknown = wanted - seen_actions
        if unknown:
            raise ValueError(f"unknown actions {sorted(unknown)}; the file has {sorted(seen_actions)}")
    logger.info(
        "loaded %d CMU sequences (%d frames) from %s", len(sequences), sum(q.num_frames for q in sequences), file
    )
    return sequences
