"""Tests for mobpose.data noise models, augmentations and the window dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mobpose.camera import project
from mobpose.data import (
    DetectorNoise,
    EstimatorNoise,
    PoseWindowDataset,
    corrupt,
    corrupt_2d,
    flip_intrinsics,
    flip_pose,
    random_bone_scale,
    random_global_scale,
    scale_bones,
)
from mobpose.skeleton import H36M_17

EXTREMITIES = [3, 6, 10, 13, 16]
OTHERS = [j for j in range(17) if j not in EXTREMITIES]
QUIET = {"swap_prob": 0.0, "outlier_frame_prob": 0.0, "outlier_joint_prob": 0.0}


def _standing_pose() -> np.ndarray:
    """A plausible H36M-17 pose in camera space (mm), 3 m in front of the camera."""
    p = np.array(
        [
            [0, 0, 0], [-130, 0, 0], [-140, 430, 0], [-140, 840, 30], [130, 0, 0], [140, 430, 0],
            [140, 840, 30], [0, -230, 0], [0, -460, 0], [0, -550, -30], [0, -730, 0], [200, -440, 0],
            [220, -170, 0], [230, 80, 0], [-200, -440, 0], [-220, -170, 0], [-230, 80, 0],
        ],
        dtype=np.float64,
    )  # fmt: skip
    return p + [0.0, 0.0, 3000.0]


def _random_poses(rng: np.random.Generator, t: int) -> np.ndarray:
    return _standing_pose()[None] + rng.normal(0, 30, (t, 17, 3))


# ---------------------------------------------------------------- 3D estimator noise


def test_jitter_statistics() -> None:
    rng = np.random.default_rng(0)
    clean = np.zeros((20000, 17, 3)) + [0.0, 0.0, 3000.0]
    params = EstimatorNoise(jitter_mm=15.0, drift_mm=0.0, extremity_scale=2.0, depth_scale=2.0, **QUIET)
    noisy = corrupt(clean, rng, params)
    err = noisy - clean
    assert abs(err.mean()) < 0.2
    std = err.std(axis=0)  # (J, 3)
    assert std[OTHERS, :2].mean() == pytest.approx(15.0, rel=0.02)
    assert std[EXTREMITIES, :2].mean() == pytest.approx(30.0, rel=0.02)  # extremity_scale 2
    assert std[OTHERS, 2].mean() == pytest.approx(30.0, rel=0.02)  # depth_scale 2
    assert std[EXTREMITIES, 2].mean() == pytest.approx(60.0, rel=0.02)
    lag1 = np.mean(err[1:, OTHERS, 0] * err[:-1, OTHERS, 0]) / err[:, OTHERS, 0].var()
    assert abs(lag1) < 0.03  # white


def test_drift_is_ar1() -> None:
    rng = np.random.default_rng(1)
    clean = np.zeros((20000, 17, 3))
    params = EstimatorNoise(jitter_mm=0.0, drift_mm=20.0, drift_corr=0.95, extremity_scale=2.0, **QUIET)
    err = corrupt(clean, rng, params).astype(np.float64)
    x = err[:, OTHERS, :2]
    assert x.std() == pytest.approx(20.0, rel=0.05)
    lag1 = np.mean(x[1:] * x[:-1]) / x.var()
    assert lag1 == pytest.approx(0.95, abs=0.01)
    lag20 = np.mean(x[20:] * x[:-20]) / x.var()
    assert lag20 == pytest.approx(0.95**20, abs=0.05)


def test_swaps_exchange_one_limb_pair() -> None:
    rng = np.random.default_rng(2)
    clean = np.tile(_standing_pose(), (20000, 1, 1))
    params = EstimatorNoise(jitter_mm=0.0, drift_mm=0.0, swap_prob=0.05, outlier_frame_prob=0.0, outlier_joint_prob=0.0)
    noisy, info = corrupt(clean, rng, params, return_info=True)
    swapped = info["swapped"]
    assert swapped.mean() == pytest.approx(0.05, abs=0.005)
    np.testing.assert_allclose(noisy[~swapped], clean[~swapped], atol=1e-3)
    legs = np.allclose(noisy[swapped][:, [2, 3, 5, 6]], clean[swapped][:, [5, 6, 2, 3]], atol=1e-3)
    changed = ~np.isclose(noisy[swapped], clean[swapped], atol=1e-3).all(axis=-1)  # (S, J)
    assert set(np.flatnonzero(changed.any(axis=0))) == {2, 3, 5, 6, 12, 13, 15, 16}
    assert (changed.sum(axis=1) == 4).all()  # exactly one pair of 2-joint groups per swap
    assert not legs  # both kinds of limbs occur


def test_outliers_rate_and_size() -> None:
    rng = np.random.default_rng(3)
    clean = np.zeros((20000, 17, 3))
    params = EstimatorNoise(
        jitter_mm=0.0, drift_mm=0.0, swap_prob=0.0, outlier_frame_prob=0.02, outlier_joint_prob=0.01
    )
    noisy, info = corrupt(clean, rng, params, return_info=True)
    out = info["outlier"]
    assert out.mean() == pytest.approx(1 - 0.99 * 0.98, abs=0.003)
    assert out.all(axis=1).mean() == pytest.approx(0.02, abs=0.004)
    np.testing.assert_array_equal(noisy[~out], 0.0)
    assert noisy[out][:, :2].std() == pytest.approx(200.0, rel=0.05)


def test_default_noise_level_and_determinism() -> None:
    clean = _random_poses(np.random.default_rng(4), 5000)
    a = corrupt(clean, np.random.default_rng(9))
    b = corrupt(clean, np.random.default_rng(9))
    c = corrupt(clean, np.random.default_rng(10))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.shape == clean.shape
    rel = (a - a[:, :1]) - (clean - clean[:, :1])
    mpjpe = np.linalg.norm(rel, axis=-1)[:, 1:].mean()
    assert 40.0 < mpjpe < 60.0  # root-relative, about that of a good single-frame estimator


def test_noise_parameters_validated_and_described() -> None:
    d = EstimatorNoise().describe()
    assert d["type"] == "EstimatorNoise" and d["jitter_mm"] == 10.0
    assert json.loads(json.dumps(d)) == d
    assert json.loads(json.dumps(DetectorNoise().describe()))["type"] == "DetectorNoise"
    with pytest.raises(ValueError, match="jitter_mm"):
        EstimatorNoise(jitter_mm=-1.0)
    with pytest.raises(ValueError, match="drift_corr"):
        EstimatorNoise(drift_corr=1.0)
    with pytest.raises(ValueError, match="swap_prob"):
        EstimatorNoise(swap_prob=1.5)
    with pytest.raises(ValueError, match="outlier_prob"):
        DetectorNoise(outlier_prob=-0.1)
    with pytest.raises(ValueError, match="poses_cam_mm"):
        corrupt(np.zeros((10, 17, 2)), np.random.default_rng(0))
    with pytest.raises(ValueError, match="J=10"):
        corrupt(np.zeros((10, 10, 3)), np.random.default_rng(0))


# ---------------------------------------------------------------- 2D detector noise


def test_2d_noise_scales_with_person_size() -> None:
    rng = np.random.default_rng(5)
    base = _standing_pose()[:, :2]  # height (foot to head top) 1570 px
    for scale in (0.25, 0.5):
        kp = np.tile(base * scale + 500.0, (20000, 1, 1))
        size = (base * scale).max(0) - (base * scale).min(0)
        noisy, info = corrupt_2d(kp, rng, DetectorNoise(swap_prob=0.0, outlier_prob=0.0), return_info=True)
        np.testing.assert_allclose(info["size"], size.max())
        err = noisy - kp
        assert err[:, OTHERS].std() == pytest.approx(0.01 * size.max(), rel=0.03)
        assert err[:, EXTREMITIES].std() == pytest.approx(0.015 * size.max(), rel=0.03)
    noisy, info = corrupt_2d(
        kp, rng, DetectorNoise(jitter_frac=0.0, swap_prob=0.02, outlier_prob=0.01), return_info=True
    )
    assert info["swapped"].mean() == pytest.approx(0.02, abs=0.004)
    assert info["outlier"].mean() == pytest.approx(0.01, abs=0.002)
    with pytest.raises(ValueError, match="NaN"):
        corrupt_2d(np.full((3, 17, 2), np.nan), rng)


# ---------------------------------------------------------------- augmentations


def test_scale_bones_exact() -> None:
    pose = _random_poses(np.random.default_rng(6), 4)
    factors = np.linspace(0.8, 1.2, 17)
    out = scale_bones(pose, H36M_17, factors)
    ratio = H36M_17.bone_lengths(out) / H36M_17.bone_lengths(pose)
    np.testing.assert_allclose(ratio, np.broadcast_to(factors[1:], ratio.shape), rtol=1e-10)
    np.testing.assert_allclose(out[:, 0], pose[:, 0])
    with pytest.raises(ValueError, match="factors"):
        scale_bones(pose, H36M_17, -factors)


def test_random_bone_scale_keeps_directions_and_symmetry() -> None:
    rng = np.random.default_rng(7)
    pose = _random_poses(rng, 50).astype(np.float32)
    out, f = random_bone_scale(pose, H36M_17, rng, sigma=0.1, return_factors=True)
    assert out.dtype == np.float32 and out.shape == pose.shape
    ratio = H36M_17.bone_lengths(out) / H36M_17.bone_lengths(pose)
    np.testing.assert_allclose(ratio, np.broadcast_to(f[1:], ratio.shape), rtol=1e-4)
    for j, p in H36M_17.edges:
        d0 = pose[:, j] - pose[:, p]
        d1 = out[:, j] - out[:, p]
        cos = np.sum(d0 * d1, -1) / np.linalg.norm(d0, axis=-1) / np.linalg.norm(d1, axis=-1)
        np.testing.assert_allclose(cos, 1.0, atol=1e-5)
    np.testing.assert_array_equal(f[list(H36M_17.left)], f[list(H36M_17.right)])
    assert f[0] == 1.0 and len(set(np.round(f, 8))) > 5
    logs = np.log(np.concatenate([random_bone_scale(pose[:1], H36M_17, rng, 0.05, True)[1][1:] for _ in range(300)]))
    assert logs.std() == pytest.approx(0.05, rel=0.1)
    np.testing.assert_allclose(random_bone_scale(pose, H36M_17, rng, sigma=0.0), pose, atol=1e-3)
    with pytest.raises(ValueError, match="rng"):
        random_bone_scale(pose, H36M_17, None)


def test_random_global_scale() -> None:
    rng = np.random.default_rng(8)
    pose = _random_poses(rng, 10)
    out, s = random_global_scale(pose, rng, 0.8, 1.2, return_factor=True)
    assert 0.8 <= s <= 1.2
    np.testing.assert_allclose(out[:, 0], pose[:, 0])
    np.testing.assert_allclose(H36M_17.bone_lengths(out), s * H36M_17.bone_lengths(pose), rtol=1e-10)
    world = np.zeros((2, 17, 3))
    world[:, :, 2] = np.linspace(0.0, 1700.0, 17)  # foot on the ground (z = 0)
    world[:, 0] = [100.0, 50.0, 950.0]
    grounded, s = random_global_scale(world, rng, about="ground", return_factor=True)
    assert grounded[0, 1, 2] == pytest.approx(s * world[0, 1, 2]) and grounded[0, 0, 2] == pytest.approx(s * 950)
    np.testing.assert_allclose(grounded[:, 0, :2], world[:, 0, :2])
    with pytest.raises(ValueError, match="about"):
        random_global_scale(world, rng, about="feet")


def test_flip_is_an_involution_and_matches_projection() -> None:
    rng = np.random.default_rng(11)
    pose = _random_poses(rng, 6)
    k = np.array([1100.0, 1090.0, 480.0, 520.0, -0.2, 0.1, -0.01, 0.002, -0.001])
    width = 1000
    kp = project(pose, k)
    f3, f2 = flip_pose(pose, kp, width)
    b3, b2 = flip_pose(f3, f2, width)
    np.testing.assert_array_equal(b3, pose)
    np.testing.assert_allclose(b2, kp, atol=1e-9)
    np.testing.assert_array_equal(f3[:, 4, 0], -pose[:, 1, 0])  # left hip <- mirrored right hip
    np.testing.assert_allclose(f2[:, 11, 0], width - 1 - kp[:, 14, 0])
    np.testing.assert_allclose(project(f3, flip_intrinsics(k, width)), f2, atol=1e-6)
    only3, none2 = flip_pose(pose, None)
    assert none2 is None and only3.shape == pose.shape
    with pytest.raises(ValueError, match="image_width"):
        flip_pose(None, kp)


# ---------------------------------------------------------------- windows


def _ramp(t: int) -> np.ndarray:
    """(t, 2, 1) whose value is the frame index, to read frame indices back from windows."""
    return np.repeat(np.arange(t, dtype=np.float32)[:, None, None], 2, axis=1)


def test_causal_windows_never_see_the_future() -> None:
    seqs = [_ramp(7), _ramp(12)]
    ds = PoseWindowDataset(seqs, [s * 10 for s in seqs], window=5, mode="causal")
    assert len(ds) == 19
    for i in range(len(ds)):
        item = ds[i]
        frames = item["input"][:, 0, 0]
        t = int(item["frame"])
        assert int(item["anchor"]) == 4 and frames[-1] == t
        assert (frames <= t).all()
        np.testing.assert_array_equal(item["target"][:, 0, 0], frames * 10)
        want = np.clip(np.arange(t - 4, t + 1), 0, None)
        np.testing.assert_array_equal(frames.numpy(), want)
        np.testing.assert_array_equal(item["mask"].numpy(), np.arange(t - 4, t + 1) >= 0)


def test_centred_windows_and_padding() -> None:
    ds = PoseWindowDataset([_ramp(6)], [_ramp(6)], window=5, mode="centred", stride=2)
    assert [int(ds[i]["frame"]) for i in range(len(ds))] == [0, 2, 4]
    np.testing.assert_array_equal(ds[0]["input"][:, 0, 0].numpy(), [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(ds[2]["input"][:, 0, 0].numpy(), [2, 3, 4, 5, 5])
    np.testing.assert_array_equal(ds[2]["mask"].numpy(), [True, True, True, True, False])
    assert int(ds[0]["anchor"]) == 2
    nopad = PoseWindowDataset([_ramp(6), _ramp(9)], [_ramp(6), _ramp(9)], window=5, pad=False)
    assert len(nopad) == 2 + 5
    assert all(bool(nopad[i]["mask"].all()) for i in range(len(nopad)))
    with pytest.raises(ValueError, match="sequence 1 has 4 frames.*window=5"):
        PoseWindowDataset([_ramp(6), _ramp(4)], [_ramp(6), _ramp(4)], window=5, pad=False)
    with pytest.raises(ValueError, match="targets has 5"):
        PoseWindowDataset([_ramp(6)], [_ramp(5)], window=3)
    with pytest.raises(ValueError, match="mode"):
        PoseWindowDataset([_ramp(6)], [_ramp(6)], window=3, mode="future")
    with pytest.raises(ValueError, match="window"):
        PoseWindowDataset([_ramp(6)], [_ramp(6)], window=0)


def test_dataloader_and_seeded_transform() -> None:
    rng = np.random.default_rng(12)
    clean = [_random_poses(rng, 40), _random_poses(rng, 25)]
    noisy = [corrupt(c, rng) for c in clean]

    def jitter(x, y, g):
        return x + g.normal(0, 1, x.shape), y

    ds = PoseWindowDataset(noisy, clean, window=9, stride=3, transform=jitter, seed=5)
    batch = next(iter(DataLoader(ds, batch_size=4, shuffle=False, num_workers=0)))
    assert batch["input"].shape == (4, 9, 17, 3) and batch["input"].dtype == torch.float32
    assert batch["target"].shape == (4, 9, 17, 3) and batch["mask"].shape == (4, 9)
    again = PoseWindowDataset(noisy, clean, window=9, stride=3, transform=jitter, seed=5)
    torch.testing.assert_close(ds[3]["input"], again[3]["input"], rtol=0, atol=0)
    again.set_epoch(1)
    assert not torch.equal(ds[3]["input"], again[3]["input"])
