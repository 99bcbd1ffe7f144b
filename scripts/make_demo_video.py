"""Writes a demo video to try `mobpose infer` on without any download: one synthetic person (the
engine's renders) moving through a CMU test clip, seen by a fixed virtual camera, encoded by OpenCV.

    python scripts/make_demo_video.py [--out runs/demo/person.mp4] [--frames 150] [--size 640] [--seed 0]

Also writes the ground truth beside it (person.gt.npz: joints_cam (T, 18, 3) mm, intrinsics, boxes).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/demo/person.mp4")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--size", type=int, default=640, help="frame side in pixels")
    ap.add_argument("--sequence", type=int, default=3, help="index of the CMU test clip")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from mobpose.data import load_cmu, random_camera
    from mobpose.data.motion import resample
    from mobpose.data.synthetic import EngineConfig, sequence_frames
    from mobpose.data.synthetic_cameras import fit_camera
    from mobpose.runtime.render import VideoWriter

    pos = resample(load_cmu(split="test")[args.sequence], 30.0).positions[: args.frames]
    rng = np.random.default_rng(args.seed)
    cam = fit_camera(random_camera(rng, image_size=(args.size, args.size)), pos)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    gt = {"joints_cam": [], "bbox": []}
    with VideoWriter(out, fps=30.0) as writer:
        for f in sequence_frames(np.random.default_rng(args.seed + 1), pos, cam, EngineConfig(augment=False),
                                 full_image=True):
            writer.write(f["image"])
            gt["joints_cam"].append(f["joints_cam"])
            gt["bbox"].append(f["bbox"])
            intrinsics = f["intrinsics"]
    np.savez_compressed(out.with_suffix(".gt.npz"), joints_cam=np.stack(gt["joints_cam"]),
                        bbox=np.stack(gt["bbox"]), intrinsics=intrinsics)
    logging.info("wrote %s (%d frames, %dx%d, 30 fps) and %s", out, writer.count, args.size, args.size,
                 out.with_suffix(".gt.npz"))


if __name__ == "__main__":
    main()
