"""The synthetic image engine: the sphere rasteriser against brute force, labels against the renders."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from mobpose import _core
from mobpose.data.synthetic import (
    MATERIALS,
    EngineConfig,
    background_photos,
    body_spheres,
    crop_affine,
    make_sample,
    make_scene,
)
from mobpose.data.synthetic.dataset import SyntheticPoseDataset, normalise_crop
from mobpose.models.convnextpose import normalize_images
from mobpose.models.decode import decode_pose

K = np.array([[300.0, 0, 40.0], [0, 310.0, 30.0], [0, 0, 1]], np.float32)
QUIET = EngineConfig(augment=False, blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.0)


@pytest.fixture(scope="module")
def poses():
    from mobpose.data.cmu import load_cmu
    from mobpose.data.synthetic.dataset import pose_pool

    return pose_pool(load_cmu(split="test")[:3])


def brute_force(spheres: np.ndarray, proj: np.ndarray, h: int, w: int):
    inv = np.linalg.inv(proj.astype(np.float64))
    depth = np.full((h, w), np.inf)
    index = np.full((h, w), -1)
    for i in range(h):
        for j in range(w):
            r = inv @ np.array([j, i, 1.0])
            r = r / r[2]
            for s, (cx, cy, cz, rad) in enumerate(spheres.astype(np.float64)):
                c = np.array([cx, cy, cz])
                rr, rc = r @ r, r @ c
                disc = rc * rc - rr * (c @ c - rad * rad)
                if disc < 0:
                    continue
                t = (rc - np.sqrt(disc)) / rr
                if t < depth[i, j]:
                    depth[i, j], index[i, j] = t, s
    return depth, index


@pytest.mark.parametrize("affine", [False, True])
def test_render_spheres_matches_brute_force(affine):
    rng = np.random.default_rng(1)
    spheres = np.concatenate([rng.uniform(-300, 300, (12, 2)), rng.uniform(1500, 3000, (12, 1)),
                              rng.uniform(40, 200, (12, 1))], axis=1).astype(np.float32)
    proj = K.astype(np.float64)
    if affine:
        proj = crop_affine(np.array([5.0, -3.0, 60.0, 70.0]), 48, 1.1, 25.0) @ proj
    proj = proj.astype(np.float32)
    depth, normal, index = _core.render_spheres(spheres, proj, 48, 64)
    ref_depth, ref_index = brute_force(spheres, proj, 48, 64)
    hit = np.isfinite(ref_depth)
    assert 0.05 < hit.mean() < 1.0  # the case covers both hits and misses
    np.testing.assert_array_equal(np.isfinite(depth), hit)
    np.testing.assert_allclose(depth[hit], ref_depth[hit], rtol=1e-5)
    agree = (index == ref_index)[hit]
    assert agree.mean() > 0.995  # ties between touching spheres may go either way
    np.testing.assert_allclose(np.linalg.norm(normal[hit], axis=-1), 1.0, atol=1e-3)
    assert (normal[~hit] == 0).all() and (index[~hit] == -1).all()
    yy, xx = np.mgrid[0:48, 0:64]
    rays = np.stack([xx, yy, np.ones_like(xx)], -1) @ np.linalg.inv(proj.astype(np.float64)).T
    assert ((normal * rays).sum(-1)[hit] < 1e-3).all()  # visible surfaces face the camera


def test_render_spheres_bad_input():
    good = np.array([[0, 0, 2000, 100]], np.float32)
    with pytest.raises(ValueError, match=r"spheres must have shape \(S, 4\)"):
        _core.render_spheres(np.zeros((3, 3), np.float32), K, 8, 8)
    with pytest.raises(TypeError, match="spheres must be float32"):
        _core.render_spheres(good.astype(np.float64), K, 8, 8)
    with pytest.raises(ValueError, match="invertible"):
        _core.render_spheres(good, np.zeros((3, 3), np.float32), 8, 8)
    with pytest.raises(ValueError, match="positive finite radius"):
        _core.render_spheres(np.array([[0, 0, 2000, -1]], np.float32), K, 8, 8)
    with pytest.raises(ValueError, match="finite centre"):
        _core.render_spheres(np.array([[np.nan, 0, 2000, 10]], np.float32), K, 8, 8)
    with pytest.raises(ValueError, match="image size"):
        _core.render_spheres(good, K, 0, 8)


def brute_force_mesh(verts: np.ndarray, faces: np.ndarray, proj: np.ndarray, h: int, w: int):
    """Ray/triangle intersection per pixel (Moller-Trumbore): the nearest hit's camera Z and face."""
    inv = np.linalg.inv(proj.astype(np.float64))
    v = verts.astype(np.float64)
    depth = np.full((h, w), np.inf)
    index = np.full((h, w), -1)
    for i in range(h):
        for j in range(w):
            r = inv @ np.array([j, i, 1.0])
            r = r / r[2]
            for f, (a, b, c) in enumerate(faces):
                e1, e2 = v[b] - v[a], v[c] - v[a]
                pv = np.cross(r, e2)
                det = e1 @ pv
                if abs(det) < 1e-12:
                    continue
                tv = -v[a]  # the ray starts at the camera centre; r has Z = 1, so t is the hit's Z
                u = (tv @ pv) / det
                qv = np.cross(tv, e1)
                vv = (r @ qv) / det
                t = (e2 @ qv) / det
                if u < 0 or vv < 0 or u + vv > 1:
                    continue
                if t < depth[i, j]:
                    depth[i, j], index[i, j] = t, f
    return depth, index


def icosphere(centre, radius: float, subdivisions: int = 2):
    """A tessellated sphere: (V, 3) float32 vertices, (F, 3) int32 faces, (V, 3) unit outward normals."""
    t = (1 + 5**0.5) / 2
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
         (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
         (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
         (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.array(p, float) / np.linalg.norm(p) for p in v]
    def mid(a, b, cache):
        key = (min(a, b), max(a, b))
        if key not in cache:
            m = verts[a] + verts[b]
            verts.append(m / np.linalg.norm(m))
            cache[key] = len(verts) - 1
        return cache[key]

    for _ in range(subdivisions):
        cache, out = {}, []

        for a, b, c in f:
            ab, bc, ca = mid(a, b, cache), mid(b, c, cache), mid(c, a, cache)
            out += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        f = out
    unit = np.array(verts)
    return ((unit * radius + np.asarray(centre)).astype(np.float32), np.array(f, np.int32),
            unit.astype(np.float32))


@pytest.mark.parametrize("affine", [False, True])
def test_render_mesh_matches_brute_force(affine):
    rng = np.random.default_rng(2)
    verts = np.concatenate([rng.uniform(-500, 500, (18, 2)), rng.uniform(1500, 3000, (18, 1))], 1).astype(np.float32)
    faces = rng.integers(0, 18, (10, 3)).astype(np.int32)
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    proj = K.astype(np.float64)
    if affine:
        proj = crop_affine(np.array([5.0, -3.0, 60.0, 70.0]), 48, 1.1, 25.0) @ proj
    proj = proj.astype(np.float32)
    normals = rng.normal(size=verts.shape).astype(np.float32)
    depth, normal, index = _core.render_mesh(verts, normals, faces, proj, 48, 64)
    ref_depth, ref_index = brute_force_mesh(verts, faces, proj, 48, 64)
    hit = np.isfinite(ref_depth)
    assert 0.05 < hit.mean() < 1.0
    # pixel centres exactly on a shared edge may go to either face; nowhere else may they differ
    assert (np.isfinite(depth) == hit).mean() > 0.99
    both = hit & np.isfinite(depth)
    np.testing.assert_allclose(depth[both], ref_depth[both], rtol=1e-4)
    assert (index == ref_index)[both].mean() > 0.99
    np.testing.assert_allclose(np.linalg.norm(normal[both], axis=-1), 1.0, atol=1e-4)
    assert (normal[~np.isfinite(depth)] == 0).all() and (index[~np.isfinite(depth)] == -1).all()
    yy, xx = np.mgrid[0:48, 0:64]
    rays = np.stack([xx, yy, np.ones_like(xx)], -1) @ np.linalg.inv(proj.astype(np.float64)).T
    assert ((normal * rays).sum(-1)[both] <= 1e-6).all()  # turned towards the camera


def test_render_mesh_sphere_agrees_with_render_spheres():
    """A finely tessellated sphere rasterises like the analytic sphere: same silhouette, depth within the
    tessellation's sag, normals within a few degrees."""
    verts, faces, unit = icosphere((120.0, -80.0, 2500.0), 300.0, subdivisions=4)
    d_mesh, n_mesh, i_mesh = _core.render_mesh(verts, unit, faces, K, 48, 64)
    d_sph, n_sph, _ = _core.render_spheres(np.array([[120.0, -80.0, 2500.0, 300.0]], np.float32), K, 48, 64)
    both = np.isfinite(d_mesh) & np.isfinite(d_sph)
    assert (np.isfinite(d_mesh) != np.isfinite(d_sph)).sum() <= 0.02 * both.sum()
    facing = both & (n_sph[..., 2] < -0.5)  # away from the silhouette, where grazing rays magnify the sag
    assert facing.sum() > 0.5 * both.sum()
    assert np.abs(d_mesh[facing] - d_sph[facing]).max() < 2 * 300.0 * (1 - np.cos(np.pi / 40))
    cos = (n_mesh[facing] * n_sph[facing]).sum(-1)
    assert cos.min() > np.cos(np.radians(4.0))
    assert set(np.unique(i_mesh[both])) <= set(range(len(faces)))
    # nearer surfaces win: a small sphere in front hides the big one where they overlap
    v2, f2, u2 = icosphere((120.0, -80.0, 2000.0), 80.0, 3)
    verts2 = np.concatenate([verts, v2])
    faces2 = np.concatenate([faces, f2 + len(verts)]).astype(np.int32)
    d2, _, i2 = _core.render_mesh(verts2, np.concatenate([unit, u2]), faces2, K, 48, 64)
    front = i2 >= len(faces)
    assert front.sum() > 10 and (d2[front] <= 2000.01).all() and (d2[front] > 1900.0).all()
    assert (d2[front] < d_mesh[front]).all() and (i2[~front] == i_mesh[~front]).all()


def test_render_mesh_bad_input():
    verts, faces, unit = icosphere((0.0, 0.0, 2000.0), 100.0, 0)
    with pytest.raises(TypeError, match="faces must be int32"):
        _core.render_mesh(verts, unit, faces.astype(np.int64), K, 8, 8)
    with pytest.raises(TypeError, match="vertices must be float32"):
        _core.render_mesh(verts.astype(np.float64), unit, faces, K, 8, 8)
    with pytest.raises(ValueError, match="both have shape"):
        _core.render_mesh(verts, unit[:-1], faces, K, 8, 8)
    with pytest.raises(ValueError, match=r"faces must have shape \(F, 3\)"):
        _core.render_mesh(verts, unit, faces[:, :2].copy(), K, 8, 8)
    bad = faces.copy()
    bad[3, 1] = len(verts)
    with pytest.raises(ValueError, match="face 3 has vertex index 12 outside"):
        _core.render_mesh(verts, unit, bad, K, 8, 8)
    nan = verts.copy()
    nan[5, 2] = np.nan
    with pytest.raises(ValueError, match="vertex 5 or its normal is not finite"):
        _core.render_mesh(nan, unit, faces, K, 8, 8)
    with pytest.raises(ValueError, match="invertible"):
        _core.render_mesh(verts, unit, faces, np.zeros((3, 3), np.float32), 8, 8)
    with pytest.raises(ValueError, match="image size"):
        _core.render_mesh(verts, unit, faces, K, 8, 0)


def test_body_spheres(poses):
    spheres, materials = body_spheres(poses[0])
    assert spheres.dtype == np.float32 and spheres.shape[1] == 4 and len(spheres) == len(materials) > 100
    assert set(np.unique(materials)) <= set(range(len(MATERIALS)))
    assert (spheres[:, 3] > 0).all()
    # the body surrounds the skeleton: every joint lies inside or near some sphere
    d = np.linalg.norm(spheres[None, :, :3] - poses[0][:, None], axis=-1) - spheres[None, :, 3]
    assert (d.min(axis=1) < 20.0).all()
    with pytest.raises(ValueError, match="shape"):
        body_spheres(np.zeros((16, 3)))
    with pytest.raises(ValueError, match="finite"):
        body_spheres(np.full((17, 3), np.nan))


def test_sample_is_deterministic_and_labelled(poses):
    a = make_sample(np.random.default_rng(7), poses[5])
    b = make_sample(np.random.default_rng(7), poses[5])
    c = make_sample(np.random.default_rng(8), poses[5])
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["crop"], c["crop"])
    assert a["crop"].shape == (256, 256, 3) and a["crop"].dtype == np.uint8
    assert a["target"].shape == a["mask"].shape == (18, 3) and a["joints_cam"].shape == (18, 3)
    assert a["joints_2d"].shape == (18, 2) and a["visibility"].shape == (18,) and a["visibility"].dtype == bool
    np.testing.assert_allclose(a["joints_cam"][17], a["joints_cam"][[11, 14]].mean(0), atol=1e-3)


@pytest.mark.parametrize("seed", range(4))
def test_target_decodes_to_the_camera_joints(poses, seed):
    """Without crop augmentation the target is exactly what decode_pose inverts (ConvNeXtPose decoding)."""
    s = make_sample(np.random.default_rng(seed), poses[seed * 40], QUIET)
    dec = decode_pose(s["target"], s["crop_box"], s["root_depth"], s["intrinsics"], (32, 32, 32))
    np.testing.assert_allclose(dec["camera_mm"], s["joints_cam"], rtol=1e-4, atol=0.5)
    np.testing.assert_allclose(dec["pixels"], s["joints_2d"], atol=1e-2)


@pytest.mark.parametrize("seed", range(3))
def test_augmented_target_follows_the_crop_affine(poses, seed):
    s = make_sample(np.random.default_rng(seed), poses[seed * 50])
    uv = np.c_[s["joints_2d"], np.ones(18)] @ s["crop_affine"].T.astype(np.float64)
    np.testing.assert_allclose(s["target"][:, :2], uv[:, :2] * 32 / 256, atol=1e-3)
    inside = (s["target"] >= 0).all(1) & (s["target"] <= 31).all(1)
    np.testing.assert_array_equal(s["mask"][:, 0] == 1, inside)


def test_crop_is_the_inference_crop_of_the_full_image(poses):
    s = make_sample(np.random.default_rng(3), poses[10], QUIET, full_image=True)
    warped = cv2.warpAffine(s["image"], s["crop_affine"][:2], (256, 256), flags=cv2.INTER_LINEAR)
    diff = np.abs(warped.astype(int) - s["crop"].astype(int))
    assert diff.mean() < 1.0
    # the person is drawn where the labels say: the body's front surface is near its projected torso joints
    # (the pelvis alone may be hidden by a raised thigh)
    torso = [0, 7, 8]
    x, y = s["joints_2d"][torso].round().astype(int).T
    inside = (0 <= x) & (x < s["image"].shape[1]) & (0 <= y) & (y < s["image"].shape[0])
    assert s["visibility"][torso].any() or not inside.any()


def test_body_covers_every_joint_in_the_render(poses):
    """Each joint lies inside the body, so the body silhouette covers the joint's projected pixel."""
    s = make_sample(np.random.default_rng(11), poses[20], QUIET)
    spheres, _ = body_spheres(s["joints_cam"][:17])
    fx, fy, cx, cy = s["intrinsics"][:4].astype(np.float64)
    k = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float32)
    w, h = (int(v) for v in s["image_size"])
    _, _, index = _core.render_spheres(spheres, k, h, w)
    uv = np.round(s["joints_2d"][:17]).astype(int)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    assert inside.sum() >= 10
    assert (index[uv[inside, 1], uv[inside, 0]] >= 0).all()


def test_visibility_marks_hidden_and_outside_joints(poses):
    vis = np.stack([make_sample(np.random.default_rng(i), poses[i * 7], QUIET)["visibility"] for i in range(12)])
    assert vis.mean() > 0.6 and (~vis).any()  # most joints seen, some hidden behind the body


def test_scene_has_every_person(poses):
    s = make_scene(np.random.default_rng(2), [poses[i * 30] for i in range(4)], image_size=(320, 240))
    assert s["image"].shape == (240, 320, 3)
    assert s["joints_cam"].shape == (4, 18, 3) and s["joints_2d"].shape == (4, 18, 2)
    assert s["visibility"].shape == (4, 18) and s["bbox"].shape == (4, 4)
    x, y, w, h = s["bbox"].T
    assert (x >= 0).all() and (y >= 0).all() and (x + w <= 320 + 1e-3).all() and (y + h <= 240 + 1e-3).all()
    assert (s["person_mask_area"] > 0).sum() >= 3
    with pytest.raises(ValueError, match="1 to 8 poses"):
        make_scene(np.random.default_rng(0), [])


def test_background_photos_exclude_people():
    photos = background_photos()
    assert len(photos) >= 10  # scikit-image is a training dependency
    assert all(p.dtype == np.float32 and p.ndim == 3 and p.shape[2] == 3 for p in photos)


def test_dataset_items(poses):
    ds = SyntheticPoseDataset(poses, 6, seed=3)
    item = ds[2]
    assert item["image"].shape == (3, 256, 256) and item["image"].dtype == torch.float32
    again = SyntheticPoseDataset(poses, 6, seed=3)[2]
    assert torch.equal(item["image"], again["image"])
    ds.set_epoch(1)
    assert not torch.equal(ds[2]["image"], item["image"])
    fixed = SyntheticPoseDataset(poses, 6, seed=3, fixed=True, with_labels=True, config=QUIET)
    a = fixed[1]
    fixed.set_epoch(5)
    assert torch.equal(fixed[1]["image"], a["image"])
    assert {"joints_cam", "crop_box", "root_depth", "intrinsics"} <= set(a)
    with pytest.raises(IndexError):
        ds[6]
    with pytest.raises(ValueError, match=r"\(N, 17, 3\)"):
        SyntheticPoseDataset(np.zeros((4, 16, 3)), 3)


def test_normalise_crop_matches_the_model_preprocessing():
    crop = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    np.testing.assert_allclose(normalise_crop(crop), normalize_images(crop)[0].numpy(), atol=1e-6)


def test_contact_sheet_cli(tmp_path):
    out = tmp_path / "sheet.png"
    r = subprocess.run([sys.executable, "-m", "mobpose.cli", "synth", "sheet", "--out", str(out), "--count", "4",
                        "--kind", "scenes"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["count"] == 4
    img = cv2.imread(str(out))
    assert img is not None and img.shape == (512, 512, 3)
    r = subprocess.run([sys.executable, "-m", "mobpose.cli", "synth", "sheet", "--out", str(tmp_path / "no" / "x.png"),
                        "--count", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "could not write" in r.stderr


def test_bench_data_quick_with_sphere_bodies():
    r = subprocess.run([sys.executable, "-m", "mobpose.bench", "data", "--quick", "--threads", "1",
                        "--bodies", "spheres"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert [x["case"] for x in lines] == ["engine", "train_step"] and lines[0]["bodies"] == "spheres"
    assert lines[0]["images_per_s"] > 0 and lines[1]["engine_over_training"] > 0
