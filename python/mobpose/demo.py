"""The demo clip shipped inside the package: try mobpose with no data set and no download.

``walk.mp4``: 60 frames (2 s at 30 fps), 400 x 400, one synthetic person (the engine's renders) walking
through a CMU test clip, seen by a fixed virtual camera. Made by

    python scripts/make_demo_video.py --out python/mobpose/assets/walk.mp4 --frames 60 --size 400 --sequence 3 --seed 2

(the ground truth it writes beside the clip, walk.gt.npz, is not shipped: .gitignore keeps it out).

It is a render, not a real person: use it to check that mobpose runs and how fast, not how well.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["demo_video"]

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

