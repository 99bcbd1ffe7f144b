"""Loaders for Human3.6M in the VideoPose3D file format (the data itself is never shipped).

Files (made by VideoPose3D's ``prepare_data_h36m.py`` from the licensed dataset):

- ``data_3d_h36m.npz``: key ``positions_3d`` = {subject: {action: (frames, 32, 3) float32}}, world
  metres, Z up, 50 fps. :func:`load_h36m_3d` keeps 17 joints (drops 4, 5, 9, 10, 11, 16, 20, 21,
  22, 23, 24, 28, 29, 30, 31, giving the H36M-17 order of :data:`mobpose.skeleton.H36M_17`) and
  converts to millimetres: the Human3.6M world already is the mobpose world (mm, Z up).
- ``data_2d_h36m_*.npz``: ``positions_2d`` = {subject: {action: [4 arrays (frames, 17, 2) pixels,
  one per camera]}} and ``metadata`` = {layout_name, num_joints, keypoints_symmetry}.

Both store pickled Python dicts in 0-d object arrays, so they can only be read with
``np.load(..., allow_pickle=True)``. Unpickling runs code chosen by whoever wrote the file: these
loaders enable it only for the file you pass, which must be your own trusted conversion; their
structure is validated after loading.

Cameras: the calibration constants are public facts of the dataset but are not embedded here;
pass them (e.g. VideoPose3D's ``h36m_cameras_intrinsic_params`` / ``h36m_cameras_extrinsic_params``)
to :func:`h36m_cameras`.
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ..camera import quaternion_to_matrix
from .motion import MotionSequence
from .synthetic_cameras import Camera, PoseViews, camera_views

__all__ = [
    "H36M_DROPPED_JOINTS",
    "H36M_FPS",
    "H36M_KEPT_JOINTS",
    "H36M_SUBJECTS",
    "H36M_TEST_SUBJECTS",
    "H36M_TRAIN_SUBJECTS",
    "h36m_camera",
    "h36m_cameras",
    "h36m_sequences",
    "h36m_views",
    "load_h36m_2d",
    "load_h36m_3d",
]

logger = logging.getLogger(__name__)

H36M_TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST_SUBJECTS = ("S9", "S11")
H36M_SUBJECTS = H36M_TRAIN_SUBJECTS + H36M_TEST_SUBJECTS
H36M_FPS = 50.0
H36M_DROPPED_JOINTS = (4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31)
H36M_KEPT_JOINTS = tuple(j for j in range(32) if j not in H36M_DROPPED_JOINTS)

_INTRINSIC_KEYS = {  # canonical (VideoPose3D) name -> accepted aliases
    "center": ("center", "centre"),
    "focal_length": ("focal_length", "focal"),
    "radial_distortion": ("radial_distortion", "radial", "k"),
    "tangential_distortion": ("tangential_distortion", "tangential", "p"),
    "res_w": ("res_w", "width"),
    "res_h": ("res_h", "height"),
}


def _load_pickled(path: str | os.PathLike[str], key: str, arg: str = "path"):
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise FileNotFoundError(f"{arg}={p!r} does not exist or is not a file")
    # allow_pickle is required by the VideoPose3D format (a dict in a 0-d object array); only
    # ever used on this user-provided file.
    try:
        npz = np.load(p, allow_pickle=True)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise ValueError(f"{arg}={p!r} cannot be read as an npz file: {exc}") from exc
    if not hasattr(npz, "files"):
        raise ValueError(f"{arg}={p!r} holds a single array, not an npz archive; not a VideoPose3D file")
    with npz:
        if key not in npz.files:
            raise ValueError(f"{p}: missing key {key!r} (found {sorted(npz.files)}); not a VideoPose3D file")
        try:
            items = {k: npz[k] for k in npz.files}
        except (OSError, EOFError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
            raise ValueError(f"{arg}={p!r} cannot be read: {exc}") from exc
    obj = items[key]
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.ndim == 0:
        obj = obj.item()
    if not isinstance(obj, Mapping):
        raise ValueError(f"{p}: {key!r} must be a dict {{subject: {{action: ...}}}}, got {type(obj).__name__}")
    return obj, items


def _check_poses(arr, where: str, joints: Iterable[int], coords: int) -> np.ndarray:
    a = np.asarray(arr)
    joints = tuple(joints)
    if a.ndim != 3 or a.shape[1] not in joints or a.shape[2] != coords or a.shape[0] < 1:
        exp = " or ".join(f"(frames, {j}, {coords})" for j in joints)
        raise ValueError(f"{where} must have shape {exp}, got {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{where} must be numeric, got dtype {a.dtype}")
    if not np.isfinite(a).all():
        raise ValueError(f"{where} contains NaN or Inf")
    return a


def load_h36m_3d(
    path: str | os.PathLike[str],
    subjects: Iterable[str] | None = None,
    scale: float = 1000.0,
) -> dict[str, dict[str, np.ndarray]]:
    """Reads ``positions_3d`` of a VideoPose3D ``data_3d_h36m.npz``.

    Args:
        path: The npz file (trusted: it is unpickled, see the module docstring).
        subjects: Subjects to keep (e.g. :data:`H36M_TEST_SUBJECTS`), None for all.
        scale: Factor to millimetres (the file is in metres).

    Returns:
        {subject: {action: (frames, 17, 3) float32}} world positions in mm, Z up, 50 fps. Arrays that
        already have 17 joints are kept as they are (only scaled).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the key is missing, the structure is not a dict of dicts, or an array is not
            (frames, 32, 3) / (frames, 17, 3) with finite values, or a requested subject is absent.
    """
    data, _ = _load_pickled(path, "positions_3d")
    wanted = None if subjects is None else set(subjects)
    if wanted is not None and (missing := wanted - set(data)):
        raise ValueError(f"{path}: subjects {sorted(missing)} not in the file (it has {sorted(data)})")
    out: dict[str, dict[str, np.ndarray]] = {}
    for subject, actions in data.items():
        if wanted is not None and subject not in wanted:
            continue
        if not isinstance(actions, Mapping):
            raise ValueError(f"{path}: positions_3d[{subject!r}] must be a dict {{action: array}}")
        out[subject] = {}
        for action, arr in actions.items():
            a = _check_poses(arr, f"{path}: positions_3d[{subject!r}][{action!r}]", (32, 17), 3)
            if a.shape[1] == 32:
                a = a[:, H36M_KEPT_JOINTS]
            out[subject][action] = (a.astype(np.float64) * scale).astype(np.float32)
    logger.info("loaded Human3.6M 3D: %d subjects, %d clips from %s", len(out), sum(len(v) for v in out.values()), path)
    return out


def load_h36m_2d(
    path: str | os.PathLike[str],
) -> tuple[dict[str, dict[str, list[np.ndarray]]], dict]:
    """Reads ``positions_2d`` and ``metadata`` of a VideoPose3D 2D file.

    Args:
        path: e.g. ``data_2d_h36m_cpn_ft_h36m_dbb.npz`` or ``data_2d_h36m_gt.npz`` (trusted: unpickled).

    Returns:
        ``(positions_2d, metadata)``: {subject: {action: [per camera (frames, J, 2) float32 pixels]}}
        and the metadata dict (``num_joints``, ``keypoints_symmetry``, ...).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If a key is missing, the structure is wrong, an array is not (frames, J, 2) with
            J = metadata ``num_joints`` (17 if absent), or ``keypoints_symmetry`` is malformed.
    """
    data, items = _load_pickled(path, "positions_2d")
    if "metadata" not in items:
        raise ValueError(f"{path}: missing key 'metadata' (found {sorted(items)}); not a VideoPose3D 2D file")
    meta = items["metadata"]
    if isinstance(meta, np.ndarray) and meta.dtype == object and meta.ndim == 0:
        meta = meta.item()
    if not isinstance(meta, Mapping):
        raise ValueError(f"{path}: 'metadata' must be a dict, got {type(meta).__name__}")
    meta = dict(meta)
    num_joints = int(meta.get("num_joints", 17))
    sym = meta.get("keypoints_symmetry")
    if sym is not None:
        if len(sym) != 2 or len(sym[0]) != len(sym[1]) or any(not 0 <= int(j) < num_joints for g in sym for j in g):
            raise ValueError(
                f"{path}: metadata['keypoints_symmetry'] must be two equal-length lists of joints "
                f"in [0, {num_joints}), got {sym!r}"
            )
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject, actions in data.items():
        if not isinstance(actions, Mapping):
            raise ValueError(f"{path}: positions_2d[{subject!r}] must be a dict {{action: [arrays]}}")
        out[subject] = {}
        for action, cams in actions.items():
            where = f"{path}: positions_2d[{subject!r}][{action!r}]"
            if isinstance(cams, np.ndarray) and cams.dtype != object:
                raise ValueError(f"{where} must be a list of per-camera arrays, got one array {cams.shape}")
            if not isinstance(cams, (list, tuple, np.ndarray)) or len(cams) == 0:
                raise ValueError(f"{where} must be a non-empty list of per-camera arrays")
            out[subject][action] = [
                _check_poses(c, f"{where}[{i}]", (num_joints,), 2).astype(np.float32) for i, c in enumerate(cams)
            ]
    logger.info("loaded Human3.6M 2D: %d subjects from %s", len(out), path)
    return out, meta


def h36m_sequences(positions_3d: Mapping[str, Mapping[str, np.ndarray]], fps: float = H36M_FPS) -> list[MotionSequence]:
    """MotionSequences from :func:`load_h36m_3d` output (split from the subject: S1-S8 train, S9/S11 test).

    Names are ``"<subject>/<action>"``; subjects outside the standard split get split ``""``.
    """
    seqs = []
    for subject in sorted(positions_3d):
        split = "train" if subject in H36M_TRAIN_SUBJECTS else "test" if subject in H36M_TEST_SUBJECTS else ""
        for action in sorted(positions_3d[subject]):
            seqs.append(
                MotionSequence(
                    f"{subject}/{action}",
                    split,
                    action.split(" ")[0],
                    fps,
                    positions_3d[subject][action],
                    source="h36m",
                )
            )
    return seqs


def _field(d: Mapping, canonical: str, where: str):
    for alias in _INTRINSIC_KEYS.get(canonical, (canonical,)):
        if alias in d:
            return d[alias]
    raise ValueError(f"{where}: missing {canonical!r} (accepted names {_INTRINSIC_KEYS.get(canonical, (canonical,))})")


def _vec(v, n: int, where: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.shape != (n,) or not np.isfinite(a).all():
        raise ValueError(f"{where} must be {n} finite numbers, got {v!r}")
    return a


def h36m_camera(intrinsic: Mapping, extrinsic: Mapping, name: str = "") -> Camera:
    """One Camera from Human3.6M-style parameters.

    Args:
        intrinsic: ``center`` (2,) px, ``focal_length`` (2,) px, ``radial_distortion`` (3,),
            ``tangential_distortion`` (2,), ``res_w``, ``res_h`` (aliases: centre, focal, radial/k,
            tangential/p, width, height).
        extrinsic: ``orientation`` (4,) unit quaternion (w, x, y, z) rotating camera axes into world
            axes, ``translation`` (3,) the camera centre in world mm.
        name: Camera name (e.g. the camera id).

    Returns:
        Camera with R = quaternion_to_matrix(orientation)^T and C = translation.

    Raises:
        ValueError: If a field is missing or malformed.
    """
    w = f"camera {name!r} intrinsics" if name else "camera intrinsics"
    c = _vec(_field(intrinsic, "center", w), 2, f"{w} center")
    f = _vec(_field(intrinsic, "focal_length", w), 2, f"{w} focal_length")
    k = _vec(_field(intrinsic, "radial_distortion", w), 3, f"{w} radial_distortion")
    p = _vec(_field(intrinsic, "tangential_distortion", w), 2, f"{w} tangential_distortion")
    res_w, res_h = int(_field(intrinsic, "res_w", w)), int(_field(intrinsic, "res_h", w))
    we = f"camera {name!r} extrinsics" if name else "camera extrinsics"
    if "orientation" not in extrinsic or "translation" not in extrinsic:
        raise ValueError(f"{we}: need 'orientation' (w, x, y, z) and 'translation' (mm), got {sorted(extrinsic)}")
    q = _vec(extrinsic["orientation"], 4, f"{we} orientation")
    if abs(np.linalg.norm(q) - 1.0) > 1e-3:
        raise ValueError(f"{we} orientation must be a unit quaternion, norm {np.linalg.norm(q):.4f}")
    q = q / np.linalg.norm(q)
    t = _vec(extrinsic["translation"], 3, f"{we} translation")
    intr = np.concatenate([f, c, k, p])
    return Camera(intr, quaternion_to_matrix(q).T, t, res_w, res_h, name)


def h36m_cameras(params: Mapping) -> dict[str, list[Camera]]:
    """Cameras of every subject from a parameter dict.

    Args:
        params: ``{"intrinsics": ..., "extrinsics": ...}`` where ``intrinsics`` is either a list of
            dicts each with an ``id`` (the camera order, as in VideoPose3D) or a dict {camera id: dict},
            and ``extrinsics`` is {subject: list of dicts in the same camera order, or {camera id: dict}}.
            Field names as in :func:`h36m_camera`.

    Returns:
        {subject: [Camera per camera id, in intrinsics order]} (camera names are the ids).

    Raises:
        ValueError: If keys are missing or the lists do not line up.
    """
    if not isinstance(params, Mapping) or "intrinsics" not in params or "extrinsics" not in params:
        raise ValueError("params must be a dict with keys 'intrinsics' and 'extrinsics'")
    intr = params["intrinsics"]
    if isinstance(intr, Mapping):
        ids, intr_list = [str(k) for k in intr], list(intr.values())
    elif isinstance(intr, Sequence) and not isinstance(intr, str):
        intr_list = list(intr)
        if not all(isinstance(d, Mapping) and "id" in d for d in intr_list):
            raise ValueError("params['intrinsics'] as a list needs an 'id' in every entry")
        ids = [str(d["id"]) for d in intr_list]
    else:
        raise ValueError("params['intrinsics'] must be a list of dicts or a dict {camera id: dict}")
    if not intr_list:
        raise ValueError("params['intrinsics'] is empty")
    extr = params["extrinsics"]
    if not isinstance(extr, Mapping):
        raise ValueError("params['extrinsics'] must be a dict {subject: cameras}")
    out: dict[str, list[Camera]] = {}
    for subject, cams in extr.items():
        if isinstance(cams, Mapping):
            missing = [i for i in ids if i not in {str(k) for k in cams}]
            if missing:
                raise ValueError(f"params['extrinsics'][{subject!r}] lacks cameras {missing}")
            by_id = {str(k): v for k, v in cams.items()}
            ext_list = [by_id[i] for i in ids]
        else:
            ext_list = list(cams)
            if len(ext_list) != len(ids):
                raise ValueError(
                    f"params['extrinsics'][{subject!r}] has {len(ext_list)} cameras, intrinsics has {len(ids)}"
                )
        out[str(subject)] = [h36m_camera(i, e, name=n) for i, e, n in zip(intr_list, ext_list, ids, strict=True)]
    return out


def h36m_views(positions_3d: np.ndarray, camera: Camera) -> PoseViews:
    """Camera-space 3D (mm), root-relative 3D, 2D pixels and visibility of world poses.

    Args:
        positions_3d: (T, 17, 3) world mm (from :func:`load_h36m_3d`).
        camera: From :func:`h36m_camera` / :func:`h36m_cameras`.

    Returns:
        PoseViews (see :func:`mobpose.data.synthetic_cameras.camera_views`); its ``keypoints_2d`` are
        what the ground-truth 2D file holds for that camera, up to float error.
    """
    return camera_views(positions_3d, camera)
