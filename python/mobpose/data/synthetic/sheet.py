"""Contact sheets of the engine's samples with their projected skeletons, to look at the training data."""

from __future__ import annotations

import logging
import os
import time

import cv2
import numpy as np

from ...viz import draw_skeleton, grid
from ..cmu import load_cmu
from .dataset import pose_pool
from .scene import DEFAULT_BODIES, EngineConfig, make_sample, make_scene

__all__ = ["contact_sheet", "write_contact_sheet"]

logger = logging.getLogger(__name__)

KINDS = ("crops", "eval", "images", "scenes")


def contact_sheet(poses: np.ndarray, count: int = 24, kind: str = "crops", seed: int = 0,
                  bodies: str = DEFAULT_BODIES) -> np.ndarray:
    """An RGB uint8 sheet of `count` samples drawn from `poses` (N, 17, 3) world mm.

    kind: 'crops' (training crops, augmented), 'eval' (evaluation crops), 'images' (full camera
    images of one person, cut to the person's box), 'scenes' (2-6 people). bodies: 'mesh' or 'spheres'.
    Hollow joints are labelled not visible.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not 1 <= count <= 400:
        raise ValueError(f"count must be in 1..400, got {count}")
    tiles = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        if kind == "scenes":
            people = [poses[int(rng.integers(len(poses)))] for _ in range(int(rng.integers(2, 7)))]
            s = make_scene(rng, people, EngineConfig(bodies=bodies))
            img = s["image"]
            for j2, v in zip(s["joints_2d"], s["visibility"], strict=True):
                img = draw_skeleton(img, j2, v)
            for x, y, w, h in s["bbox"]:
                cv2.rectangle(img, (int(x), int(y)), (int(x + w), int(y + h)), (255, 255, 0), 1)
        else:
            pose = poses[int(rng.integers(len(poses)))]
            config = EngineConfig(augment=kind != "eval", bodies=bodies)
            s = make_sample(rng, pose, config, full_image=kind == "images")
            if kind == "images":
                img = draw_skeleton(s["image"], s["joints_2d"], s["visibility"])
                x, y, w, h = s["crop_box"]
                cv2.rectangle(img, (int(x), int(y)), (int(x + w), int(y + h)), (255, 255, 0), 2)
            else:
                uv = s["target"][:, :2] * (s["crop"].shape[1] / config.heatmap_size[2])
                img = draw_skeleton(s["crop"], uv, s["visibility"])
        tiles.append(img)
    return grid(tiles)


def write_contact_sheet(out: str | os.PathLike, count: int = 24, kind: str = "crops", split: str = "train",
                        seed: int = 0, bodies: str = DEFAULT_BODIES) -> dict:
    """Renders a contact sheet of CMU `split` poses and writes it as PNG; returns a summary dict."""
    start = time.perf_counter()
    sheet = contact_sheet(pose_pool(load_cmu(split=split)), count, kind, seed, bodies)
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"could not write {out} (is the folder there and the name a .png?)")
    info = {"out": str(out), "count": count, "kind": kind, "split": split, "bodies": bodies,
            "seconds": round(time.perf_counter() - start, 2)}
    logger.info("contact sheet %s", info)
    return info
