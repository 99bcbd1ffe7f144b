"""Tests for mobpose.data: the CMU file, data paths, resampling, synthetic cameras and views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mobpose.data
from mobpose.camera import project
from mobpose.data import (
    DATA_DIR_ENV,
    Camera,
    MotionSequence,
    cmu_path,
    default_data_dir,
    fit_camera,
    load_cmu,
    look_at,
    make_views,
    protocol_cameras,
    random_camera,
    resample,
    summary,
    y_up_to_z_up,
)
from mobpose.skeleton import H36M_17


@pytest.fixture(scope="module")
def cmu() -> list[MotionSequence]:
    try:
        cmu_path()
    except FileNotFoundError as exc:
        pytest.skip(f"real CMU file absent: {exc}")
    return load_cmu()


def _by_key(seqs: list[MotionSequence], key: str) -> MotionSequence:
    return next(s for s in seqs if s.key == key)


def _toy(t: int = 9, fps: float = 120.0) -> MotionSequence:
    pos = np.zeros((t, 17, 3), dtype=np.float32)
    pos[:, :, 0] = np.arange(t, dtype=np.float32)[:, None] * 10.0  # x = 10 mm per frame
    return MotionSequence("toy", "train", "walking", fps, pos)


# ---------------------------------------------------------------- the real file


def test_cmu_file_contents(cmu: list[MotionSequence]) -> None:
    s = summary(cmu)
    assert s["sequences"] == 96
    assert s["frames"] == 67774
    assert s["fps"] == [120.0]
    assert s["seconds"] == pytest.approx(67774 / 120.0)
    assert s["by_split"] == {"test": 24, "train": 72}
    assert s["by_action"]["walking_extra"] == 58
    for seq in cmu:
        assert seq.positions.dtype == np.float32
        assert seq.positions.shape[1:] == (17, 3)


def test_cmu_units_and_up_axis(cmu: list[MotionSequence]) -> None:
    walk = _by_key(cmu, "test/walking/walking_1")
    root_height = walk.positions[:, 0, 2]
    assert 850 < np.median(root_height) < 1100  # pelvis about 1 m above the floor, in mm, Z up
    head_above_ankles = walk.positions[:, 10, 2] - walk.positions[:, [3, 6], 2].min(axis=1)
    assert 1300 < np.median(head_above_ankles) < 1500  # README: head top to ankle about 1.45 m


def test_cmu_walking_speed_and_bones(cmu: list[MotionSequence]) -> None:
    walk = _by_key(cmu, "test/walking/walking_1")
    root = walk.positions[:, 0].astype(np.float64)
    speed = np.linalg.norm(root[-1, :2] - root[0, :2]) / ((walk.num_frames - 1) / walk.fps)
    assert speed == pytest.approx(1300, rel=0.1)  # README: about 1.3 m/s
    bones = H36M_17.bone_lengths(walk.positions)
    thigh = bones[:, [1, 4]].mean()  # right/left hip -> knee (measured 428 mm)
    assert thigh == pytest.approx(400, rel=0.1)  # README: about 0.40 m
    all_bones = np.concatenate([H36M_17.bone_lengths(s.positions) for s in cmu])
    assert all_bones.std(axis=0).max() < 2.0  # one rigid skeleton for all clips


def test_cmu_is_right_handed_not_mirrored(cmu: list[MotionSequence]) -> None:
    # Walking forward with the left hip on the left: forward x left must point up (+Z).
    walk = _by_key(cmu, "test/walking/walking_1").positions.astype(np.float64)
    fwd = np.gradient(walk[:, 0], axis=0)
    left = walk[:, 4] - walk[:, 1]
    up = np.cross(fwd, left)
    up /= np.linalg.norm(up, axis=1, keepdims=True)
    assert up.mean(axis=0)[2] > 0.9


def test_cmu_filters(cmu: list[MotionSequence]) -> None:
    test_walk = load_cmu(split="test", actions="walking")
    assert [s.key for s in test_walk] == ["test/walking/walking_1"]
    np.testing.assert_array_equal(test_walk[0].positions, _by_key(cmu, "test/walking/walking_1").positions)
    train = load_cmu(split="train", actions=["running", "jumping"])
    assert len(train) == 10 and {s.action for s in train} == {"running", "jumping"}
    with pytest.raises(ValueError, match="split"):
        load_cmu(split="val")
    with pytest.raises(ValueError, match="unknown actions.*dancing"):
        load_cmu(actions=["dancing"])


# ---------------------------------------------------------------- paths and validation


def test_missing_file_names_env_var(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=DATA_DIR_ENV) as info:
        load_cmu()
    assert str(tmp_path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="path="):
        load_cmu(path=tmp_path / "nope.npz")


def test_default_data_dir_walks_up(monkeypatch) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    found = default_data_dir()
    if found is None:
        pytest.skip("no <ancestor>/shared/data above the package or the current directory")
    assert found.parts[-2:] == ("shared", "data") and found.is_dir()
    package = Path(mobpose.data.__file__).resolve()
    assert found.parent.parent in package.parents or found.parent.parent in Path.cwd().resolve().parents


def test_env_var_points_at_data(tmp_path, monkeypatch) -> None:
    arr = np.zeros((5, 17, 3), np.float32)
    arr[:, :, 1] = 1.0  # 1 m up (Y up in the file)
    arr[:, :, 2] = 2.0  # 2 m along file Z
    (tmp_path / "cmu_mocap").mkdir()
    np.savez(tmp_path / "cmu_mocap" / "cmu_h36m17_120hz.npz", **{"train/walking/w_1": arr})
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    (seq,) = load_cmu()
    assert (seq.split, seq.action, seq.name, seq.fps) == ("train", "walking", "w_1", 120.0)
    np.testing.assert_allclose(seq.positions[0, 0], [0.0, -2000.0, 1000.0])  # (x, -z, y) * 1000


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"walking_1": np.zeros((4, 17, 3), np.float32)}, "SPLIT/ACTION/NAME"),
        ({"dev/walking/w": np.zeros((4, 17, 3), np.float32)}, "split 'dev'"),
        ({"train/walking/w": np.zeros((4, 16, 3), np.float32)}, r"shape \(T, 17, 3\)"),
        ({"train/walking/w": np.zeros((4, 17, 3), np.int32)}, "floating"),
        ({"train/walking/w": np.full((4, 17, 3), np.nan, np.float32)}, "NaN"),
    ],
)
def test_malformed_cmu_file(tmp_path, arrays, match) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match):
        load_cmu(path)


def test_y_up_to_z_up_is_a_rotation() -> None:
    basis = y_up_to_z_up(np.eye(3))
    assert np.linalg.det(basis) == pytest.approx(1.0)
    np.testing.assert_allclose(y_up_to_z_up(np.array([0.0, 1.0, 0.0])), [0, 0, 1])


# ---------------------------------------------------------------- resampling


def test_resample_integer_ratio_decimates() -> None:
    seq = _toy(9)
    out = resample(seq, 30)
    assert out.fps == 30 and out.num_frames == 3  # frames 0, 4, 8
    np.testing.assert_array_equal(out.positions, seq.positions[::4])
    assert resample(_toy(10), 30).num_frames == 3  # ceil(10 / 4)
    assert resample(_toy(12), 30).num_frames == 3


def test_resample_interpolates() -> None:
    seq = _toy(121)  # one second at 120 Hz, x from 0 to 1200 mm
    out = resample(seq, 50)
    assert out.num_frames == 51
    np.testing.assert_allclose(out.positions[:, 0, 0], np.arange(51) * 24.0, atol=1e-3)  # 1200 mm/s / 50
    up = resample(_toy(3, fps=30.0), 120.0)
    assert up.num_frames == 9
    np.testing.assert_allclose(up.positions[:, 0, 0], np.arange(9) * 2.5, atol=1e-5)
    with pytest.raises(ValueError, match="target_fps"):
        resample(seq, 0)


def test_resample_real_walk(cmu: list[MotionSequence]) -> None:
    walk = _by_key(cmu, "test/walking/walking_1")  # 358 frames
    assert resample(walk, 30).num_frames == 90
    assert resample(walk, 50).num_frames == int(np.floor(357 * 50 / 120)) + 1


def test_motion_sequence_validation() -> None:
    with pytest.raises(ValueError, match="positions"):
        MotionSequence("x", "", "", 30.0, np.zeros((4, 17)))
    with pytest.raises(ValueError, match="fps"):
        MotionSequence("x", "", "", 0.0, np.zeros((4, 17, 3)))


# ---------------------------------------------------------------- cameras and views


def test_look_at_axes() -> None:
    eye, target = np.array([0.0, -3000.0, 1500.0]), np.array([0.0, 0.0, 1500.0])
    rot = look_at(eye, target)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(rot[2], [0, 1, 0], atol=1e-12)  # forward
    np.testing.assert_allclose(rot[0], [1, 0, 0], atol=1e-12)  # right
    np.testing.assert_allclose(rot[1], [0, 0, -1], atol=1e-12)  # image down = world down
    with pytest.raises(ValueError, match="parallel"):
        look_at([0, 0, 0], [0, 0, 5])


def test_random_camera_ranges_and_root_in_view() -> None:
    rng = np.random.default_rng(3)
    target = np.array([100.0, -200.0, 950.0])
    for _ in range(200):
        cam = random_camera(rng, target=target)
        fov = 2 * np.degrees(np.arctan(cam.width / 2 / cam.intrinsics[0]))
        assert 40 - 1e-6 <= fov <= 75 + 1e-6
        assert 2500 - 1e-6 <= np.linalg.norm(cam.centre - target) <= 6000 + 1e-6
        assert 500 <= cam.centre[2] <= 2500
        xc = cam.world_to_camera(target[None])[0]
        assert xc[2] > 2000 and abs(xc[0]) < 1e-6 and abs(xc[1]) < 1e-6  # on the optical axis
        uv = project(xc[None], cam.intrinsics)[0]
        assert 0 < uv[0] < cam.width - 1 and 0 < uv[1] < cam.height - 1
        np.testing.assert_allclose(uv, cam.intrinsics[2:4], atol=1e-6)


def test_random_camera_is_seeded() -> None:
    a = random_camera(np.random.default_rng(7))
    b = random_camera(np.random.default_rng(7))
    np.testing.assert_array_equal(a.rotation, b.rotation)
    np.testing.assert_array_equal(a.intrinsics, b.intrinsics)


def test_protocol_cameras_fixed() -> None:
    cams = protocol_cameras()
    again = protocol_cameras(seed=0, count=4)
    assert [c.name for c in cams] == ["cmu17_s0_c0", "cmu17_s0_c1", "cmu17_s0_c2", "cmu17_s0_c3"]
    for a, b in zip(cams, again, strict=True):
        np.testing.assert_array_equal(a.centre, b.centre)
    azimuths = sorted(np.degrees(np.arctan2(c.centre[1], c.centre[0])) % 360 for c in cams)
    assert np.min(np.diff(azimuths)) > 40  # spread around the subject
    assert not np.allclose(protocol_cameras(seed=1)[0].centre, cams[0].centre)


def test_make_views_shapes_and_consistency(cmu: list[MotionSequence]) -> None:
    walk = _by_key(cmu, "test/walking/walking_1")
    cam = protocol_cameras()[0]
    views = make_views(walk, cam)
    t = walk.num_frames
    assert views.positions_cam.shape == (t, 17, 3) and views.keypoints_2d.shape == (t, 17, 2)
    assert views.visible.shape == (t, 17) and views.visible.dtype == bool
    np.testing.assert_allclose(views.positions_rel[:, 0], 0.0)
    # Distances are preserved by the rigid world-to-camera transform.
    bones_world = H36M_17.bone_lengths(walk.positions)
    np.testing.assert_allclose(H36M_17.bone_lengths(views.positions_cam), bones_world, atol=0.05)
    np.testing.assert_allclose(
        views.keypoints_2d, project(views.positions_cam.astype(np.float64), cam.intrinsics), atol=1e-3
    )
    # The camera looks at the subject: the root projects inside the image on every frame.
    assert views.visible[:, 0].all()


def test_fit_camera_sees_every_joint(cmu: list[MotionSequence]) -> None:
    run = _by_key(cmu, "test/running/running_1")  # runs 3.7 m past cameras about 2.5-6 m away
    for cam in protocol_cameras():
        fitted = make_views(run, cam, fit=True)
        assert fitted.visible.all()
        assert fitted.positions_cam[..., 2].min() >= 1000 - 1e-3
        np.testing.assert_array_equal(fitted.camera.rotation, cam.rotation)
    seen_by_all = [make_views(run, cam).visible.all() for cam in protocol_cameras()]
    assert not all(seen_by_all)  # without fitting, some cameras lose the runner


def test_visibility_behind_camera() -> None:
    cam = Camera(np.array([500.0, 500, 500, 500, 0, 0, 0, 0, 0]), np.eye(3), np.zeros(3), 1000, 1000)
    pts = np.zeros((1, 17, 3))
    pts[0, :, 2] = 2000.0
    pts[0, 3, 2] = -500.0  # behind
    pts[0, 4, 0] = 5000.0  # far right, outside the image
    views = make_views(pts, cam, anchor="none")
    assert np.isnan(views.keypoints_2d[0, 3]).all()
    assert not views.visible[0, 3] and not views.visible[0, 4] and views.visible[0, 0]
    np.testing.assert_allclose(views.keypoints_2d[0, 0], [500, 500])


def test_fit_camera_moves_back_only() -> None:
    cam = random_camera(np.random.default_rng(0))
    pose = np.zeros((1, 17, 3)) + np.array([0.0, 0.0, 950.0])
    np.testing.assert_array_equal(fit_camera(cam, pose).centre, cam.centre)  # already in view
    far = pose.copy()
    far[0, 5] = cam.centre + 8000.0 * cam.rotation[2] + 6000.0 * cam.rotation[0]  # far off to the right
    moved = fit_camera(cam, far)
    shift = moved.centre - cam.centre
    assert np.dot(shift, cam.rotation[2]) < -1000  # moved backwards along the optical axis
    np.testing.assert_allclose(np.cross(shift, cam.rotation[2]), 0, atol=1e-6)
    views = make_views(far, moved, anchor="none")
    assert views.visible.all()
    u = views.keypoints_2d[0, 5, 0]
    assert u == pytest.approx(0.98 * cam.width - 1, abs=0.5)  # touching the 2% margin exactly
    with pytest.raises(ValueError, match="anchor"):
        make_views(pose, cam, anchor="middle")
