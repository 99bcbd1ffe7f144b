"""The CMU -> anny cmu_mb retargeting (mobpose.data.mesh_rig): the inverse kinematics recovers the rig's own
poses, anny's forward kinematics agrees with it, and the residual on real motion capture stays where it was
measured (docs/MODELS.md)."""

import numpy as np
import pytest

pytest.importorskip("anny")
torch = pytest.importorskip("torch")

from mobpose.data.cmu import load_cmu  # noqa: E402
from mobpose.data.mesh_rig import VIRTUAL, RigRetargeter, _swing  # noqa: E402


@pytest.fixture(scope="module")
def rig():
    return RigRetargeter()


def _random_rotations(rng, n, max_angle):
    axis = rng.standard_normal((n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = rng.uniform(-max_angle, max_angle, n)
    k = np.zeros((n, 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k[:, 1, 0], k[:, 2, 0], k[:, 2, 1] = axis[:, 2], -axis[:, 1], axis[:, 0]
    return np.eye(3) + np.sin(angle)[:, None, None] * k + (1 - np.cos(angle))[:, None, None] * (k @ k)


LIMBS = ("LeftUpLeg", "LeftLeg", "RightUpLeg", "RightLeg", "LeftArm", "LeftForeArm", "RightArm", "RightForeArm",
         "Neck", "Head")


def _rig_poses(rig, rng, t):
    """Poses of the rig that the inverse kinematics must recover exactly: a random rigid motion of the whole body
    and a random rotation (twist included) of each limb, neck and head bone, every other bone following its
    parent. (The hip, back and shoulder bones are left out: the solver takes the pelvis's orientation from the hip
    and back joints, and the bones hanging off a twisted back are not on its axis.)"""
    n = len(rig.labels)
    g, heads = np.empty((t, n, 3, 3)), np.empty((t, n, 3))
    limbs = {rig.index[b] for b in LIMBS}
    for c, par in enumerate(rig.parents):
        if par < 0:
            g[:, c] = _random_rotations(rng, t, np.pi)
            heads[:, c] = rng.uniform(-2, 2, (t, 3))
            continue
        heads[:, c] = heads[:, par] + g[:, par] @ (rig.rest_heads[c] - rig.rest_heads[par])
        g[:, c] = _random_rotations(rng, t, np.pi) @ g[:, par] if c in limbs else g[:, par]
    return g, heads


def test_swing_is_the_rotation_between_directions():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 3)), rng.standard_normal((64, 3))
    b[:4] = -a[:4] * rng.uniform(0.5, 2, (4, 1))  # opposite directions
    b[4:8] = a[4:8] * 3  # the same direction
    r = _swing(a, b)
    got = np.einsum("tij,tj->ti", r, a)
    np.testing.assert_allclose(got / np.linalg.norm(got, axis=1, keepdims=True),
                               b / np.linalg.norm(b, axis=1, keepdims=True), atol=1e-9)
    np.testing.assert_allclose(r @ np.swapaxes(r, 1, 2), np.broadcast_to(np.eye(3), r.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-9)
    np.testing.assert_allclose(r[4:8], np.broadcast_to(np.eye(3), (4, 3, 3)), atol=1e-9)


def test_inverse_kinematics_recovers_the_rigs_own_poses(rig):
    rng = np.random.default_rng(1)
    g, heads = _rig_poses(rig, rng, 32)
    target = rig.joints(g, heads)
    got = rig.joints(*rig.solve(target))
    assert np.abs(got - target).max() < 1e-9
    # a joint moved off the rig's limb length is not reached
    other = target.copy()
    other[:, 5] += 0.05
    assert rig.residual_mm(other).max() > 10


def test_every_carrier_points_at_its_joint(rig):
    clip = load_cmu(split="test", actions="walking")[0].positions[::12] / 1000.0
    g, heads = rig.solve(clip)
    got = rig.joints(g, heads)
    for j in range(1, 17):
        c = rig.carrier[j]
        want = clip[:, j] - heads[:, c]
        have = got[:, j] - heads[:, c]
        cos = np.einsum("ti,ti->t", want, have) / np.linalg.norm(want, axis=1) / np.linalg.norm(have, axis=1)
        assert cos.min() > 1 - 1e-12, (j, cos.min())


def test_anny_forward_kinematics_matches_the_solution(rig):
    clip = load_cmu(split="test", actions="walking")[0].positions[::40][:8] / 1000.0
    g, heads = rig.solve(clip)
    out = rig.pose(clip)
    poses = out["bone_poses"].double().numpy()
    c = rig.carrier
    # a joint moves with its carrier bone: posed head + (posed orientation x rest orientation^T) offset
    rot = poses[:, c, :3, :3] @ np.swapaxes(rig.rest_orient[c], 1, 2)[None]
    from_anny = poses[:, c][:, :, :3, 3] + np.einsum("tjab,jb->tja", rot, rig.offsets)
    np.testing.assert_allclose(from_anny, rig.joints(g, heads), atol=1e-6)
    assert out["vertices"].shape == (8, 13718, 3)


def test_residual_on_cmu_walking(rig):
    local = RigRetargeter(rig.body)
    clip = load_cmu(split="test", actions="walking")[0].positions[::4] / 1000.0
    before = local.residual_mm(clip).mean(0)
    local.calibrate(clip)
    after = local.residual_mm(clip)
    # measured 2026-12-05 (docs/MODELS.md): 47.8 mm before, 31.9 mm after; the virtual joints under 1.3 mm
    assert after[:, list(VIRTUAL)].mean() < 5.0
    assert after.mean() < 40.0
    assert before[7] > 100.0  # the rig's Spine1 head is high in the chest: the offset is what brings it down
    assert after.mean() < before.mean() - 10.0


def test_bad_positions_are_refused(rig):
    with pytest.raises(ValueError, match=r"\(T, 17, 3\)"):
        rig.solve(np.zeros((4, 16, 3)))
    bad = np.zeros((2, 17, 3))
    bad[1, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rig.solve(bad)
