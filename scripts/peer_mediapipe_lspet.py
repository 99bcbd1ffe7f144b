"""MediaPipe BlazePose (full) on LSPET val with the box given: the peer row of `mobpose eval lspet --peer`.

MediaPipe needs numpy < 2, so this runs in its own venv and does not import mobpose:

    python3 -m venv ../mpvenv && ../mpvenv/bin/pip install "mediapipe==0.10.21" "numpy<2"
    ../mpvenv/bin/python scripts/peer_mediapipe_lspet.py --out runs/peer_blazepose.npz
    mobpose eval lspet --peer blazepose=runs/peer_blazepose.npz

(the wheel carries its models; nothing is downloaded at run time). Each photo is cropped as mobpose crops
for the IPEM: the labelled joints' box x1.15 (mobpose.lspet.person_box, restated below and checked by
`load_peer`), made square and x1.25 around its centre (mobpose.models.decode.process_bbox), padded with
black where it leaves the photo, resized to 256x256. BlazePose (static image mode, model complexity 1 =
"full") runs on that crop; its landmarks map to LSP's joints by name (ankles 27/28, knees 25/26, hips
23/24, wrists 15/16, elbows 13/14, shoulders 11/12); LSP's neck is taken as the shoulders' midpoint and
head top, which BlazePose has no landmark for, as the nose moved away from the shoulders' midpoint by half
their distance (a stated guess: the limbs row is the fair comparison). A photo where BlazePose finds no
one gets NaN (a miss).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import cv2
import numpy as np

CROP = 256
# LSP order -> BlazePose landmark (None: derived, see the docstring)
LSP_FROM_BLAZEPOSE = (28, 26, 24, 23, 25, 27, 16, 14, 12, 11, 13, 15, None, None)


def person_box(joints: np.ndarray, enlarge: float = 1.15) -> np.ndarray:
    """mobpose.lspet.person_box: (x, y, w, h) of the visible labelled joints, enlarged about its centre."""
    vis = joints[joints[:, 2] > 0, :2]
    lo, hi = vis.min(0), vis.max(0)
    c, s = (lo + hi) / 2, np.maximum(hi - lo, 8.0) * enlarge
    return np.array([c[0] - s[0] / 2, c[1] - s[1] / 2, s[0], s[1]])


def square_crop(img: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """The square x1.25 crop of `box` resized to CROP: (crop, x0, y0, side) in photo pixels."""
    side = max(box[2], box[3]) * 1.25
    x0, y0 = box[0] + box[2] / 2 - side / 2, box[1] + box[3] / 2 - side / 2
    s = CROP / side
    m = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], np.float32)
    return cv2.warpAffine(img, m, (CROP, CROP), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0)), x0, y0, side


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lspet", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "lspet"))
    ap.add_argument("--rows", default="9000:10000")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import mediapipe as mp

    folder = Path(args.lspet)
    data = np.load(folder / "joints.npz")
    start, stop = (int(v) for v in args.rows.split(":"))
    rows = list(range(start, stop))
    pixels = np.full((len(rows), 14, 2), np.nan)
    boxes = np.zeros((len(rows), 4))
    t0 = time.perf_counter()
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        for i, r in enumerate(rows):
            bgr = cv2.imread(str(folder / "images" / str(data["images"][r])))
            if bgr is None:
                raise SystemExit(f"cannot read image of row {r}")
            boxes[i] = person_box(data["joints"][r])
            crop, x0, y0, side = square_crop(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), boxes[i])
            res = pose.process(crop)
            if res.pose_landmarks is None:
                continue
            lm = np.array([(p.x, p.y) for p in res.pose_landmarks.landmark]) * side + [x0, y0]
            for j, k in enumerate(LSP_FROM_BLAZEPOSE):
                if k is not None:
                    pixels[i, j] = lm[k]
            mid = (lm[11] + lm[12]) / 2
            pixels[i, 12] = mid
            pixels[i, 13] = lm[0] + 0.5 * (lm[0] - mid) / max(np.linalg.norm(lm[0] - mid), 1e-6) * np.linalg.norm(
                lm[11] - lm[12])
    np.savez(args.out, rows=np.array(rows), boxes=boxes, pixels=pixels)
    found = np.isfinite(pixels[:, 0, 0]).mean()
    logging.info("BlazePose full on %d LSPET photos in %.1f s; a person in %.0f %%; wrote %s", len(rows),
                 time.perf_counter() - t0, 100 * found, args.out)


if __name__ == "__main__":
    main()
