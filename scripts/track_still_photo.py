"""A still photo fed to mobpose.Pipeline as a stream, from its labelled box: does the tracker's box keep its
size? (The check behind an IPEM's `tracker_expand` in the weights manifest, docs/MODELS.md "ipem-mnv2".)

    python scripts/track_still_photo.py [--model ipem-mnv2] [--row 9041] [--expand 1.2,1.3,1.4] [--finder]

Prints, per expansion, the box size (w, h) of the first frames and of the last, and how often the tracker lost
the person and started again from the given box. Without --finder the pose tracker works alone; with it the
default people finder (RTMO) corrects the box every few frames, as in `mobpose.infer`.
"""

from __future__ import annotations

import argparse
import logging

import cv2
import numpy as np

import mobpose
from mobpose.lspet import default_dir
from mobpose.runtime import pipeline as pipeline_module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ipem-mnv2")
    ap.add_argument("--row", type=int, default=9041, help="LSPET row (0-based) whose photo and labels are used")
    ap.add_argument("--expand", default="1.2,1.3,1.4", help="comma list of tracker expansions to try")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--finder", action="store_true", help="with the default people finder")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = np.load(f"{default_dir()}/joints.npz")
    image = cv2.imread(f"{default_dir()}/images/{data['images'][args.row]}")
    if image is None:
        raise SystemExit(f"cannot read LSPET row {args.row}'s photo")
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    joints = data["joints"][args.row]
    joints = joints[joints[:, 2] > 0, :2]
    lo, hi = joints.min(0), joints.max(0)
    centre, size = (lo + hi) / 2, (hi - lo) * 1.15  # the labelled joints' box x1.15, as `mobpose eval lspet`
    box = (centre[0] - size[0] / 2, centre[1] - size[1] / 2, size[0], size[1])
    start = [round(float(v)) for v in box[2:]]
    print(f"{args.model}, LSPET row {args.row} ({image.shape[1]}x{image.shape[0]}), box {start}, "
          f"{'with' if args.finder else 'without'} the finder")
    for expand in (float(x) for x in args.expand.split(",")):
        pipeline_module.tracker_expand = lambda name, e=expand: e  # this run's expansion instead of the manifest's
        pipe = mobpose.Pipeline(args.model, bbox=box, **({} if args.finder else {"finder": None}))
        sizes = []
        for t in range(args.frames):
            pipe.update(rgb, index=t)
            sizes.append([round(float(v)) for v in pipe.tracker.box[2:]])
        restarts = sum(1 for a, b in zip(sizes, sizes[1:]) if b == start and a != start)
        print(f"expand {expand}: first {sizes[:6]}, last {sizes[-1]}, restarted from the given box {restarts} times")
        pipe.close()


if __name__ == "__main__":
    main()
