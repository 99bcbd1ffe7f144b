"""Multi-person 2D scores: object keypoint similarity (OKS), COCO-style AP over OKS thresholds, and person
recall at a box IoU.

OKS of a predicted pose against a labelled person (COCO's definition): the mean over the person's labelled
joints of exp(-d^2 / (2 s^2 k^2)), d the pixel distance, s^2 the person's area and k = 2 sigma the joint's
constant. The sigmas of the 12 limb joints are COCO's (shoulders 0.079, elbows 0.072, wrists 0.062, hips
0.107, knees 0.087, ankles 0.089); H36M's other joints have no COCO constant: head_top, neck_nose and thorax
take the shoulders' 0.079, pelvis and spine the hips' 0.107 (:data:`SIGMAS`). The area is the person box's
w x h (the boxes here come from the joints; COCO uses the segment's area, about half the box's, so these
OKS values are more lenient than COCO's at the same distance).

AP: COCO's procedure per image set: predictions sorted by score, each matched greedily to the unmatched
labelled person of highest OKS at or above the threshold, 101-point interpolated precision, averaged over
OKS thresholds 0.50:0.05:0.95 (``AP``), with ``AP50`` and ``AP75``. Recall: the share of labelled people
whose box has a predicted box of IoU >= 0.5 (any score above the detector's threshold).
"""

from __future__ import annotations

import numpy as np

from .skeleton import H36M_17

__all__ = ["SIGMAS", "average_precision", "box_iou", "box_recall", "oks_matrix"]

_SIGMA_OF = {"pelvis": 0.107, "right_hip": 0.107, "right_knee": 0.087, "right_ankle": 0.089, "left_hip": 0.107,
             "left_knee": 0.087, "left_ankle": 0.089, "spine": 0.107, "thorax": 0.079, "neck_nose": 0.079,
             "head_top": 0.079, "left_shoulder": 0.079, "left_elbow": 0.072, "left_wrist": 0.062,
             "right_shoulder": 0.079, "right_elbow": 0.072, "right_wrist": 0.062}
SIGMAS = np.array([_SIGMA_OF[n] for n in H36M_17.joint_names], np.float64)
"""Per-joint OKS constants in H36M-17 order (see the module docstring)."""


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (N, M) of xyxy boxes a (N, 4) and b (M, 4)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), -1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), -1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), -1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def oks_matrix(pred: np.ndarray, gt: np.ndarray, labelled: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
    """OKS (N, M) of predicted poses (N, J, 2) against labelled people (M, J, 2) with masks (M, J) and
    xyxy boxes (M, 4) (the area); a person with no labelled joint scores 0 against everything."""
    pred = np.asarray(pred, np.float64).reshape(-1, len(SIGMAS), 2)
    gt = np.asarray(gt, np.float64).reshape(-1, len(SIGMAS), 2)
    lab = np.asarray(labelled, bool).reshape(len(gt), len(SIGMAS))
    boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1.0)
    d2 = ((pred[:, None] - gt[None]) ** 2).sum(-1)  # (N, M, J)
    var = (2 * SIGMAS) ** 2
    e = np.exp(-d2 / (2 * area[None, :, None] * var))
    n = lab.sum(-1)
    return np.where(n[None] > 0, (e * lab[None]).sum(-1) / np.maximum(n[None], 1), 0.0)


def _match(scores: list[np.ndarray], sims: list[np.ndarray], threshold: float) -> tuple[np.ndarray, np.ndarray, int]:
    """True positives and scores of all predictions at one similarity threshold, and the number of people."""
    tps, all_scores, total = [], [], 0
    for s, sim in zip(scores, sims, strict=True):
        total += sim.shape[1]
        taken = np.zeros(sim.shape[1], bool)
        for i in np.argsort(-s, kind="stable"):
            tp = False
            if sim.shape[1]:
                cand = np.where(taken, -1.0, sim[i])
                j = int(np.argmax(cand))
                if cand[j] >= threshold:
                    taken[j], tp = True, True
            tps.append(tp)
            all_scores.append(s[i])
    return np.array(tps, bool), np.array(all_scores, np.float64), total


def _ap(tp: np.ndarray, score: np.ndarray, total: int) -> float:
    if total == 0:
        return float("nan")
    order = np.argsort(-score, kind="stable")
    tp = tp[order]
    ctp, cfp = np.cumsum(tp), np.cumsum(~tp)
    recall = ctp / total
    precision = ctp / np.maximum(ctp + cfp, 1)
    for i in range(len(precision) - 2, -1, -1):  # the precision envelope
        precision[i] = max(precision[i], precision[i + 1])
    points = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, points, side="left")
    return float(np.mean([precision[i] if i < len(precision) else 0.0 for i in idx]))


def average_precision(images: list[dict]) -> dict[str, float]:
    """COCO-style keypoint AP over images, each a dict with ``scores`` (N,), ``keypoints`` (N, J, 2) and
    the labels ``gt_keypoints`` (M, J, 2), ``gt_labelled`` (M, J), ``gt_boxes`` (M, 4) xyxy.

    Returns ``AP`` (mean over OKS 0.50:0.05:0.95), ``AP50``, ``AP75``, ``people`` and ``predictions``."""
    scores = [np.asarray(im["scores"], np.float64).reshape(-1) for im in images]
    sims = [oks_matrix(im["keypoints"], im["gt_keypoints"], im["gt_labelled"], im["gt_boxes"]) for im in images]
    aps = {}
    for t in np.round(np.arange(0.5, 0.951, 0.05), 2):
        aps[float(t)] = _ap(*_match(scores, sims, float(t)))
    return {"AP": float(np.mean(list(aps.values()))), "AP50": aps[0.5], "AP75": aps[0.75],
            "people": int(sum(s.shape[1] for s in sims)), "predictions": int(sum(len(s) for s in scores))}


def box_recall(images: list[dict], iou: float = 0.5) -> float:
    """Share of labelled people (``gt_boxes``) whose box some predicted box (``boxes``) covers at IoU >= `iou`
    (one prediction per person: greedy by IoU)."""
    found = total = 0
    for im in images:
        gt = np.asarray(im["gt_boxes"], np.float64).reshape(-1, 4)
        total += len(gt)
        pred = np.asarray(im["boxes"], np.float64).reshape(-1, 4)
        if not len(gt) or not len(pred):
            continue
        m = box_iou(pred, gt)
        used = np.zeros(len(pred), bool)
        for j in np.argsort(-m.max(0)):
            cand = np.where(used, -1.0, m[:, j])
            i = int(np.argmax(cand))
            if cand[i] >= iou:
                used[i] = True
                found += 1
    return found / total if total else float("nan")
