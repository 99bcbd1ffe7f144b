"""The streaming pipeline, mobpose.infer and the backends, on rendered clips with the seeded test models.

Real pieces throughout: the test-size IPEM and causal PRM written to safetensors files, the TFLite
runtime (files exported on first use into a temporary cache), the C++ soft-argmax and native PRM, and
frames rendered by the synthetic engine. Backends are compared with each other within the tolerances
of tests/tolerances.py::PIPELINE; the streaming pipeline against the offline PRM on the same poses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FRAMES
from mobpose import checkpoint as ck
from mobpose.export.golden import seeded_test_model
from mobpose.runtime import Pipeline, PoseResult, PoseTracker, infer
from mobpose.runtime.backends import available_backends, resolve_backend
from mobpose.runtime.pipeline import check_intrinsics
from mobpose.runtime.tracker import check_box
from tolerances import PIPELINE


def _run(pipe: Pipeline, images: np.ndarray) -> list:
    return [pipe.update(im) for im in images]


# ------------------------------------------------------------------------------------------- tracker


def test_tracker_follows_the_pose_and_reinitialises_when_lost():
    t = PoseTracker(None, smoothing=0.0, expand=1.0)
    assert np.array_equal(t.first((200, 100)), [0, 0, 200, 100])  # no box given: the whole frame
    joints = np.array([[50.0, 20.0], [70.0, 80.0]] * 4)
    conf = np.full(8, 0.1)
    box = t.next(joints, conf)
    np.testing.assert_allclose(box, [50, 20, 20, 60])
    box = t.next(joints + 10, conf)
    np.testing.assert_allclose(box, [60, 30, 20, 60])  # moved with the joints
    for _ in range(3):
        t.next(joints, conf)
    assert t.reinits == 0
    box = t.next(joints, conf * 0.1)  # confidence collapsed: back to the initial box
    assert t.reinits == 1 and np.array_equal(box, [0, 0, 200, 100])
    box = t.next(np.full((8, 2), np.nan), conf)  # no finite joint
    assert t.reinits == 2


def test_tracker_smooths_and_reinitialises_to_the_user_box():
    t = PoseTracker([10, 10, 40, 80], smoothing=0.5, expand=1.0)
    np.testing.assert_allclose(t.first((100, 100)), [10, 10, 40, 80])
    box = t.next(np.array([[30.0, 30.0], [50.0, 90.0]] * 4), np.full(8, 0.2))
    np.testing.assert_allclose(box, [20, 20, 30, 70])  # halfway between the old box and the joints' box
    box = t.next(np.full((8, 2), np.nan), np.full(8, 0.2))
    np.testing.assert_allclose(box, [10, 10, 40, 80])


def _walk_lag(motion: float, frames: int = 30) -> list[float]:
    """A person walking right at 10 px a frame: the next box's centre minus where they are next (px)."""
    t = PoseTracker([0, 50, 40, 100], motion=motion)
    t.first((1000, 300))
    joints = np.array([[10.0, 60.0], [30.0, 140.0]] * 4)
    lags = []
    for k in range(frames):
        box = t.next(joints + [10.0 * k, 0.0], np.ones(8))
        lags.append(box[0] + box[2] / 2 - (joints[:, 0].mean() + 10.0 * (k + 1)))
    return lags


def test_tracker_motion_keeps_a_walking_person_centred():
    """Smoothing alone leaves the crop behind a walking person (by 1.4 frames' motion here); the velocity
    term removes that lag, half of it at motion 0.5; a person standing still gets no drift from it."""
    assert _walk_lag(0.0)[-1] == pytest.approx(-14.29, abs=0.01)
    assert _walk_lag(0.5)[-1] == pytest.approx(-7.14, abs=0.01)
    assert abs(_walk_lag(1.0)[-1]) < 0.01
    t = PoseTracker([0, 50, 40, 100], motion=1.0)
    t.first((1000, 300))
    rng = np.random.default_rng(0)
    for _ in range(50):  # jittered joints of a still person: the box stays put
        box = t.next(np.array([[10.0, 60.0], [30.0, 140.0]] * 4) + rng.normal(0, 1.0, (8, 2)), np.ones(8))
    assert abs(box[0] + box[2] / 2 - 20.0) < 3.0 and abs(box[1] + box[3] / 2 - 100.0) < 3.0
    t.found([100, 50, 40, 100])  # a new search result forgets the velocity
    assert t._centre is None and not t._vel.any()
    with pytest.raises(ValueError, match="motion"):
        PoseTracker(None, motion=1.5)


@pytest.mark.parametrize("box, match", [([np.nan, 0, 10, 10], "finite"), ([0, 0, -5, 10], "positive"),
                                        ([500, 0, 10, 10], "outside"), ([0, 0, 10], "shape")])
def test_bad_boxes_are_named(box, match):
    with pytest.raises(ValueError, match=match):
        check_box(box, (100, 100))


def test_intrinsics_forms_and_errors():
    k = check_intrinsics([[800, 0, 320], [0, 810, 240], [0, 0, 1]])
    np.testing.assert_allclose(k[:4], [800, 810, 320, 240])
    np.testing.assert_allclose(check_intrinsics([800, 810, 320, 240]), k)
    with pytest.raises(ValueError, match="finite"):
        check_intrinsics([np.nan, 800, 320, 240])
    with pytest.raises(ValueError, match="focal"):
        check_intrinsics([0, 800, 320, 240])
    with pytest.raises(ValueError, match="shape"):
        check_intrinsics([1, 2, 3])


# ------------------------------------------------------------------------------------------ bad input


def test_unknown_backend_and_model_are_named(models):
    ipem, prm, _ = models
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        Pipeline(ipem, prm=prm, backend="cuda", finder="none")
    with pytest.raises(ValueError, match="no-such-model"):
        Pipeline("no-such-model", prm=prm, backend="torch")
    with pytest.raises(FileNotFoundError):
        Pipeline("/nonexistent/ipem.safetensors", prm=prm, backend="torch")


def test_bad_settings_are_named(models, clip):
    ipem, prm, centred = models
    with pytest.raises(ValueError, match="intrinsics must be finite"):
        Pipeline(ipem, prm=prm, backend="torch", intrinsics=[np.nan, 1, 1, 1], finder="none")
    with pytest.raises(ValueError, match="root_depth"):
        Pipeline(ipem, prm=prm, backend="torch", root_depth=float("nan"), finder="none")
    with pytest.raises(ValueError, match="causal"):
        Pipeline(ipem, prm=centred, backend="torch", finder="none")
    with pytest.raises(ValueError, match="must be an IPEM"):
        Pipeline(prm, prm=prm, backend="torch")
    pipe = Pipeline(ipem, prm=prm, backend="torch", bbox=[1000, 1000, 50, 50], finder="none")
    with pytest.raises(ValueError, match="outside the 160x160 image"):
        pipe.update(clip[0][0])
    pipe = Pipeline(ipem, prm=prm, backend="torch", finder="none")
    with pytest.raises(ValueError, match="uint8"):
        pipe.update(clip[0][0].astype(np.float32))
    with pytest.raises(ValueError, match="empty"):
        pipe.update(np.zeros((0, 10, 3), np.uint8))


def test_a_corrupted_weights_file_is_named(models, tmp_path):
    ipem, prm, _ = models
    data = bytearray(Path(ipem).read_bytes())
    data[-100] ^= 0xFF
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(ck.CheckpointError, match="bad.safetensors"):
        Pipeline(str(bad), prm=prm, backend="torch")


# ---------------------------------------------------------------------- streaming, offline, backends


def test_streaming_refinement_equals_the_offline_prm(models, clip):
    """Each frame's refined pose is the causal PRM's last output over the last T IPEM poses (the first
    pose repeated at the start), and memory stays at T poses however long the stream."""
    ipem, prm, _ = models
    pipe = Pipeline(ipem, prm=prm, backend="torch", bbox=clip[1], finder="none")
    images = np.concatenate([clip[0], clip[0][::-1], clip[0]])  # longer than the window (T = 9)
    out = _run(pipe, images)
    poses = np.stack([o.pose for o in out])
    t = pipe.window
    assert t < len(images) and len(pipe.prm.poses) == t
    model = seeded_test_model("prm_test_causal")
    index = np.clip(np.arange(len(poses))[:, None] - (t - 1) + np.arange(t)[None, :], 0, None)
    with torch.no_grad():
        offline = model(torch.from_numpy(poses[index]))[:, -1].numpy()
    offline -= offline[:, :1]  # the pipeline's refined poses are root-relative
    np.testing.assert_allclose(np.stack([o.refined for o in out]), offline, atol=1e-3)
    assert np.abs(offline - poses).max() > 1.0  # the PRM does change the poses
    # the absolute pose is the refined one at the root's position
    for o in out:
        np.testing.assert_allclose(o.camera - o.camera[0], o.refined - o.refined[0], atol=1e-3)
        assert o.camera[0, 2] == pytest.approx(o.root_depth, rel=1e-4)


def test_reset_starts_a_new_stream(models, clip):
    ipem, prm, _ = models
    pipe = Pipeline(ipem, prm=prm, backend="torch", bbox=clip[1], finder="none")
    first = _run(pipe, clip[0][:4])
    pipe.reset()
    again = _run(pipe, clip[0][:4])
    for a, b in zip(first, again, strict=True):
        np.testing.assert_allclose(a.refined, b.refined, atol=1e-4)


@pytest.mark.parametrize("backend", ["tflite", "native"])
def test_backends_agree_with_torch(models, clip, backend):
    why = available_backends()[backend]
    if why is not None:
        pytest.skip(why)
    ipem, prm, _ = models
    ref = _run(Pipeline(ipem, prm=prm, backend="torch", bbox=clip[1], finder="none"), clip[0])
    out = _run(Pipeline(ipem, prm=prm, backend=backend, bbox=clip[1], finder="none"), clip[0])
    for field, tol in PIPELINE.items():
        a = np.stack([getattr(o, field) for o in ref])
        b = np.stack([getattr(o, field) for o in out])
        err = float(np.abs(a - b).max())
        assert err <= tol["atol"], f"{backend} vs torch, {field}: {err:.3g} > {tol['atol']} ({tol['why']})"


def test_auto_picks_an_available_backend():
    assert resolve_backend("auto") in ("native", "tflite", "torch")
    assert available_backends()[resolve_backend("auto")] is None


# ------------------------------------------------------------------------------------------------ infer


def test_infer_on_an_array_matches_the_pipeline_and_saves(models, clip, tmp_path):
    ipem, prm, _ = models
    res = infer(clip[0], model=ipem, prm=prm, backend="torch", bbox=clip[1], fps=25.0, finder="none")
    ref = _run(Pipeline(ipem, prm=prm, backend="torch", bbox=clip[1], finder="none"), clip[0])
    assert len(res) == FRAMES and res.joints_3d.shape == (FRAMES, 17, 3) and res.joints_2d.shape == (FRAMES, 17, 2)
    np.testing.assert_allclose(res.joints_3d, np.stack([o.refined for o in ref]), atol=1e-4)
    np.testing.assert_allclose(res.timestamps, np.arange(FRAMES) / 25.0, atol=1e-6)
    assert res.info["root_depth_source"] == "estimated" and res.info["intrinsics_source"] == "default"
    assert res.joint_names[0] == "pelvis" and len(res.joint_names) == 17
    for suffix in (".npz", ".json"):
        path = res.save(tmp_path / f"poses{suffix}")
        back = PoseResult.load(path)
        np.testing.assert_allclose(back.joints_3d, res.joints_3d, atol=1e-4)
        np.testing.assert_array_equal(back.frame_indices, res.frame_indices)
        assert back.joint_names == res.joint_names and back.info["frames"] == FRAMES
    with pytest.raises(ValueError, match="npz or .json"):
        res.save(tmp_path / "poses.csv")


def test_infer_without_prm_gives_the_ipem_poses(models, clip):
    ipem, prm, _ = models
    res = infer(clip[0][:3], model=ipem, prm=None, backend="torch", bbox=clip[1], root_depth=4000.0,
                intrinsics=[200, 200, 80, 80], finder="none")
    np.testing.assert_array_equal(res.joints_3d, res.joints_3d_ipem)
    np.testing.assert_allclose(res.root_depths, 4000.0)
    assert res.info["root_depth_source"] == "given"


def test_tracker_keeps_a_person_seen_side_on():
    """Joints almost in a vertical line (a side view) give a narrow but valid box, not a re-initialisation."""
    t = PoseTracker(None, smoothing=0.0, expand=1.0)
    t.first((200, 200))
    joints = np.stack([np.full(8, 100.0) + np.arange(8) * 0.5, np.linspace(20, 180, 8)], axis=1)
    box = t.next(joints, np.full(8, 0.01))
    assert t.reinits == 0
    np.testing.assert_allclose(box[2:], [40.0, 160.0])  # width at least a quarter of the height


def test_tracker_with_presence_loses_the_person_only_after_patience_frames():
    t = PoseTracker(None, smoothing=0.0, expand=1.0, patience=3)
    t.first((200, 100))
    t.found([40, 10, 50, 80])  # the search's result
    joints = np.array([[50.0, 20.0], [70.0, 80.0]] * 4)
    for _ in range(5):  # confidence swings do not matter while a person is seen
        t.next(joints, np.full(8, 0.1), present=True)
        t.next(joints, np.full(8, 0.001), present=True)
    assert t.reinits == 0 and not t.searching
    t.next(joints, np.full(8, 0.1), present=False)
    t.next(joints, np.full(8, 0.1), present=False)
    t.next(joints, np.full(8, 0.1), present=True)  # seen again: the count starts over
    t.next(joints, np.full(8, 0.1), present=False)
    t.next(joints, np.full(8, 0.1), present=False)
    assert t.reinits == 0
    box = t.next(joints, np.full(8, 0.1), present=False)  # the third frame in a row without a person
    assert t.reinits == 1 and t.searching and np.array_equal(box, [0, 0, 200, 100])
    with pytest.raises(ValueError, match="patience"):
        PoseTracker(None, patience=0)


def test_default_threads_are_the_usable_cores_at_most_two():
    import os

    from mobpose.runtime.backends import DEFAULT_MAX_THREADS, check_threads, default_threads

    assert default_threads() == max(1, min(len(os.sched_getaffinity(0)), DEFAULT_MAX_THREADS))
    assert check_threads(None) == default_threads() and check_threads(3) == 3
    for bad, exc in ((0, ValueError), (-1, ValueError), (2**31, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(exc, match="threads"):
            check_threads(bad)
