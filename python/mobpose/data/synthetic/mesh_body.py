"""Mesh bodies for the synthetic engine (issue 18): anny's skinned MakeHuman mesh (13,718 vertices, 27,420
triangles) with random body shapes, posed on a CMU frame by :class:`mobpose.data.mesh_rig.RigRetargeter`.

A mesh body replaces the union of spheres of :mod:`.body`; the rest of the engine (cameras, light,
appearance, backgrounds, occluders, augmentations) is shared. What differs:

- **Shape.** Each body is one of ``count`` fixed phenotypes (gender, adult age, muscle, weight,
  height, proportions), drawn once from the body's id so an item stays a pure function of its seed.
- **Joints are anatomical points of the body** (:meth:`MeshBodies.rig`): pelvis = the middle of the hip
  joints, spine = the ``Spine`` bone's head (mid-back), thorax = the ``Neck`` bone's head (the base of the
  neck, where LSP's "neck" is), nose = the tip of the mesh's nose, head top = the ``Head`` bone's tail; limb
  joints are the bone heads. The position fit of :meth:`RigRetargeter.calibrate` is not used here: the CMU
  file's thorax sits 233 mm above its pelvis (464 mm on the rig at rest), so the fit reaches it only by
  turning the rig's chest bone upside down.
- **Labels are the mesh's own joints.** The mocap frame is first given the body's bone lengths and the
  rig's trunk geometry (:meth:`MeshBodies.retarget_target`): every Human3.6M bone keeps its mocap direction
  in the body's hip/spine frame, turned, for the bones of the trunk (hips, spine, thorax, neck, head,
  shoulders), by the fixed rotation that takes the mocap's mean direction to the rig's rest direction; it
  takes the body's rest length. The rig is then solved onto that frame by inverse kinematics; the labels
  are the rig's 17 joints. The image and its labels
  always agree, and the body's proportions, not the mocap subject's, set the bone lengths (the sphere
  bodies' random bone scale plays that part there).
- **Clothing and hair are regions of the mesh**: a vertex's material comes from its dominant skinning bone,
  its position along that bone (sleeve and trouser length) and, on the head and torso, its place in the
  rest pose (hairline, the front of the top). :class:`.body.BodyShape` chooses the cut, as for spheres.

anny comes with the train extra (``pip install 'mobpose[train]'``).
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass

import numpy as np

from ... import _core
from ...skeleton import H36M_17
from ..mesh_rig import RigRetargeter, _frame, _swing, load_body
from .body import BOTTOM, EYES, FRONT, HAIR, SHOES, SKIN, TOP, BodyShape

__all__ = ["MeshBodies", "MeshPose", "evaluate_engine", "mesh_bodies", "vertex_normals"]

logger = logging.getLogger(__name__)

_PHENOTYPE_RANGES = {  # anny phenotype values (0..1); age 0.5 is its default adult; 1.31-2.04 m tall at rest
    "gender": (0.0, 1.0), "age": (0.5, 0.8), "muscle": (0.0, 1.0), "weight": (0.0, 1.0),
    "height": (0.15, 0.65), "proportions": (0.0, 1.0),
}
_TRUNK_BONES = (1, 4, 7, 8, 9, 10, 11, 14)
"""Human3.6M bones (by child joint) between points of the trunk, which the mocap and the rig define differently:
their directions are corrected by a fixed rotation; the limb bones (knees, ankles, elbows, wrists) are not."""


@dataclass(frozen=True)
class MeshPose:
    """A posed mesh body in world mm: joints (17, 3), vertices (V, 3), vertex normals (V, 3) and the material
    of each face (F,) (indices into :data:`.body.MATERIALS`); ``faces`` (F, 3) int32 are shared by all bodies."""

    joints: np.ndarray
    vertices: np.ndarray
    normals: np.ndarray
    faces: np.ndarray
    face_materials: np.ndarray


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit vertex normals: the area-weighted sum of the adjacent faces' normals (numpy; the engine uses
    the same sum in the C++ core, ``mobpose._core.vertex_normals``)."""
    v = np.asarray(vertices, np.float64)
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    out = np.empty_like(v)
    idx = faces.ravel()
    for c in range(3):
        out[:, c] = np.bincount(idx, weights=np.repeat(fn[:, c], 3), minlength=len(v))
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class MeshBodies:
    """A fixed family of ``count`` random anny bodies, posed on demand.

    Args:
        calibration: (T, 17, 3) CMU frames in mm (world, Z up) of an upright activity, on which the mean
            directions of the trunk bones are measured (:attr:`fix`; see :func:`mesh_bodies`).
        count: how many phenotypes there are (body ids 0..count-1).
        seed: the family's seed (body k's phenotype is drawn from ``default_rng([seed, k])``).
        body: an ``anny.Anny`` model on the ``cmu_mb`` rig, or None to load one.
    """

    def __init__(self, calibration: np.ndarray, count: int = 256, seed: int = 0, body=None) -> None:
        import torch

        cal = np.asarray(calibration, np.float64)
        if cal.ndim != 3 or cal.shape[1:] != (17, 3) or len(cal) < 10 or not np.isfinite(cal).all():
            raise ValueError(f"calibration must be finite (T >= 10, 17, 3) mm, got {cal.shape}")
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        self.count, self.seed = int(count), int(seed)
        self.body = load_body() if body is None else body
        self.faces = self.body.faces.numpy().astype(np.int32)
        self._lock = threading.Lock()
        self._rigs: dict[int, RigRetargeter] = {}
        self._materials: dict[tuple, np.ndarray] = {}
        # per-vertex region facts from the default body at rest
        weights = self.body.vertex_bone_weights.numpy()
        bones = self.body.vertex_bone_indices.numpy()
        self.vertex_bone = bones[np.arange(len(bones)), weights.argmax(1)]
        with torch.no_grad():
            rest = self.body(return_bone_ends=True)
        verts = rest["rest_vertices"][0].double().numpy()
        heads = rest["rest_bone_heads"][0].double().numpy()
        tails = rest["rest_bone_tails"][0].double().numpy()
        axis = tails[self.vertex_bone] - heads[self.vertex_bone]
        self.along = ((verts - heads[self.vertex_bone]) * axis).sum(1) / np.maximum((axis * axis).sum(1), 1e-12)
        self.rest_vertices = verts
        self._regions = self._region_masks()
        head = self._regions["head"]
        lo, hi = np.quantile(verts[head, 2], [0.3, 0.6])
        band = head & (verts[:, 2] > lo) & (verts[:, 2] < hi)
        self.nose_vertex = int(np.flatnonzero(band)[np.argmin(verts[band, 1])])  # the face looks to -Y
        self.default = self._anatomical(RigRetargeter(self.body), verts[self.nose_vertex])
        self.fix = self._direction_fix(cal / 1000.0, self.default.rest_joints())

    @staticmethod
    def _anatomical(rig: RigRetargeter, nose: np.ndarray) -> RigRetargeter:
        """Puts the rig's pelvis, spine, thorax and nose on the anatomical points (module docstring)."""
        h, ix = rig.rest_heads, rig.index
        rig.offsets[0] = 0.5 * (h[ix["RightUpLeg"]] + h[ix["LeftUpLeg"]]) - h[ix["Hips"]]
        rig.offsets[7] = h[ix["Spine"]] - h[ix["LowerBack"]]
        rig.offsets[8] = h[ix["Neck"]] - h[ix["Spine1"]]
        rig.offsets[9] = nose - h[ix["Neck"]]
        return rig

    @staticmethod
    def _direction_fix(cal: np.ndarray, rest: np.ndarray) -> dict[int, np.ndarray]:
        """{joint: (3, 3)} for each trunk bone, in the hip/spine frame: the rotation taking the mocap's mean
        direction of the bone over `cal` (T, 17, 3) to the rig's rest direction (`rest` (17, 3))."""
        ft = _frame(cal[:, 4], cal[:, 1], cal[:, 0], cal[:, 7])
        fr = _frame(rest[None, 4], rest[None, 1], rest[None, 0], rest[None, 7])[0]
        fix = {}
        for j in _TRUNK_BONES:
            par = H36M_17.parents[j]
            d = np.einsum("tba,tb->ta", ft, cal[:, j] - cal[:, par])
            mean = (d / np.linalg.norm(d, axis=1, keepdims=True)).mean(0)
            fix[j] = _swing(mean[None], (fr.T @ (rest[j] - rest[par]))[None])[0]
        return fix

    def phenotype(self, body_id: int) -> dict[str, float]:
        """The anny phenotype of body `body_id`."""
        if not 0 <= body_id < self.count:
            raise ValueError(f"body_id must be in 0..{self.count - 1}, got {body_id}")
        rng = np.random.default_rng([self.seed, int(body_id)])
        return {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in _PHENOTYPE_RANGES.items()}

    def rig(self, body_id: int) -> RigRetargeter:
        """The retargeter of body `body_id` with its joints on the anatomical points, built on first use (about
        40 ms) and kept."""
        with self._lock:
            rig = self._rigs.get(body_id)
        if rig is None:
            import torch

            phenotype = self.phenotype(body_id)
            rig = RigRetargeter(self.body, phenotype)
            with torch.no_grad():  # the body's rest model, kept: posing then only skins (anny's forward, split)
                _, pheno, local, facial = self.body.get_tensor_inputs(None, rig._phenotype_kwargs(1), None, None)
                rig.rest_model = self.body.get_rest_model(
                    self.body._get_phenotype_blendshape_coefficients(pheno, local, facial))
            rest = rig.rest_model["rest_vertices"][0].double().numpy()
            rig = self._anatomical(rig, rest[self.nose_vertex])
            with self._lock:
                self._rigs[body_id] = rig
        return rig

    def _region_masks(self) -> dict[str, np.ndarray]:
        """Boolean vertex masks of the body's parts, from the default body's rest pose (Z up, face to -Y)."""
        name = {i: b for i, b in enumerate(self.body.bone_labels)}
        bone = np.array([name[int(b)] for b in self.vertex_bone])
        v = self.rest_vertices

        def part(*names: str) -> np.ndarray:
            return np.isin(bone, names)

        head = part("Head")
        hv = v[head]
        lo, hi = hv.min(0), hv.max(0)
        rel = np.zeros_like(v)
        rel[head] = (hv - lo) / np.maximum(hi - lo, 1e-9)  # x across, y 0 = face front .. 1 = back, z up
        torso = part("LowerBack", "Spine", "Spine1", "LeftShoulder", "RightShoulder")
        tv = v[torso]
        front = np.zeros(len(v), bool)
        front[torso] = tv[:, 1] < np.median(tv[:, 1])
        centre_x = np.abs(v[:, 0] - np.median(tv[:, 0]))
        chest = np.zeros(len(v), bool)
        chest[torso] = tv[:, 2] > np.quantile(tv[:, 2], 0.45)
        neck = part("Neck", "Neck1")
        back_neck = neck & (v[:, 1] > np.median(v[neck, 1]))
        eyes = head & (rel[:, 1] < 0.25) & (rel[:, 2] > 0.5) & (rel[:, 2] < 0.6) & (np.abs(rel[:, 0] - 0.5) > 0.06) \
            & (np.abs(rel[:, 0] - 0.5) < 0.2)
        return {
            "head": head, "eyes": eyes, "neck": neck, "back_neck": back_neck, "torso": torso,
            "front": front, "chest": chest, "centre": centre_x < 0.05, "centre_wide": centre_x < 0.09,
            "hair_short": head & ((rel[:, 2] > 0.78) | ((rel[:, 2] > 0.5) & (rel[:, 1] > 0.55))),
            "hair_long": head & ((rel[:, 2] > 0.72) | ((rel[:, 2] > 0.2) & (rel[:, 1] > 0.5))),
            "pelvis": part("Hips", "LHipJoint", "RHipJoint"),
            "upper_arm": part("LeftArm", "RightArm"), "forearm": part("LeftForeArm", "RightForeArm"),
            "thigh": part("LeftUpLeg", "RightUpLeg"), "shin": part("LeftLeg", "RightLeg"),
            "feet": part("LeftFoot", "LeftToeBase", "RightFoot", "RightToeBase"),
        }

    def face_materials(self, shape: BodyShape) -> np.ndarray:
        """(F,) int32 material of every face for a clothing cut (sleeves, legs, hair, front; as for spheres).
        Kept per cut (read-only)."""
        key = (int(shape.sleeves), int(shape.legs), int(shape.hair), bool(shape.skirt), int(shape.front))
        got = self._materials.get(key)
        if got is None:
            got = self._face_materials(shape)
            got.setflags(write=False)
            self._materials[key] = got
        return got

    def _face_materials(self, shape: BodyShape) -> np.ndarray:
        r = self._regions
        mat = np.full(len(self.vertex_bone), SKIN, np.int32)
        mat[r["torso"] | r["pelvis"]] = TOP
        mat[r["pelvis"] | r["thigh"]] = BOTTOM
        if shape.legs == 1 or shape.skirt:
            mat[r["shin"]] = BOTTOM
        else:  # shorts end above the knee
            mat[r["thigh"] & (self.along > 0.7)] = SKIN
        mat[r["feet"]] = SHOES
        if shape.sleeves >= 1:
            mat[r["upper_arm"] & ((self.along < 0.5) | (shape.sleeves == 2))] = TOP
        if shape.sleeves == 2:
            mat[r["forearm"] & (self.along < 0.92)] = TOP
        front = {0: np.zeros_like(r["front"]), 1: r["front"] & r["chest"] & r["centre_wide"],
                 2: r["front"] & r["centre"], 3: r["front"]}[int(shape.front)]
        mat[front & (mat == TOP)] = FRONT
        if shape.hair >= 1:
            mat[r["hair_short"] if shape.hair == 1 else r["hair_long"] | r["back_neck"]] = HAIR
        mat[r["eyes"]] = EYES
        # a face takes the material most of its corners have (its first corner's on a three-way tie)
        fm = mat[self.faces]
        out = fm[:, 0].copy()
        agree = fm[:, 1] == fm[:, 2]
        out[agree] = fm[agree, 1]
        return out

    def retarget_target(self, pose: np.ndarray, rest: np.ndarray) -> np.ndarray:
        """The mocap `pose` (17, 3) given a body's bone lengths and the rig's trunk geometry (`rest` (17, 3),
        its joints at rest): built out from the pelvis (which stays), every bone keeps its mocap direction
        (trunk bones turned by :attr:`fix` in the pose's hip/spine frame) and takes its length in `rest`."""
        p = np.asarray(pose, np.float64)
        frame = _frame(p[None, 4], p[None, 1], p[None, 0], p[None, 7])[0]
        out = np.empty_like(p)
        for j, par in enumerate(H36M_17.parents):  # parents come before children
            if par < 0:
                out[j] = p[j]
                continue
            d = p[j] - p[par]
            if j in self.fix:
                d = frame @ (self.fix[j] @ (frame.T @ d))
            out[j] = out[par] + d / max(float(np.linalg.norm(d)), 1e-9) * float(np.linalg.norm(rest[j] - rest[par]))
        return out

    def pose(self, body_id: int, pose_world: np.ndarray, shape: BodyShape) -> MeshPose:
        """Body `body_id` posed on `pose_world` (17, 3) world mm, dressed in `shape`'s cut."""
        import torch

        p = np.asarray(pose_world, np.float64)
        if p.shape != (17, 3) or not np.isfinite(p).all():
            raise ValueError(f"pose_world must be finite with shape (17, 3), got {p.shape}")
        rig = self.rig(int(body_id))
        g, heads = rig.solve(self.retarget_target(p, rig.rest_joints() * 1000.0)[None] / 1000.0)
        with torch.no_grad():  # = rig.body(pose_parameters=..., phenotype_kwargs=...) on the kept rest model
            rest = rig.rest_model
            transforms, _ = self.body.get_bone_transforms(rig.pose_parameters(g, heads).to(rest["rest_bone_poses"]),
                                                          rest["rest_bone_poses"], pose_parameterization="world-orient")
            verts = self.body.get_skinned_vertices(rest_vertices=rest["rest_vertices"], bone_transforms=transforms)
        verts = verts[0].double().numpy() * 1000.0
        normals = _core.vertex_normals(verts.astype(np.float32), self.faces).astype(np.float64)
        return MeshPose(joints=rig.joints(g, heads)[0] * 1000.0, vertices=verts, normals=normals, faces=self.faces,
                        face_materials=self.face_materials(shape))


@functools.lru_cache(maxsize=1)
def mesh_bodies(count: int = 256, seed: int = 0) -> MeshBodies:
    """The process's mesh-body family, its trunk directions measured on the first 300 frames (30 fps) of the
    first CMU training walk. Loads anny once (the very first load on a machine builds warp's kernel cache:
    about a minute)."""
    from ..cmu import load_cmu

    clip = load_cmu(split="train", actions=["walking"])[0]
    logger.info("loading the mesh bodies (anny, cmu_mb rig; calibrated on %s)", clip.name)
    return MeshBodies(clip.positions[::4][:300], count=count, seed=seed, body=load_body())



def evaluate_engine(split: str = "test", actions=None, stride: int = 4, bodies: int = 8,
                    family: MeshBodies | None = None) -> dict:
    """How faithfully the engine's mesh bodies take the CMU poses of `split` (every `stride`-th frame), over
    the first `bodies` body shapes (each clip on one body, in turn):

    - ``target_mm``: per joint, the mean distance (mm) from the posed rig's joint to the retargeted frame
      (:meth:`MeshBodies.retarget_target`: the mocap pose with the body's bone lengths), what inverse
      kinematics leaves;
    - ``direction_deg``: per bone (by child joint), the mean angle between the posed body's bone and the
      mocap's, after the fixed trunk corrections (:attr:`MeshBodies.fix`; the limb bones have none), i.e.
      how far the body's pose is from the mocap's beyond the two skeletons' different definitions;
    - ``fix_deg``: the size of each trunk correction.
    """
    from ..cmu import load_cmu

    if int(stride) < 1 or int(bodies) < 1:
        raise ValueError(f"stride and bodies must be >= 1, got {stride}, {bodies}")
    family = family or mesh_bodies()
    clips = load_cmu(split=split, actions=actions)
    pos_err, dir_err, rows = [], [], []
    for ci, clip in enumerate(clips):
        body = ci % int(bodies)
        rig = family.rig(body)
        rest = rig.rest_joints() * 1000.0
        frames = clip.positions[:: int(stride)].astype(np.float64)
        targets = np.stack([family.retarget_target(p, rest) for p in frames])
        g, heads = rig.solve(targets / 1000.0)
        joints = rig.joints(g, heads) * 1000.0
        e = np.linalg.norm(joints - targets, axis=-1)
        # the retargeted frame's bones have the mocap's directions, trunk bones turned by the fix
        parents = np.array(H36M_17.parents[1:])
        d, b = targets[:, 1:] - targets[:, parents], joints[:, 1:] - joints[:, parents]
        c = (d * b).sum(-1) / np.maximum(np.linalg.norm(d, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
        angles = np.zeros((len(frames), 17))
        angles[:, 1:] = np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))
        pos_err.append(e)
        dir_err.append(angles)
        rows.append({"clip": f"{clip.split}/{clip.action}/{clip.name}", "body": body, "frames": len(frames),
                     "target_mm": round(float(e.mean()), 1), "direction_deg": round(float(angles[:, 1:].mean()), 2)})
    pe, de = np.concatenate(pos_err), np.concatenate(dir_err)
    fix_deg = {int(j): round(float(np.degrees(np.arccos(np.clip((np.trace(f) - 1) / 2, -1.0, 1.0)))), 1)
               for j, f in family.fix.items()}
    return {"clips": rows, "frames": int(len(pe)), "bodies": int(min(bodies, len(clips))),
            "target_mm": round(float(pe.mean()), 1), "target_mm_per_joint": np.round(pe.mean(0), 1).tolist(),
            "direction_deg": round(float(de[:, 1:].mean()), 2),
            "direction_deg_per_bone": np.round(de.mean(0), 2).tolist(), "fix_deg": fix_deg}
