"""mobpose.lspet: PCK@0.2 of the torso on LSPET, and `mobpose eval lspet` on a few val photos (the data are read
from ../shared/data/lspet or MOBPOSE_LSPET_DIR)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mobpose
from mobpose import cli, lspet
from mobpose.runtime.pipeline import DEFAULT_IPEM

NAMES = ["right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist", "right_elbow",
         "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "neck", "head_top"]


def _pose(rng) -> np.ndarray:
    gt = np.concatenate([rng.uniform(0, 200, (14, 2)), np.ones((14, 1))], axis=1)
    gt[NAMES.index("left_shoulder"), :2] = (100, 50)
    gt[NAMES.index("right_hip"), :2] = (100, 150)  # torso 100 px (the other diagonal is shorter below)
    gt[NAMES.index("right_shoulder"), :2] = (110, 60)
    gt[NAMES.index("left_hip"), :2] = (110, 140)
    return gt


def test_pck_counts_joints_within_a_fifth_of_the_torso():
    gt = np.stack([_pose(np.random.default_rng(i)) for i in range(3)])
    assert lspet.torso_sizes(gt, NAMES).tolist() == [100.0, 100.0, 100.0]
    assert lspet.pck(gt[:, :, :2], gt, NAMES)["pck"] == 1.0
    near = gt[:, :, :2] + [19.0, 0.0]  # within 0.2 x 100 px
    far = gt[:, :, :2] + [0.0, 21.0]
    assert lspet.pck(near, gt, NAMES)["pck"] == 1.0 and lspet.pck(far, gt, NAMES)["pck"] == 0.0
    hidden = gt.copy()
    hidden[:, 0, 2] = 0  # an unlabelled joint is not scored, whatever is predicted there
    res = lspet.pck(np.where(np.arange(14)[None, :, None] == 0, 1e6, gt[:, :, :2]), hidden, NAMES)
    assert res["pck"] == 1.0 and res["per_joint"]["right_ankle"] is None and res["joints"] == 3 * 13
    no_torso = gt.copy()
    no_torso[:, NAMES.index("left_shoulder"), 2] = no_torso[:, NAMES.index("right_shoulder"), 2] = 0
    assert lspet.pck(gt[:, :, :2], no_torso, NAMES)["photos"] == 0


def test_limbs_pool_the_twelve_limb_joints_and_peers_are_checked(tmp_path):
    gt = np.stack([_pose(np.random.default_rng(i)) for i in range(4)])
    pred = gt[:, :, :2].copy()
    pred[:, NAMES.index("neck")] += 50.0  # a miss outside the limbs
    pred[:, NAMES.index("left_wrist")] = np.nan  # nothing found: a miss
    res = lspet.pck(pred, gt, NAMES)
    assert res["limbs"] == 11 / 12 and res["pck"] == 12 / 14
    rows = [9000, 9001, 9002, 9003]
    boxes = np.stack([lspet.person_box(j) for j in gt])
    path = tmp_path / "peer.npz"
    np.savez(path, rows=np.array(rows[::-1]), boxes=boxes[::-1], pixels=pred[::-1])  # any row order
    np.testing.assert_array_equal(lspet.load_peer(path, rows, gt), pred)
    with pytest.raises(ValueError, match="lack 1 of the rows"):
        lspet.load_peer(path, rows + [9004], np.concatenate([gt, gt[:1]]))
    np.savez(path, rows=np.array(rows), boxes=boxes + 5.0, pixels=pred)
    with pytest.raises(ValueError, match="other boxes"):
        lspet.load_peer(path, rows, gt)
    (tmp_path / "bad.npz").write_text("x")
    with pytest.raises(ValueError, match="not an npz"):
        lspet.load_peer(tmp_path / "bad.npz", rows, gt)


def test_mean_pose_is_in_box_units():
    gt = np.stack([_pose(np.random.default_rng(i)) for i in range(50)])
    m = lspet.mean_pose(gt)
    assert m.shape == (14, 2) and ((m > -0.1) & (m < 1.1)).all()


def test_every_lsp_joint_has_an_h36m_counterpart():
    assert set(lspet.H36M_OF_LSP) == set(NAMES)
    assert set(lspet.H36M_OF_LSP.values()) <= set(mobpose.H36M_17.joint_names)


def test_eval_lspet_on_val_photos(tmp_path, capsys):
    try:
        lspet.load()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    out = tmp_path / "r.json"
    sheet = tmp_path / "s.png"
    assert cli.main(["eval", "lspet", "--rows", "9000:9030", "--json", str(out), "--sheet", str(sheet),
                     "--sheet-count", "4"]) == 0
    text = capsys.readouterr().out
    assert "| **all** |" in text and "neck (as H36M thorax)" in text
    report = json.loads(out.read_text())
    assert report["rows"] == [9000, 9029, 30] and report["model"] == f"default ({DEFAULT_IPEM})"
    for key in ("ipem", "control"):
        assert 0.0 <= report[key]["pck"] <= 1.0 and report[key]["photos"] > 10
    assert sheet.stat().st_size > 1000


def test_eval_lspet_names_bad_rows():
    assert cli.main(["eval", "lspet", "--rows", "9000"]) == 2
    assert cli.main(["eval", "lspet", "--rows", "9500:9000"]) == 2
