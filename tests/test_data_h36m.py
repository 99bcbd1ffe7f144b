"""Tests for mobpose.data.h36m on small files written in the VideoPose3D format (no real data)."""

from __future__ import annotations

import numpy as np
import pytest

from mobpose.camera import project
from mobpose.data import (
    H36M_TEST_SUBJECTS,
    H36M_TRAIN_SUBJECTS,
    h36m_camera,
    h36m_cameras,
    h36m_sequences,
    h36m_views,
    load_h36m_2d,
    load_h36m_3d,
)
from mobpose.data.h36m import H36M_DROPPED_JOINTS, H36M_KEPT_JOINTS

SYMMETRY = [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]

# Made-up calibration in the VideoPose3D layout (not the real Human3.6M constants).
INTRINSICS = [
    {
        "id": "cam_a",
        "center": [510.0, 505.0],
        "focal_length": [1140.0, 1139.0],
        "radial_distortion": [-0.2, 0.2, -0.005],
        "tangential_distortion": [-0.001, -0.002],
        "res_w": 1000,
        "res_h": 1002,
    },
    {
        "id": "cam_b",
        "center": [500.0, 500.0],
        "focal_length": [1000.0, 1000.0],
        "radial_distortion": [0.0, 0.0, 0.0],
        "tangential_distortion": [0.0, 0.0],
        "res_w": 1000,
        "res_h": 1000,
    },
]
S45 = np.sin(np.pi / 4)
EXTRINSICS = {
    # cam_a: identity orientation (looks along world +Z); cam_b: an upright camera looking along
    # world -Y (camera axes in world: right = -X, down = -Z, forward = -Y; 180 deg about (0, 1, -1)).
    "S1": [
        {"orientation": [1.0, 0.0, 0.0, 0.0], "translation": [0.0, 0.0, -4000.0]},
        {"orientation": [0.0, 0.0, S45, -S45], "translation": [0.0, 4000.0, 1000.0]},
    ],
}


def _poses_32(frames: int, seed: int = 0) -> np.ndarray:
    """(frames, 32, 3) metres; x encodes the joint index so the 32 -> 17 reduction is checkable."""
    rng = np.random.default_rng(seed)
    pos = rng.normal(0.0, 0.2, (frames, 32, 3)).astype(np.float32)
    pos[:, :, 0] = np.arange(32, dtype=np.float32) / 100.0
    pos[:, :, 2] += 1.0
    return pos


def _write_3d(path, data) -> None:
    np.savez_compressed(path, positions_3d=data)


@pytest.fixture()
def file_3d(tmp_path):
    path = tmp_path / "data_3d_h36m.npz"
    _write_3d(
        path, {"S1": {"Walking": _poses_32(20), "Directions 1": _poses_32(7, 1)}, "S9": {"Sitting": _poses_32(5)}}
    )
    return path


def test_constants() -> None:
    assert H36M_TRAIN_SUBJECTS == ("S1", "S5", "S6", "S7", "S8")
    assert H36M_TEST_SUBJECTS == ("S9", "S11")
    assert len(H36M_KEPT_JOINTS) == 17 and not set(H36M_KEPT_JOINTS) & set(H36M_DROPPED_JOINTS)
    assert H36M_KEPT_JOINTS == (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)


def test_load_3d_reduces_and_converts(file_3d) -> None:
    data = load_h36m_3d(file_3d)
    assert sorted(data) == ["S1", "S9"] and sorted(data["S1"]) == ["Directions 1", "Walking"]
    walk = data["S1"]["Walking"]
    assert walk.shape == (20, 17, 3) and walk.dtype == np.float32
    np.testing.assert_allclose(walk[0, :, 0], np.array(H36M_KEPT_JOINTS) * 10.0, atol=1e-3)  # mm
    np.testing.assert_allclose(walk, _poses_32(20)[:, list(H36M_KEPT_JOINTS)] * 1000.0, rtol=1e-6, atol=1e-3)
    only_test = load_h36m_3d(file_3d, subjects=H36M_TEST_SUBJECTS[:1])
    assert list(only_test) == ["S9"]
    with pytest.raises(ValueError, match="S11"):
        load_h36m_3d(file_3d, subjects=["S11"])


def test_h36m_sequences_split(file_3d) -> None:
    seqs = h36m_sequences(load_h36m_3d(file_3d))
    assert [(s.name, s.split, s.action, s.fps) for s in seqs] == [
        ("S1/Directions 1", "train", "Directions", 50.0),
        ("S1/Walking", "train", "Walking", 50.0),
        ("S9/Sitting", "test", "Sitting", 50.0),
    ]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"positions": {"S1": {}}}, "missing key 'positions_3d'"),
        ({"positions_3d": {"S1": {"Walking": np.zeros((5, 31, 3))}}}, r"\(frames, 32, 3\)"),
        ({"positions_3d": {"S1": {"Walking": np.zeros((5, 32, 2))}}}, r"got \(5, 32, 2\)"),
        ({"positions_3d": {"S1": {"Walking": np.full((5, 32, 3), np.nan)}}}, "NaN"),
        ({"positions_3d": {"S1": np.zeros((5, 32, 3))}}, "must be a dict"),
        ({"positions_3d": np.zeros((5, 32, 3))}, "must be a dict"),
    ],
)
def test_load_3d_rejects_malformed(tmp_path, content, match) -> None:
    path = tmp_path / "bad.npz"
    np.savez_compressed(path, **content)
    with pytest.raises(ValueError, match=match):
        load_h36m_3d(path)


def test_load_3d_missing_and_garbage(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="path="):
        load_h36m_3d(tmp_path / "absent.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file")
    with pytest.raises(ValueError, match="cannot be read"):
        load_h36m_3d(garbage)


def _params():
    return {"intrinsics": INTRINSICS, "extrinsics": EXTRINSICS}


def test_camera_geometry() -> None:
    cams = h36m_cameras(_params())
    cam_a, cam_b = cams["S1"]
    assert (cam_a.name, cam_a.width, cam_a.height) == ("cam_a", 1000, 1002)
    np.testing.assert_allclose(cam_a.intrinsics, [1140, 1139, 510, 505, -0.2, 0.2, -0.005, -0.001, -0.002])
    np.testing.assert_allclose(cam_a.rotation, np.eye(3), atol=1e-12)
    # cam_b looks along world -Y: a point 3 m in front of it is on its optical axis at depth 3000.
    point = np.array([[[0.0, 1000.0, 1000.0]]])
    views = h36m_views(np.repeat(point, 17, axis=1), cam_b)
    np.testing.assert_allclose(views.positions_cam[0, 0], [0, 0, 3000], atol=1e-6)
    np.testing.assert_allclose(views.keypoints_2d[0, 0], [500, 500], atol=1e-6)
    np.testing.assert_allclose(cam_b.rotation @ [0.0, -1.0, 0.0], [0, 0, 1], atol=1e-12)  # forward
    # World up is image up (smaller v); world +X is image left for an upright camera looking along -Y.
    moved = h36m_views(np.repeat(point + [[[300.0, 0.0, 200.0]]], 17, axis=1), cam_b).keypoints_2d[0, 0]
    np.testing.assert_allclose(moved, [500 - 1000 * 300 / 3000, 500 - 1000 * 200 / 3000], atol=1e-3)


def test_camera_orientation_is_camera_to_world() -> None:
    # An upright camera looking along world +X: camera axes in world are right = -Y, down = -Z,
    # forward = +X, i.e. the quaternion (0.5, -0.5, 0.5, -0.5); its world-to-camera R is the transpose.
    cam = h36m_camera(INTRINSICS[1], {"orientation": [0.5, -0.5, 0.5, -0.5], "translation": [-3000.0, 0, 1000]})
    np.testing.assert_allclose(cam.rotation, [[0, -1, 0], [0, 0, -1], [1, 0, 0]], atol=1e-12)
    pts = np.zeros((1, 17, 3)) + [0.0, 0.0, 1000.0]
    pts[0, 1] = [0.0, 300.0, 1200.0]  # 300 mm to the camera's left (+Y), 200 mm up
    views = h36m_views(pts, cam)
    np.testing.assert_allclose(views.positions_cam[0, 0], [0, 0, 3000], atol=1e-6)
    np.testing.assert_allclose(views.keypoints_2d[0, 1], [400.0, 500.0 - 200.0 / 3.0], atol=1e-3)


def test_camera_params_as_dicts_by_id() -> None:
    by_id = {
        "intrinsics": {d["id"]: {k: v for k, v in d.items() if k != "id"} for d in INTRINSICS},
        "extrinsics": {"S1": {"cam_b": EXTRINSICS["S1"][1], "cam_a": EXTRINSICS["S1"][0]}},
    }
    listed, keyed = h36m_cameras(_params())["S1"], h36m_cameras(by_id)["S1"]
    for a, b in zip(listed, keyed, strict=True):
        assert a.name == b.name
        np.testing.assert_array_equal(a.rotation, b.rotation)
        np.testing.assert_array_equal(a.centre, b.centre)


def test_camera_param_errors() -> None:
    with pytest.raises(ValueError, match="'intrinsics' and 'extrinsics'"):
        h36m_cameras({"intrinsics": INTRINSICS})
    with pytest.raises(ValueError, match="has 1 cameras"):
        h36m_cameras({"intrinsics": INTRINSICS, "extrinsics": {"S1": EXTRINSICS["S1"][:1]}})
    bad = dict(INTRINSICS[0])
    del bad["focal_length"]
    with pytest.raises(ValueError, match="focal_length"):
        h36m_camera(bad, EXTRINSICS["S1"][0])
    with pytest.raises(ValueError, match="unit quaternion"):
        h36m_camera(INTRINSICS[0], {"orientation": [2.0, 0, 0, 0], "translation": [0, 0, 0]})
    with pytest.raises(ValueError, match="radial_distortion"):
        h36m_camera({**INTRINSICS[0], "radial_distortion": [0.1, 0.2]}, EXTRINSICS["S1"][0])


def test_views_and_2d_file_round_trip(tmp_path, file_3d) -> None:
    walk = load_h36m_3d(file_3d)["S1"]["Walking"]
    cams = h36m_cameras(_params())["S1"]
    per_cam = [h36m_views(walk, c) for c in cams]
    for v, c in zip(per_cam, cams, strict=True):
        want = project(c.world_to_camera(walk), c.intrinsics)
        np.testing.assert_allclose(v.keypoints_2d, want, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(v.positions_rel, v.positions_cam - v.positions_cam[:, :1], atol=1e-3)
    path = tmp_path / "data_2d_h36m_gt.npz"
    meta = {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": SYMMETRY}
    np.savez_compressed(path, positions_2d={"S1": {"Walking": [v.keypoints_2d for v in per_cam]}}, metadata=meta)
    kp, metadata = load_h36m_2d(path)
    assert metadata["num_joints"] == 17 and metadata["keypoints_symmetry"] == SYMMETRY
    assert len(kp["S1"]["Walking"]) == 2
    for got, v in zip(kp["S1"]["Walking"], per_cam, strict=True):
        assert got.shape == (20, 17, 2) and got.dtype == np.float32
        np.testing.assert_array_equal(got, v.keypoints_2d)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"positions_2d": {"S1": {"W": [np.zeros((5, 17, 2))]}}}, "missing key 'metadata'"),
        ({"metadata": {"num_joints": 17}}, "missing key 'positions_2d'"),
        ({"positions_2d": {"S1": {"W": [np.zeros((5, 16, 2))]}}, "metadata": {"num_joints": 17}}, r"\[0\]"),
        ({"positions_2d": {"S1": {"W": np.zeros((4, 5, 17, 2))}}, "metadata": {}}, "list of per-camera"),
        ({"positions_2d": {"S1": {"W": []}}, "metadata": {}}, "non-empty list"),
        (
            {"positions_2d": {"S1": {"W": [np.zeros((5, 17, 2))]}}, "metadata": {"keypoints_symmetry": [[1, 2], [3]]}},
            "keypoints_symmetry",
        ),
    ],
)
def test_load_2d_rejects_malformed(tmp_path, content, match) -> None:
    path = tmp_path / "bad2d.npz"
    np.savez_compressed(path, **content)
    with pytest.raises(ValueError, match=match):
        load_h36m_2d(path)
