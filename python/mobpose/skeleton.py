"""Skeleton definitions, left/right flipping and graph adjacency matrices.

Shapes use named dims: ``J`` joints, ``C`` coordinates (2 or 3), ``T`` frames,
``N`` graph nodes; ``...`` is any number of leading dims (e.g. ``B, T``).
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Skeleton",
    "H36M_17",
    "H36M_18",
    "add_shoulder_midpoint",
    "get_skeleton",
    "temporal_adjacency",
]

logger = logging.getLogger(__name__)


def _int_tuple(values: Iterable[int], field: str) -> tuple[int, ...]:
    """Converts ``values`` to a tuple of Python ints, rejecting non-integers."""
    try:
        return tuple(operator.index(v) for v in values)
    except TypeError as exc:
        raise ValueError(f"{field} must contain only integers, got {values!r}") from exc


def _normalised_adjacency(num_nodes: int, edges: Sequence[tuple[int, int]]) -> np.ndarray:
    """Builds a degree-normalised adjacency matrix with a unit diagonal.

    The binary adjacency of ``edges`` is symmetrised, each off-diagonal row is
    divided by its degree (rows without neighbours stay zero) and the diagonal
    is set to 1.

    Args:
        num_nodes: Number of graph nodes N.
        edges: Pairs of node indices in ``[0, N)``.

    Returns:
        float32 array of shape (N, N).
    """
    adj = np.zeros((num_nodes, num_nodes), dtype=np.float64)
    for i, j in edges:
        if i != j:
            adj[i, j] = adj[j, i] = 1.0
    degree = adj.sum(axis=1, keepdims=True)
    adj = np.divide(adj, degree, out=np.zeros_like(adj), where=degree > 0)
    np.fill_diagonal(adj, 1.0)
    return adj.astype(np.float32)


def _as_poses(poses: np.ndarray, name: str, num_joints: int) -> np.ndarray:
    """Checks that ``poses`` is a non-empty numeric (..., J, C) array."""
    arr = np.asarray(poses)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(f"{name} must have rank >= 2 (..., J, C), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if arr.shape[-2] != num_joints:
        raise ValueError(
            f"{name} must have J={num_joints} joints in dim -2, got shape {arr.shape}"
        )
    return arr


@dataclass(frozen=True)
class Skeleton:
    """Immutable kinematic tree with left/right joint pairs.

    Attributes:
        name: Identifier of the skeleton.
        parents: Parent index of every joint, ``-1`` for the single root; length J.
        joint_names: Name of every joint; length J.
        left: Indices of left-side joints, paired element-wise with ``right``.
        right: Indices of right-side joints, same length as ``left``.

    Raises:
        ValueError: If the tree has not exactly one root, a parent is out of
            range or the parent links form a cycle, the name count differs from
            J, or ``left``/``right`` differ in length, overlap, repeat or are out
            of range.
    """

    name: str
    parents: tuple[int, ...]
    joint_names: tuple[str, ...]
    left: tuple[int, ...] = ()
    right: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        parents = _int_tuple(self.parents, "parents")
        left = _int_tuple(self.left, "left")
        right = _int_tuple(self.right, "right")
        names = tuple(self.joint_names)
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "left", left)
        object.__setattr__(self, "right", right)
        object.__setattr__(self, "joint_names", names)

        num = len(parents)
        if num == 0:
            raise ValueError("parents must not be empty")
        roots = [j for j, p in enumerate(parents) if p == -1]
        if len(roots) != 1:
            raise ValueError(f"parents must contain exactly one root (-1), found {len(roots)}")
        for j, p in enumerate(parents):
            if p != -1 and not 0 <= p < num:
                raise ValueError(f"parents[{j}] = {p} is out of range [0, {num})")
            if p == j:
                raise ValueError(f"parents[{j}] = {p}: a joint cannot be its own parent")
        for j in range(num):
            node, steps = j, 0
            while parents[node] != -1:
                node, steps = parents[node], steps + 1
                if steps > num:
                    raise ValueError(f"parents contain a cycle through joint {j}")
        if len(names) != num:
            raise ValueError(f"joint_names has {len(names)} names but parents has {num} joints")
        if len(set(names)) != len(names):
            raise ValueError("joint_names must be unique")
        if len(left) != len(right):
            raise ValueError(f"left and right must have the same length, got {len(left)} and {len(right)}")
        for field, idx in (("left", left), ("right", right)):
            bad = [i for i in idx if not 0 <= i < num]
            if bad:
                raise ValueError(f"{field} has indices out of range [0, {num}): {bad}")
            if len(set(idx)) != len(idx):
                raise ValueError(f"{field} contains duplicate indices")
        overlap = sorted(set(left) & set(right))
        if overlap:
            raise ValueError(f"left and right must be disjoint, both contain {overlap}")

    @property
    def num_joints(self) -> int:
        """Number of joints J."""
        return len(self.parents)

    @property
    def root(self) -> int:
        """Index of the root joint."""
        return self.parents.index(-1)

    @property
    def edges(self) -> list[tuple[int, int]]:
        """(joint, parent) pairs for every non-root joint, in joint order; length J-1."""
        return [(j, p) for j, p in enumerate(self.parents) if p != -1]

    def children(self, joint: int) -> tuple[int, ...]:
        """Returns the indices of the direct children of ``joint``.

        Raises:
            ValueError: If ``joint`` is not in ``[0, J)``.
        """
        if not 0 <= joint < self.num_joints:
            raise ValueError(f"joint must be in [0, {self.num_joints}), got {joint}")
        return tuple(j for j, p in enumerate(self.parents) if p == joint)

    @property
    def flip_indices(self) -> np.ndarray:
        """Joint permutation of shape (J,) swapping left and right joints (an involution)."""
        perm = np.arange(self.num_joints)
        perm[list(self.left)] = self.right
        perm[list(self.right)] = self.left
        return perm

    def flip(self, poses: np.ndarray, axis: int = 0) -> np.ndarray:
        """Mirrors poses: negates one coordinate and swaps left/right joints.

        Args:
            poses: Array of shape (..., J, C).
            axis: Coordinate (index into C) to negate; x by default.

        Returns:
            New array of shape (..., J, C). NaN entries propagate unchanged.

        Raises:
            ValueError: If ``poses`` is not a non-empty (..., J, C) array with
                this skeleton's J, or ``axis`` is not a valid coordinate index.
        """
        arr = _as_poses(poses, "poses", self.num_joints)
        num_coords = arr.shape[-1]
        if not -num_coords <= axis < num_coords:
            raise ValueError(f"axis must be in [-{num_coords}, {num_coords}), got {axis}")
        out = arr[..., self.flip_indices, :]  # fancy indexing copies
        out[..., axis] = -out[..., axis]
        return out

    def bone_lengths(self, poses: np.ndarray) -> np.ndarray:
        """Euclidean length of every bone.

        Args:
            poses: Array of shape (..., J, C).

        Returns:
            float array of shape (..., J-1): ``|p_j - p_parent(j)|`` for each
            non-root joint j in joint order (same order as ``edges``).

        Raises:
            ValueError: If ``poses`` is not a non-empty (..., J, C) array with
                this skeleton's J.
        """
        arr = _as_poses(poses, "poses", self.num_joints).astype(np.float64, copy=False)
        joints, parents = zip(*self.edges, strict=True) if self.num_joints > 1 else ((), ())
        diff = arr[..., list(joints), :] - arr[..., list(parents), :]
        return np.linalg.norm(diff, axis=-1)

    def spatial_adjacency(self) -> np.ndarray:
        """Degree-normalised bone adjacency with unit diagonal.

        Returns:
            float32 array of shape (J, J); each row has 1 on the diagonal and
            off-diagonal entries ``1 / degree`` on its neighbours.
        """
        return _normalised_adjacency(self.num_joints, self.edges)


def temporal_adjacency(num_frames: int) -> np.ndarray:
    """Degree-normalised adjacency of a chain of frames (t linked to t-1).

    Args:
        num_frames: Number of frames T >= 1.

    Returns:
        float32 array of shape (T, T): tridiagonal with unit diagonal, 0.5 on
        interior off-diagonals and 1.0 for the single neighbour of the end frames.

    Raises:
        ValueError: If ``num_frames`` is not an integer >= 1.
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)):
        raise ValueError(f"num_frames must be an integer, got {type(num_frames).__name__}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    n = int(num_frames)
    return _normalised_adjacency(n, [(t, t - 1) for t in range(1, n)])


H36M_17 = Skeleton(
    name="h36m17",
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    joint_names=(
        "pelvis", "right_hip", "right_knee", "right_ankle",
        "left_hip", "left_knee", "left_ankle", "spine", "thorax",
        "neck_nose", "head_top", "left_shoulder", "left_elbow", "left_wrist",
        "right_shoulder", "right_elbow", "right_wrist",
    ),
    left=(4, 5, 6, 11, 12, 13),
    right=(1, 2, 3, 14, 15, 16),
)
"""Human3.6M 17-joint skeleton."""

H36M_18 = Skeleton(
    name="h36m18",
    parents=H36M_17.parents + (8,),
    joint_names=H36M_17.joint_names + ("thorax_mid",),
    left=H36M_17.left,
    right=H36M_17.right,
)
"""H36M_17 plus joint 17 "thorax_mid" (mean of the shoulders 11 and 14), child of the thorax."""

_SKELETONS: dict[str, Skeleton] = {s.name: s for s in (H36M_17, H36M_18)}


def add_shoulder_midpoint(poses_17: np.ndarray) -> np.ndarray:
    """Appends the shoulder midpoint as joint 17 (H36M_17 -> H36M_18 layout).

    Args:
        poses_17: Array of shape (..., 17, C).

    Returns:
        float array of shape (..., 18, C) whose joint 17 is the mean of joints 11 and 14.

    Raises:
        ValueError: If ``poses_17`` is not a non-empty (..., 17, C) array.
    """
    arr = _as_poses(poses_17, "poses_17", H36M_17.num_joints)
    mid = 0.5 * (arr[..., 11:12, :] + arr[..., 14:15, :])
    return np.concatenate([arr, mid], axis=-2)


def get_skeleton(name: str) -> Skeleton:
    """Returns a predefined skeleton by name ("h36m17" or "h36m18", case-insensitive).

    Raises:
        ValueError: If ``name`` is not a known skeleton name.
    """
    key = name.lower() if isinstance(name, str) else None
    if key not in _SKELETONS:
        raise ValueError(f"unknown skeleton name {name!r}; valid names: {sorted(_SKELETONS)}")
    return _SKELETONS[key]
