"""Tests for mobpose.skeleton."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mobpose.skeleton import (
    H36M_17,
    H36M_18,
    Skeleton,
    add_shoulder_midpoint,
    get_skeleton,
    temporal_adjacency,
)

EXPECTED_FLIP = [0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13]


def test_h36m17_structure() -> None:
    assert H36M_17.num_joints == 17
    assert H36M_17.root == 0
    assert len(H36M_17.edges) == 16
    assert H36M_17.edges[0] == (1, 0)
    assert H36M_17.edges[-1] == (16, 15)
    assert H36M_17.children(0) == (1, 4, 7)
    assert H36M_17.children(8) == (9, 11, 14)
    assert H36M_17.children(16) == ()
    assert H36M_17.joint_names[10] == "head_top"


def test_skeleton_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        H36M_17.name = "other"  # type: ignore[misc]


def test_children_out_of_range() -> None:
    with pytest.raises(ValueError, match="joint"):
        H36M_17.children(17)


def test_flip_indices_swaps_and_is_involution() -> None:
    perm = H36M_17.flip_indices
    np.testing.assert_array_equal(perm, EXPECTED_FLIP)
    np.testing.assert_array_equal(perm[perm], np.arange(17))


def test_flip_hand_pose() -> None:
    poses = np.zeros((17, 3))
    poses[1] = [1.0, 2.0, 3.0]  # right hip
    poses[11] = [-4.0, 5.0, 6.0]  # left shoulder
    flipped = H36M_17.flip(poses)
    np.testing.assert_array_equal(flipped[4], [-1.0, 2.0, 3.0])
    np.testing.assert_array_equal(flipped[14], [4.0, 5.0, 6.0])
    np.testing.assert_array_equal(flipped[1], [0.0, 0.0, 0.0])
    flipped_z = H36M_17.flip(poses, axis=2)
    np.testing.assert_array_equal(flipped_z[4], [1.0, 2.0, -3.0])
    assert poses[1, 0] == 1.0  # input untouched


def test_flip_twice_is_identity() -> None:
    poses = np.random.default_rng(0).normal(size=(2, 5, 17, 3))
    np.testing.assert_array_equal(H36M_17.flip(H36M_17.flip(poses)), poses)
    assert not np.allclose(H36M_17.flip(poses), poses)


@pytest.mark.parametrize(
    ("poses", "axis", "match"),
    [
        (np.zeros((16, 3)), 0, "poses.*J=17"),
        (np.zeros(3), 0, "poses.*rank"),
        (np.zeros((0, 17, 3)), 0, "poses.*empty"),
        (np.zeros((17, 3)), 3, "axis"),
        (np.array([["a"] * 3] * 17), 0, "poses.*numeric"),
    ],
)
def test_flip_bad_input(poses: np.ndarray, axis: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        H36M_17.flip(poses, axis=axis)


def test_bone_lengths_chain() -> None:
    chain = Skeleton("chain", (-1, 0, 1), ("a", "b", "c"))
    poses = np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0], [3.0, 4.0, 12.0]])
    np.testing.assert_allclose(chain.bone_lengths(poses), [5.0, 12.0])


def test_bone_lengths_h36m_hand_pose() -> None:
    # Place every joint j at parent + (j, 0, 0): bone j has length j.
    poses = np.zeros((17, 3))
    for j, p in H36M_17.edges:
        poses[j] = poses[p] + [j, 0.0, 0.0]
    batch = np.stack([poses, 2.0 * poses])  # (B=2, J, 3)
    lengths = H36M_17.bone_lengths(batch)
    assert lengths.shape == (2, 16)
    np.testing.assert_allclose(lengths[0], np.arange(1, 17))
    np.testing.assert_allclose(lengths[1], 2.0 * np.arange(1, 17))


def test_bone_lengths_wrong_joint_count() -> None:
    with pytest.raises(ValueError, match="poses.*J=17"):
        H36M_17.bone_lengths(np.zeros((18, 3)))


def test_spatial_adjacency() -> None:
    adj = H36M_17.spatial_adjacency()
    assert adj.shape == (17, 17)
    assert adj.dtype == np.float32
    np.testing.assert_array_equal(np.diag(adj), np.ones(17))
    off = adj - np.diag(np.diag(adj))
    np.testing.assert_array_equal(off > 0, (off > 0).T)
    np.testing.assert_allclose(off.sum(axis=1), np.ones(17), rtol=1e-6)
    assert adj[0, 1] == pytest.approx(1 / 3)
    assert adj[1, 0] == pytest.approx(1 / 2)
    assert adj[10, 9] == pytest.approx(1.0)
    assert adj[8, 11] == pytest.approx(1 / 4)  # thorax: 7, 9, 11, 14
    assert adj[0, 2] == 0.0
    assert int((off > 0).sum()) == 2 * 16


def test_spatial_adjacency_h36m18() -> None:
    adj = H36M_18.spatial_adjacency()
    assert adj.shape == (18, 18)
    assert adj[8, 17] == pytest.approx(1 / 5)
    assert adj[17, 8] == pytest.approx(1.0)


def test_temporal_adjacency_tridiagonal() -> None:
    expected = np.array(
        [
            [1.0, 1.0, 0.0, 0.0, 0.0],
            [0.5, 1.0, 0.5, 0.0, 0.0],
            [0.0, 0.5, 1.0, 0.5, 0.0],
            [0.0, 0.0, 0.5, 1.0, 0.5],
            [0.0, 0.0, 0.0, 1.0, 1.0],
        ],
        dtype=np.float32,
    )
    adj = temporal_adjacency(5)
    assert adj.dtype == np.float32
    np.testing.assert_array_equal(adj, expected)


def test_temporal_adjacency_edge_cases() -> None:
    np.testing.assert_array_equal(temporal_adjacency(1), [[1.0]])
    np.testing.assert_array_equal(temporal_adjacency(2), [[1.0, 1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="num_frames"):
        temporal_adjacency(0)
    with pytest.raises(ValueError, match="num_frames"):
        temporal_adjacency(-3)
    with pytest.raises(ValueError, match="num_frames"):
        temporal_adjacency(2.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"parents": (-1, 2, 1)}, "cycle"),
        ({"parents": (-1, -1, 1)}, "exactly one root"),
        ({"parents": (0, 1, 2)}, "exactly one root"),
        ({"parents": (-1, 0, 5)}, "out of range"),
        ({"parents": (-1, 1, 1)}, "own parent"),
        ({"parents": ()}, "parents"),
        ({"joint_names": ("a", "b")}, "joint_names"),
        ({"joint_names": ("a", "a", "c")}, "unique"),
        ({"left": (1,), "right": (1,)}, "disjoint"),
        ({"left": (1,), "right": ()}, "same length"),
        ({"left": (1,), "right": (3,)}, "right.*out of range"),
        ({"parents": (-1, 0.5, 1)}, "integers"),
    ],
)
def test_invalid_skeleton(kwargs: dict, match: str) -> None:
    fields = {"name": "bad", "parents": (-1, 0, 1), "joint_names": ("a", "b", "c")}
    fields.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Skeleton(**fields)


def test_valid_custom_skeleton_accepts_lists() -> None:
    skel = Skeleton("tri", [-1, 0, 0], ["root", "l", "r"], [1], [2])  # type: ignore[arg-type]
    assert skel.parents == (-1, 0, 0)
    np.testing.assert_array_equal(skel.flip_indices, [0, 2, 1])


def test_h36m18_and_shoulder_midpoint() -> None:
    assert H36M_18.num_joints == 18
    assert H36M_18.parents[17] == 8
    assert H36M_18.joint_names[17] == "thorax_mid"
    assert H36M_18.left == H36M_17.left and H36M_18.right == H36M_17.right
    poses = np.zeros((3, 17, 3))
    poses[:, 11] = [2.0, 4.0, 6.0]
    poses[:, 14] = [-2.0, 0.0, 10.0]
    out = add_shoulder_midpoint(poses)
    assert out.shape == (3, 18, 3)
    np.testing.assert_array_equal(out[:, :17], poses)
    np.testing.assert_array_equal(out[:, 17], np.tile([0.0, 2.0, 8.0], (3, 1)))


def test_shoulder_midpoint_bad_input() -> None:
    with pytest.raises(ValueError, match="poses_17.*J=17"):
        add_shoulder_midpoint(np.zeros((18, 3)))
    with pytest.raises(ValueError, match="poses_17.*rank"):
        add_shoulder_midpoint(np.zeros(17))


def test_get_skeleton() -> None:
    assert get_skeleton("h36m17") is H36M_17
    assert get_skeleton("H36M18") is H36M_18
    with pytest.raises(ValueError, match=r"unknown skeleton name 'coco'.*h36m17.*h36m18"):
        get_skeleton("coco")
