"""The shipped IPEM on real photographs of people from registry packages (no ground truth: look at them).

Photos: scikit-image's astronaut (bundled in its wheel) and the people pictures of Debian's opencv-doc
package (messi5.jpg, basketball1.png, basketball2.png under /usr/share/doc/opencv-doc/examples/data).
The person boxes were drawn by hand once and are listed here (no detector is involved). Missing
sources are skipped with a log line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from ..runtime.image import load_image, predict_image
from ..viz import draw_pose_3d, draw_skeleton

__all__ = ["REAL_PHOTOS", "OPENCV_DOC_DATA", "photo_path", "real_photo_sheet"]

logger = logging.getLogger(__name__)

OPENCV_DOC_DATA = "/usr/share/doc/opencv-doc/examples/data"

# (name, source, file, person boxes (x, y, w, h) drawn by hand)
REAL_PHOTOS = (
    ("astronaut", "skimage", "astronaut.png", [(20, 10, 480, 502)]),
    ("messi5", "opencv-doc", "messi5.jpg", [(65, 58, 395, 280)]),
    ("basketball1", "opencv-doc", "basketball1.png", [(35, 75, 165, 400), (430, 20, 210, 460)]),
    ("basketball2", "opencv-doc", "basketball2.png", [(35, 75, 165, 400), (425, 20, 215, 460)]),
)


def photo_path(source: str, file: str, opencv_doc: str = OPENCV_DOC_DATA) -> Path | None:
    """Where a listed photo is on this machine, or None."""
    if source == "skimage":
        try:
            import skimage
        except ImportError:
            return None
        p = Path(os.path.dirname(skimage.__file__)) / "data" / file
    else:
        p = Path(opencv_doc) / file
    return p if p.is_file() else None


def real_photo_sheet(model, opencv_doc: str = OPENCV_DOC_DATA, height: int = 300) -> tuple[np.ndarray, list[dict]]:
    """One row per person: the photo with the 2D skeleton and box, and the 3D pose seen from the camera
    and from the side. Returns (RGB sheet, records with the name, box and predicted joints)."""
    rows, records = [], []
    for name, source, file, boxes in REAL_PHOTOS:
        path = photo_path(source, file, opencv_doc)
        if path is None:
            logger.warning("real photo %s (%s) not found: skipped", file, source)
            continue
        image = load_image(path)
        out = predict_image(model, image, boxes)
        for i, box in enumerate(boxes):
            drawn = draw_skeleton(image, out["pixels"][i])
            x, y, w, h = box
            cv2.rectangle(drawn, (x, y), (x + w, y + h), (255, 255, 0), 2)
            s = height / drawn.shape[0]
            drawn = cv2.resize(drawn, (round(drawn.shape[1] * s), height), interpolation=cv2.INTER_AREA)
            rel = out["root_relative_mm"][i]
            front = draw_pose_3d(rel, height, 0.0, 20.0, title="3D, camera view")
            side = draw_pose_3d(rel, height, 90.0, 20.0, title="3D, from the side")
            rows.append(np.concatenate([drawn, front, side], axis=1))
            records.append({"photo": name, "source": source, "box": list(box),
                            "pixels": out["pixels"][i].round(1).tolist(),
                            "root_relative_mm": out["root_relative_mm"][i].round(1).tolist()})
    if not rows:
        raise FileNotFoundError("none of the real photos was found (install scikit-image and Debian's opencv-doc)")
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(rows, axis=0), records
