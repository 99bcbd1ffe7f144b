"""Multi-person scores (mobpose.oks): OKS, COCO-style AP and box recall on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from mobpose.oks import SIGMAS, average_precision, box_iou, box_recall, oks_matrix


def _person(x: float, y: float) -> tuple[np.ndarray, np.ndarray]:
    kp = np.stack([np.linspace(x, x + 20, 17), np.linspace(y, y + 60, 17)], 1)
    return kp, np.array([x - 5, y - 5, x + 25, y + 65], np.float64)


def test_oks_is_one_for_a_perfect_pose_and_falls_with_distance():
    kp, box = _person(10, 10)
    lab = np.ones((1, 17), bool)
    assert oks_matrix(kp[None], kp[None], lab, box[None])[0, 0] == pytest.approx(1.0)
    near = oks_matrix(kp[None] + 2, kp[None], lab, box[None])[0, 0]
    far = oks_matrix(kp[None] + 10, kp[None], lab, box[None])[0, 0]
    assert 1 > near > far > 0
    assert oks_matrix(kp[None], kp[None], lab & False, box[None])[0, 0] == 0.0
    # an unlabelled joint does not count, wherever it is predicted
    moved = kp.copy()
    moved[3] += 100
    lab3 = lab.copy()
    lab3[0, 3] = False
    assert oks_matrix(moved[None], kp[None], lab3, box[None])[0, 0] == pytest.approx(1.0)
    assert len(SIGMAS) == 17 and (SIGMAS > 0).all()


def test_ap_of_perfect_missing_and_extra_predictions():
    (a, ba), (b, bb) = _person(10, 10), _person(100, 10)
    gt = {"gt_keypoints": np.stack([a, b]), "gt_labelled": np.ones((2, 17), bool), "gt_boxes": np.stack([ba, bb])}
    perfect = average_precision([{**gt, "scores": np.array([0.9, 0.8]), "keypoints": np.stack([a, b])}])
    assert perfect["AP"] == pytest.approx(1.0) and perfect["people"] == 2
    half = average_precision([{**gt, "scores": np.array([0.9]), "keypoints": a[None]}])
    assert half["AP50"] == pytest.approx(0.5, abs=0.01)
    # a confident false positive ahead of the true ones lowers the precision
    junk = average_precision([{**gt, "scores": np.array([0.95, 0.9, 0.8]),
                               "keypoints": np.stack([a + 500, a, b])}])
    assert 0.5 < junk["AP"] < 1.0
    assert average_precision([{**gt, "scores": np.zeros(0), "keypoints": np.zeros((0, 17, 2))}])["AP"] == 0.0


def test_box_iou_and_recall():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], np.float64)
    assert box_iou(boxes, boxes)[0, 1] == pytest.approx(50 / 150)
    im = {"gt_boxes": boxes, "boxes": np.array([[0, 0, 10, 10.0]])}
    assert box_recall([im], 0.5) == 0.5  # one prediction covers one person
    assert box_recall([{**im, "boxes": boxes}], 0.5) == 1.0
    assert box_recall([{**im, "boxes": np.zeros((0, 4))}], 0.5) == 0.0
