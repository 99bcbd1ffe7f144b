"""The demo clip shipped inside the package: try mobpose with no data set and no download.

``walk.mp4``: 60 frames (2 s at 30 fps), 400 x 400, one synthetic person (the engine's renders) walking
through a CMU test clip, seen by a fixed virtual camera; ``walk.gt.npz`` beside it holds the ground
truth (joints_cam (60, 18, 3) mm, bbox (60, 4) px, intrinsics (9,)). Made by

    python scripts/make_demo_video.py --out python/mobpose/assets/walk.mp4 --frames 60 --size 400 --sequence 3 --seed 2

It is a render, not a real person: use it to check that mobpose runs and how fast, not how well.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["demo_truth", "demo_video"]

_ASSETS = Path(__file__).resolve().parent / "assets"


def demo_video() -> Path:
    """The path of the shipped demo clip (walk.mp4).

    Raises:
        FileNotFoundError: the package was installed without its assets.
    """
    path = _ASSETS / "walk.mp4"
    if not path.is_file():
        raise FileNotFoundError(f"the demo clip {path} is missing: reinstall mobpose (pip install .)")
    return path


def demo_truth() -> dict[str, np.ndarray]:
    """The demo clip's ground truth: joints_cam (60, 18, 3) mm, bbox (60, 4) x, y, w, h px, intrinsics (9,)."""
    path = demo_video().with_suffix(".gt.npz")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
