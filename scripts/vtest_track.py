"""Issue 15 item 5: with a first box given on the man in the dark jacket of Debian opencv-doc's vtest.avi, is
the tracked box still on him? His boxes in seven frames were read by hand from RTMO's detections drawn on
the frames; a frame counts when the tracked box's centre lies inside his box.

    python scripts/vtest_track.py [--model ipem-mnv2] [--finder-every 5]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

import mobpose

VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")  # Debian's opencv-doc
GIVEN = (636, 236, 52, 88)  # x, y, w, h at frame 0
TARGET = {44: (428, 169, 473, 264), 74: (266, 177, 303, 231), 80: (258, 171, 297, 240), 86: (272, 182, 309, 252),
          92: (289, 186, 329, 268), 98: (326, 188, 366, 269), 104: (375, 171, 420, 278)}  # x1, y1, x2, y2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--finder-every", type=int, default=5, help="frames between the people finder's runs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not VIDEO.exists():
        raise SystemExit(f"{VIDEO} is missing: apt-get install opencv-doc")
    res = mobpose.infer(VIDEO, model=args.model, bbox=GIVEN, max_frames=max(TARGET) + 8,
                        finder_every=args.finder_every, progress=False)
    hits = 0
    for frame, (x1, y1, x2, y2) in TARGET.items():
        x, y, w, h = res.boxes[frame]
        on = x1 <= x + w / 2 <= x2 and y1 <= y + h / 2 <= y2
        hits += on
        print(f"frame {frame}: box {np.round(res.boxes[frame]).astype(int).tolist()} {'on him' if on else 'elsewhere'}")
    print(f"on him in {hits} of {len(TARGET)} checked frames")


if __name__ == "__main__":
    main()
