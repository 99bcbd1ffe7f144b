"""LSP-Extended (LSPET): 10,000 real photos, one person each with 14 labelled 2D joints; the 2D accuracy of an
IPEM on them (PCK@0.2 of the torso, per joint), beside the trivial control of the average pose in the box.

The data stay in ../shared/data/lspet (or $MOBPOSE_LSPET_DIR): ``joints.npz`` holds ``joints`` (10000, 14, 3)
x, y, visible; ``names``; ``images``. The split is fixed: train = rows 0-8999, val = rows 9000-9999.

Joint mapping (LSP -> Human3.6M-17, :data:`H36M_OF_LSP`): ankles, knees, hips, wrists, elbows and shoulders by
name; LSP's ``neck`` is compared with H36M's ``thorax`` and LSP's ``head_top`` with H36M's ``head_top``. They are
not the same points: LSP's hips sit lower and wider than H36M's hip joints, its neck is the base of the neck
(H36M's thorax is between the shoulders, close to it), and an IPEM trained on H36M-style joints is scored
against LSP's definitions as they are (no correction): the hips and neck carry a small systematic offset.
H36M's pelvis, spine and neck_nose have no LSP label and are not scored.

The box given to the network is the labelled joints' box (visible joints) x1.15 (:func:`person_box`), as a
detector's box would be; PCK@0.2: a joint counts when it lies within 0.2 x the torso size of its label, the
torso size being the larger distance from a shoulder to the opposite hip (both labelled); photos without a
torso are left out; only visible joints are scored. The control places the average LSPET-train pose (each
joint's mean position in its person box, visible joints only) in each val box. ``limbs`` pools the 12 limb
joints (:data:`LIMBS`: shoulders, elbows, wrists, hips, knees, ankles), which every 2D system names alike.

Peers: another system's predictions on the same rows and boxes (an npz with ``rows`` (N,), ``boxes`` (N, 4)
and ``pixels`` (N, 14, 2) in LSP order, NaN where it found nothing: a miss), scored by the same code beside
the IPEM (:func:`load_peer`; scripts/peer_mediapipe_lspet.py writes MediaPipe BlazePose's). The file's
boxes must be :func:`person_box`'s, so that every row of the table saw the same crop.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BOX_ENLARGE", "H36M_OF_LSP", "LIMBS", "TRAIN_ROWS", "VAL_ROWS", "default_dir", "evaluate", "format_report",
           "load", "load_peer", "mean_pose", "pck", "person_box", "sheet", "torso_sizes"]

logger = logging.getLogger(__name__)

TRAIN_ROWS = range(0, 9000)
VAL_ROWS = range(9000, 10000)
BOX_ENLARGE = 1.15

H36M_OF_LSP: dict[str, str] = {
    "right_ankle": "right_ankle", "right_knee": "right_knee", "right_hip": "right_hip", "left_hip": "left_hip",
    "left_knee": "left_knee", "left_ankle": "left_ankle", "right_wrist": "right_wrist", "right_elbow": "right_elbow",
    "right_shoulder": "right_shoulder", "left_shoulder": "left_shoulder", "left_elbow": "left_elbow",
    "left_wrist": "left_wrist", "neck": "thorax", "head_top": "head_top",
}
"""The H36M-17 joint each LSP joint is scored against (see the module docstring for the differences)."""
LIMBS = ("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
         "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist")


def default_dir() -> Path:
    """$MOBPOSE_LSPET_DIR, else ``lspet`` in the shared data folder (mobpose.data.paths.default_data_dir:
    $MOBPOSE_DATA_DIR or the first ``shared/data`` above the package or the current directory)."""
    env = os.environ.get("MOBPOSE_LSPET_DIR")
    if env:
        return Path(env)
    from .data.paths import default_data_dir

    base = default_data_dir()
    return (base if base is not None else Path("..") / "shared" / "data") / "lspet"


def load(folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """``joints`` (10000, 14, 3) float32, ``images`` (file names), ``names`` (the 14 joints), ``folder``.

    Raises:
        FileNotFoundError: no joints.npz in the folder (the message says where it looked and how to point
            elsewhere).
    """
    folder = Path(folder) if folder is not None else default_dir()
    path = folder / "joints.npz"
    if not path.is_file():
        raise FileNotFoundError(f"LSPET not found: no {path} (set MOBPOSE_LSPET_DIR or pass the folder that holds "
                                f"joints.npz and images/)")
    with np.load(path, allow_pickle=False) as z:
        return {"joints": z["joints"].astype(np.float32), "images": [str(n) for n in z["images"]],
                "names": [str(n) for n in z["names"]], "folder": folder}


def person_box(joints: np.ndarray, enlarge: float = BOX_ENLARGE) -> np.ndarray:
    """(x, y, w, h) of the visible labelled joints (14, 3), enlarged about its centre (head and feet fit)."""
    vis = joints[joints[:, 2] > 0, :2]
    lo, hi = vis.min(0), vis.max(0)
    c, s = (lo + hi) / 2, np.maximum(hi - lo, 8.0) * enlarge
    return np.array([c[0] - s[0] / 2, c[1] - s[1] / 2, s[0], s[1]])


def torso_sizes(gt: np.ndarray, names: list[str]) -> np.ndarray:
    """(N,) the larger shoulder-to-opposite-hip distance of each labelled pose (N, 14, 3); 0 without one."""
    out = np.zeros(len(gt))
    for a, b in (("left_shoulder", "right_hip"), ("right_shoulder", "left_hip")):
        i, j = names.index(a), names.index(b)
        ok = (gt[:, i, 2] > 0) & (gt[:, j, 2] > 0)
        d = np.linalg.norm(gt[:, i, :2] - gt[:, j, :2], axis=1)
        out = np.where(ok, np.maximum(out, d), out)
    return out


def pck(pred: np.ndarray, gt: np.ndarray, names: list[str], alpha: float = 0.2) -> dict[str, Any]:
    """PCK@alpha of the torso: pred (N, 14, 2) pixels in LSP order, gt (N, 14, 3).

    Returns ``pck`` (all scored joints pooled), ``limbs`` (the :data:`LIMBS` pooled), ``per_joint``
    {name: pck}, ``photos`` (with a torso) and ``joints`` (scored)."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    torso = torso_sizes(gt, names)
    scored = (gt[:, :, 2] > 0) & (torso[:, None] > 0)
    dist = np.linalg.norm(pred - gt[:, :, :2], axis=2)
    hit = np.where(np.isfinite(dist), dist <= alpha * torso[:, None], False) & scored
    per = {n: (float(hit[:, j].sum() / scored[:, j].sum()) if scored[:, j].any() else None)
           for j, n in enumerate(names)}
    limb = np.array([n in LIMBS for n in names])
    return {"pck": float(hit.sum() / max(scored.sum(), 1)),
            "limbs": float(hit[:, limb].sum() / max(scored[:, limb].sum(), 1)), "per_joint": per,
            "photos": int((torso > 0).sum()), "joints": int(scored.sum())}


def load_peer(path: str | os.PathLike, rows: list[int], joints: np.ndarray) -> np.ndarray:
    """A peer's predictions (N, 14, 2) for `rows` from its npz (module docstring), checked: the same rows,
    and its boxes those of :func:`person_box` on `joints` (N, 14, 3)."""
    try:
        with np.load(path) as f:
            got_rows, boxes, pixels = f["rows"], f["boxes"], f["pixels"]
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"peer predictions {path}: not an npz with rows, boxes and pixels ({exc})") from None
    index = {int(r): i for i, r in enumerate(got_rows)}
    missing = [r for r in rows if r not in index]
    if missing:
        raise ValueError(f"peer predictions {path} lack {len(missing)} of the rows (first {missing[0]})")
    take = [index[r] for r in rows]
    if pixels.shape[1:] != (14, 2):
        raise ValueError(f"peer predictions {path}: pixels must be (N, 14, 2), got {pixels.shape}")
    want = np.stack([person_box(j) for j in joints])
    if not np.allclose(boxes[take], want, atol=1e-3):
        raise ValueError(f"peer predictions {path} were made on other boxes than person_box's")
    return np.asarray(pixels[take], np.float64)


def mean_pose(joints: np.ndarray) -> np.ndarray:
    """(14, 2) each joint's mean position in its person box, (x - x0) / w, (y - y0) / h, over visible labels."""
    boxes = np.stack([person_box(j) for j in joints])
    rel = (joints[:, :, :2] - boxes[:, None, :2]) / boxes[:, None, 2:]
    vis = joints[:, :, 2] > 0
    return np.stack([rel[vis[:, j], j].mean(0) for j in range(joints.shape[1])])


def evaluate(model: Any = "default", *, folder=None, rows=VAL_ROWS, backend: str = "auto", threads: int | None = None,
             progress: bool = False, keep: int = 0, peers: dict[str, str] | None = None) -> dict[str, Any]:
    """The IPEM's 2D accuracy on LSPET `rows` (default val) with the box given, beside the mean-pose control.

    Args:
        model: the IPEM (as :class:`mobpose.Pipeline`: "default", a shipped name, a checkpoint).
        folder: the LSPET folder (default :func:`default_dir`).
        rows: the rows scored (never train rows for a reported figure).
        backend, threads: as :class:`mobpose.Pipeline`.
        progress: a progress bar (tqdm, when installed and stderr is a terminal).
        keep: also return the first `keep` photos' predictions (``examples``) to draw.
        peers: {name: npz path} of other systems' predictions on the same rows (:func:`load_peer`).

    Returns:
        ``model``, ``backend``, ``rows``, ``ipem`` and ``control`` (each :func:`pck`'s dict), ``found`` (the
        fraction of the photos the presence model calls a person, None without one) and ``examples``.
    """
    from .runtime.image import load_image
    from .runtime.pipeline import Pipeline
    from .runtime.tracker import PoseTracker
    from .skeleton import H36M_17

    data = load(folder)
    names = data["names"]
    h36 = list(H36M_17.joint_names)
    to_h36 = [h36.index(H36M_OF_LSP[n]) for n in names]
    rows = list(rows)
    if not rows:
        raise ValueError("no rows to evaluate")
    joints = data["joints"]
    peer_preds = {name: load_peer(path, rows, joints[rows]) for name, path in (peers or {}).items()}
    control_pose = mean_pose(joints[list(TRAIN_ROWS)])
    preds, controls, found, examples = [], [], [], []
    it: Any = rows
    if progress:
        try:
            from tqdm import tqdm

            it = tqdm(rows, desc="LSPET", unit="photo", disable=None)
        except ImportError:
            pass
    with Pipeline(model, prm=None, backend=backend, threads=threads) as pipe:
        for r in it:
            img = load_image(data["folder"] / "images" / data["images"][r])
            box = person_box(joints[r])
            pipe.tracker = PoseTracker(box)
            pipe.reset()
            pose = pipe.update(img)
            pred = pose.pixels[to_h36]
            preds.append(pred)
            controls.append(control_pose * box[2:] + box[:2])
            found.append(pose.found if pipe.presence is not None else None)
            if len(examples) < keep:
                examples.append({"row": r, "image": img, "pixels_h36m": pose.pixels, "box": box})
        backend_used, label = pipe.backend, pipe.model_name
    gt = joints[rows]
    ipem = pck(np.stack(preds), gt, names)
    control = pck(np.stack(controls), gt, names)
    logger.info("LSPET rows %d-%d: PCK@0.2 %.3f (control %.3f)", rows[0], rows[-1], ipem["pck"], control["pck"])
    return {"model": label, "backend": backend_used, "rows": [rows[0], rows[-1], len(rows)], "ipem": ipem,
            "control": control, "found": None if found[0] is None else float(np.mean(found)),
            "peers": {name: pck(p, gt, names) for name, p in peer_preds.items()}, "examples": examples}


def format_report(report: dict[str, Any]) -> str:
    """A markdown table: PCK@0.2 per joint and pooled, the IPEM beside the control (and any peers)."""
    a, b = report["ipem"], report["control"]
    peers = report.get("peers") or {}
    lines = [f"LSPET rows {report['rows'][0]}-{report['rows'][1]} ({report['rows'][2]} photos, {a['photos']} with a "
             f"labelled torso, {a['joints']} joints scored), box given (labelled joints x{BOX_ENLARGE}); "
             f"PCK@0.2 of the torso; model {report['model']}, backend {report['backend']}"
             + ("" if report["found"] is None else f"; a person found in {100 * report['found']:.0f} % of the photos"),
             "", "| joint | IPEM | control: average pose in the box |" + "".join(f" peer: {p} |" for p in peers),
             "|---|---|---|" + "---|" * len(peers)]

    def cell(v) -> str:
        return "-" if v is None else f"{v:.3f}"

    cols = [a, b, *peers.values()]
    for n in a["per_joint"]:
        name = n if H36M_OF_LSP[n] == n else f"{n} (as H36M {H36M_OF_LSP[n]})"
        lines.append(f"| {name} | " + " | ".join(cell(c["per_joint"][n]) for c in cols) + " |")
    lines.append("| limbs (12 joints) | " + " | ".join(cell(c["limbs"]) for c in cols) + " |")
    lines.append("| **all** | " + " | ".join(f"**{c['pck']:.3f}**" for c in cols) + " |")
    return "\n".join(lines)


def sheet(examples: list[dict[str, Any]], folder=None, tile: int = 192) -> np.ndarray:
    """The examples of :func:`evaluate` drawn: the predicted skeleton in colour, the labels as white dots."""
    import cv2

    from .skeleton import H36M_17
    from .viz import draw_skeleton, grid

    joints = load(folder)["joints"]
    tiles = []
    for ex in examples:
        img = draw_skeleton(ex["image"], ex["pixels_h36m"], skeleton=H36M_17)
        for x, y, v in joints[ex["row"]]:
            if v > 0:
                cv2.circle(img, (int(round(x)), int(round(y))), 2, (255, 255, 255), -1, cv2.LINE_AA)
        x, y, w, h = (int(round(v)) for v in ex["box"])
        cv2.rectangle(img, (x, y), (x + w, y + h), (255, 220, 0), 1)
        tiles.append(img)
    return grid(tiles, tile=tile)
