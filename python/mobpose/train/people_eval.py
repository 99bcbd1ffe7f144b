"""Multi-person 2D on the fixed LSPET val compositions (mobpose.data.people.val_set: mosaics and pastes of val
photos, never trained on): one table of RTMO, PoseResNet and controls.

Rows (each per kind, mosaic / paste, and pooled):

- **RTMO**: person recall at box IoU 0.5 (mobpose.oks.box_recall) of its people at the score `threshold`, and at
  any score >= 0.05 (what the boxes can reach); COCO-style AP and AP50 over OKS (mobpose.oks.average_precision)
  of all its people >= 0.05, scored by its person scores. The runtime's own path (mobpose.runtime.people).
- **control: the whole image**: one box, the whole image, holding the average LSPET-train pose (recall, AP): what
  finding nobody in particular scores.
- **PoseResNet, labelled boxes**: the top-down model on the labelled people's boxes (AP: its keypoints; the score
  of a person is the mean of its joint scores).
- **PoseResNet, RTMO's boxes**: the same on the people RTMO found (>= `threshold`): the whole top-down system.
- **control: average pose in the labelled boxes**: the average LSPET-train pose (mobpose.lspet.mean_pose) placed
  in each labelled box: what a box alone tells about the keypoints.

OKS uses the labelled box's area (lenient next to COCO's segment area; mobpose.oks); LSPET labels 14 joints, the
others (pelvis, spine, neck_nose) are not scored.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["evaluate_people_table", "format_people_table"]

logger = logging.getLogger(__name__)

KINDS = ("mosaic", "paste")


def _mean_pose_h36m() -> np.ndarray:
    """(17, 2) the average LSPET-train pose, relative to the person box (x - x0) / w, (y - y0) / h, H36M order
    (0.5 where LSP has no label)."""
    from ..lspet import H36M_OF_LSP, TRAIN_ROWS, load, mean_pose
    from ..skeleton import H36M_17

    data = load()
    rel = mean_pose(data["joints"][list(TRAIN_ROWS)])
    out = np.full((17, 2), 0.5)
    names = list(H36M_17.joint_names)
    for i, n in enumerate(data["names"]):
        out[names.index(H36M_OF_LSP[n])] = rel[i]
    return out


def _score(rows: dict[str, list[dict]], threshold: float | None) -> dict[str, dict[str, float]]:
    from ..oks import average_precision, box_recall

    out = {}
    for kind in (*KINDS, "all"):
        ims = [im for k in KINDS if kind in (k, "all") for im in rows[k]]
        ap = average_precision(ims)
        r = {"ap": ap["AP"], "ap50": ap["AP50"], "people": ap["people"]}
        if "boxes" in ims[0]:
            r["recall_any"] = box_recall(ims, 0.5)
            if threshold is not None:
                r["recall"] = box_recall([{"boxes": im["boxes"][im["scores"] >= threshold],
                                           "gt_boxes": im["gt_boxes"]} for im in ims], 0.5)
        out[kind] = r
    return out


def evaluate_people_table(rtmo: Any = "rtmo-mnv2", *, poseresnet: Any = None, count: int = 200, size: int = 320,
                          threshold: float = 0.3, progress: bool = False) -> dict[str, Any]:
    """The table of the module docstring as a dict: ``rows`` {row name: {kind: {recall, recall_any, ap, ap50,
    people}}}, and the settings."""
    from ..data.people import val_set
    from ..runtime.people import PeopleDetector
    from .evaluation import progress_bar

    det = PeopleDetector(rtmo, score_threshold=0.05)
    td = None
    if poseresnet is not None:
        from ..runtime.topdown import TopDown

        td = TopDown(poseresnet)
    mean = _mean_pose_h36m()
    names = ("RTMO", "control: the whole image", "PoseResNet, labelled boxes", "PoseResNet, RTMO's boxes",
             "control: average pose in the labelled boxes")
    rows: dict[str, dict[str, list[dict]]] = {name: {k: [] for k in KINDS} for name in names}
    for kind in KINDS:
        ds = val_set(kind, count=count, size=size)
        for i in progress_bar(range(len(ds)), total=len(ds), desc=f"val {kind}s", unit="image", enabled=progress):
            it = ds[i]
            img, gt = it["image"], {"gt_keypoints": it["keypoints"], "gt_labelled": it["labelled"],
                                    "gt_boxes": it["boxes"]}
            people = det(img)
            rows["RTMO"][kind].append({**gt, "scores": people.scores, "keypoints": people.keypoints,
                                       "boxes": people.boxes})
            h, w = img.shape[:2]
            whole = np.array([[0, 0, w, h]], np.float32)
            rows["control: the whole image"][kind].append(
                {**gt, "scores": np.ones(1), "keypoints": (mean * [w, h])[None], "boxes": whole})
            b = it["boxes"]
            wh = b[:, 2:] - b[:, :2]
            rows["control: average pose in the labelled boxes"][kind].append(
                {**gt, "scores": np.ones(len(b)), "keypoints": b[:, None, :2] + mean[None] * wh[:, None]})
            if td is not None:
                kp, ks = td(img, np.concatenate([b[:, :2], wh], 1))
                rows["PoseResNet, labelled boxes"][kind].append(
                    {**gt, "scores": ks.mean(1) if len(ks) else np.zeros(0), "keypoints": kp})
                keep = people.scores >= threshold
                kp, ks = td(img, people.xywh()[keep])
                rows["PoseResNet, RTMO's boxes"][kind].append(
                    {**gt, "scores": people.scores[keep] * (ks.mean(1) if len(ks) else 1.0), "keypoints": kp,
                     "boxes": people.boxes[keep]})
    table = {}
    for name, per_kind in rows.items():
        if not per_kind[KINDS[0]]:
            continue
        table[name] = _score(per_kind, threshold if name in ("RTMO", "control: the whole image") else None)
        for r in table[name].values():  # the top-down row on RTMO's boxes: those are already the kept ones
            if "recall_any" in r and "recall" not in r:
                r["recall"] = r["recall_any"]
    return {"rtmo": str(rtmo), "poseresnet": None if poseresnet is None else str(poseresnet), "count": count,
            "size": size, "threshold": threshold, "rows": table}


def format_people_table(report: dict[str, Any]) -> str:
    """A markdown table of :func:`evaluate_people_table`'s report."""
    lines = [f"LSPET val compositions ({report['count']} mosaics, {report['count']} pastes, {report['size']} px); "
             f"RTMO {report['rtmo']} (score threshold {report['threshold']}), PoseResNet {report['poseresnet']}; "
             "recall: people whose box is found at IoU >= 0.5; AP over OKS 0.50:0.95 (box-area OKS)", "",
             "| system | recall (mosaic / paste / all) | recall, any score | AP (mosaic / paste / all) | AP50 (all) |",
             "|---|---|---|---|---|"]

    def trio(r: dict, key: str) -> str:
        if key not in r["all"]:
            return "-"
        return " / ".join(f"{r[k][key]:.3f}" for k in (*KINDS, "all"))

    for name, r in report["rows"].items():
        recall_any = f"{r['all']['recall_any']:.3f}" if "recall_any" in r["all"] else "-"
        lines.append(f"| {name} | {trio(r, 'recall')} | {recall_any} | {trio(r, 'ap')} | {r['all']['ap50']:.3f} |")
    return "\n".join(lines)
