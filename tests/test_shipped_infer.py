"""mobpose.infer with the shipped default models (DEFAULT_IPEM, ipem-mnv2, and prm-causal) on a real video
file of a rendered person who fills a small part of the frame, with no box given: the search must find the
person and the tracker keep them; every backend gives the same poses on the same boxes within
tests/tolerances.py::PIPELINE_SHIPPED."""

from __future__ import annotations

import numpy as np
import pytest

import mobpose
from mobpose.runtime.backends import available_backends
from mobpose.runtime.pipeline import DEFAULT_IPEM
from mobpose.runtime.render import VideoWriter
from tolerances import PIPELINE_SHIPPED

pytestmark = pytest.mark.skipif(not {DEFAULT_IPEM, "prm-causal"} <= set(mobpose.list_pretrained()),
                                reason="the default models are not shipped in this tree")
FRAMES = 24


@pytest.fixture(scope="module")
def person_video(tmp_path_factory):
    """A 320x320 mp4 of a person walking through a CMU test clip, and the ground truth (boxes, joints)."""
    from mobpose.data import load_cmu, random_camera
    from mobpose.data.motion import resample
    from mobpose.data.synthetic import EngineConfig, sequence_frames
    from mobpose.data.synthetic_cameras import fit_camera

    pos = resample(load_cmu(split="test")[5], 30.0).positions[:FRAMES]
    cam = fit_camera(random_camera(np.random.default_rng(11), image_size=(320, 320)), pos)
    frames = list(sequence_frames(np.random.default_rng(12), pos, cam, EngineConfig(augment=False), full_image=True))
    path = tmp_path_factory.mktemp("shipped") / "walk.mp4"
    with VideoWriter(path, fps=30.0) as w:
        for f in frames:
            w.write(f["image"])
    return path, np.stack([f["bbox"] for f in frames]), np.stack([f["joints_cam"][:17] for f in frames])


def _inside(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x, y = points[..., 0], points[..., 1]
    return (x >= boxes[:, 0]) & (x <= boxes[:, 0] + boxes[:, 2]) & (y >= boxes[:, 1]) & (y <= boxes[:, 1] + boxes[:, 3])


def test_default_infer_finds_and_tracks_the_person(person_video):
    path, gt_boxes, _ = person_video
    res = mobpose.infer(path)
    assert len(res) == FRAMES and res.info["model"] == f"default ({DEFAULT_IPEM})" and res.info["skipped"] == []
    assert np.isfinite(res.joints_3d).all() and np.isfinite(res.joints_3d_camera).all()
    centres = res.boxes[:, :2] + res.boxes[:, 2:] / 2
    assert _inside(centres, gt_boxes).mean() >= 0.8, "the tracked box left the person"
    # the pelvis in 2D lies on the person (the person covers a few percent of the frame)
    assert _inside(res.joints_2d[:, 0], gt_boxes).mean() >= 0.8


class _Replay:
    """A PersonFinder that replays given boxes: the backends are compared on the same crops. In the closed
    loop the tracker carries each frame's small difference into the next box, and the shipped IPEM's
    joints move by pixels for a sub-pixel change of a crop where a joint's heatmap has two modes (measured
    with ipem-mnv2: boxes 0.05 px apart after 6 frames, joints up to 6 px), which says nothing of the
    backends' numerics."""

    def __init__(self, boxes) -> None:
        self.boxes, self.k = np.asarray(boxes, np.float64), 0

    def first(self, image_size):
        self.k = 0
        return self.boxes[0].copy()

    def next(self, pixels, confidence):
        self.k += 1
        return self.boxes[min(self.k, len(self.boxes) - 1)].copy()

    def reset(self) -> None:
        self.k = 0


def _poses(path, backend: str, boxes) -> dict[str, np.ndarray]:
    from mobpose.runtime.pipeline import Pipeline
    from mobpose.runtime.sources import open_source

    with Pipeline("default", backend=backend, tracker=_Replay(boxes)) as pipe, open_source(path) as frames:
        got = [pipe.update(f.image, timestamp=f.timestamp, index=f.index) for f in frames]
    return {"joints_2d": np.stack([g.pixels for g in got]), "joints_3d_ipem": np.stack([g.pose for g in got]),
            "joints_3d": np.stack([g.refined for g in got]), "joints_3d_camera": np.stack([g.camera for g in got]),
            "confidence": np.stack([g.confidence for g in got])}


@pytest.mark.parametrize("backend", ["tflite", "native"])
def test_shipped_backends_agree_with_torch(person_video, backend):
    why = available_backends()[backend]
    if why is not None:
        pytest.skip(why)
    path, gt_boxes, _ = person_video
    closed = mobpose.infer(path, backend=backend, bbox=gt_boxes[0])  # its own tracking keeps the person too
    centres = closed.boxes[:, :2] + closed.boxes[:, 2:] / 2
    assert _inside(centres, gt_boxes).mean() >= 0.8, f"{backend}: the tracked box left the person"
    boxes = mobpose.infer(path, backend="torch", bbox=gt_boxes[0]).boxes
    ref, out = _poses(path, "torch", boxes), _poses(path, backend, boxes)
    errors = {field: float(np.abs(ref[field] - out[field]).max()) for field in PIPELINE_SHIPPED}
    over = [f"{field}: {err:.3g} > {PIPELINE_SHIPPED[field]['atol']} ({PIPELINE_SHIPPED[field]['why']})"
            for field, err in errors.items() if err > PIPELINE_SHIPPED[field]["atol"]]
    assert not over, f"{backend} vs torch: " + "; ".join(over) + f" (all: {errors})"
