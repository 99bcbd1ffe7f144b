"""A contact sheet of a video's frames (e.g. the --render of `mobpose infer`), for the docs.

    python scripts/video_sheet.py VIDEO OUT.jpg [--every 50] [--columns 4] [--width 480] [--crop-left]

Every --every-th frame, scaled to --width pixels wide, --columns to a row, its index written in the corner.
--crop-left keeps the left half of each frame only (the camera view of a `mobpose infer --render` video, without
its 3D panel).
"""

from __future__ import annotations

import argparse
import logging
import sys

import cv2
import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video")
    ap.add_argument("out")
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--columns", type=int, default=4)
    ap.add_argument("--width", type=int, default=480)
    ap.add_argument("--crop-left", type=float, default=0.0,
                    help="keep this share of each frame from the left (e.g. 0.571 for a 768-wide view of 1344)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cap = cv2.VideoCapture(args.video)
    if not cap.isOpened():
        logging.error("%s: cannot open the video", args.video)
        return 2
    tiles, i = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % args.every == 0:
            if args.crop_left:
                frame = frame[:, : int(round(frame.shape[1] * args.crop_left))]
            h = int(round(frame.shape[0] * args.width / frame.shape[1]))
            tile = cv2.resize(frame, (args.width, h), interpolation=cv2.INTER_AREA)
            cv2.putText(tile, f"frame {i}", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
            tiles.append(tile)
        i += 1
    if not tiles:
        logging.error("%s: no frame", args.video)
        return 2
    while len(tiles) % args.columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[k:k + args.columns], 1) for k in range(0, len(tiles), args.columns)]
    cv2.imwrite(args.out, np.concatenate(rows, 0), [cv2.IMWRITE_JPEG_QUALITY, 85])
    logging.info("wrote %s: %d tiles of %d frames", args.out, len(tiles), i)
    return 0


if __name__ == "__main__":
    sys.exit(main())
