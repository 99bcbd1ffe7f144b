"""PoseResNet / SimpleBaseline (mobpose.models.poseresnet): the paper's size, the heatmaps, the top-down crop and
decoding (mobpose.runtime.topdown), the LSPET training items and targets (mobpose.data.topdown), the loss, a
training run that resumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mobpose import lspet
from mobpose.models import create_model
from mobpose.models.poseresnet import PoseResNetConfig, count_macs
from mobpose.runtime.topdown import (
    TopDown,
    crop_box_topdown,
    decode_heatmaps,
    fill_unlabelled,
    from_heatmap,
    rect_affine,
    to_heatmap,
)
from mobpose.skeleton import H36M_17
from mobpose.train.poseresnet_stage import heatmap_loss


def test_resnet50_variant_has_the_papers_size():
    m = create_model("poseresnet_50")
    assert sum(p.numel() for p in m.parameters()) == pytest.approx(34.0e6, rel=0.002)  # the paper: 34.0 M
    assert count_macs(m) == pytest.approx(5.43e9, rel=0.01)  # mmpose's count for the same model: 5.46 G
    assert m.heatmap_size == (64, 48)


def test_shapes_and_config_errors():
    m = create_model("poseresnet_test").eval()
    out = m(torch.randn(2, 3, 96, 64))
    assert out.shape == (2, 17, 24, 16) == (2, 17, *m.heatmap_size)
    assert create_model("poseresnet_mnv2").heatmap_size == (48, 32)
    with pytest.raises(ValueError, match="multiples of 32"):
        PoseResNetConfig(input_height=100)
    with pytest.raises(ValueError, match="backbone"):
        PoseResNetConfig(backbone="vgg")
    with pytest.raises(ValueError, match="ImageNet"):
        m.load_imagenet()


def test_decoding_finds_a_gaussian_within_a_quarter_pixel():
    from mobpose.data.topdown import gaussian_targets

    xy = np.array([[5.3, 7.8], [0.0, 0.0], [15.0, 23.0], [9.6, 3.1]], np.float32)
    hm = gaussian_targets(xy, (24, 16), 2.0)[None]
    got, score = decode_heatmaps(hm)
    assert np.abs(got[0] - xy).max() <= 0.25 + 1e-6  # the argmax pixel moved a quarter toward the true peak
    assert (score > 0.8).all()
    assert np.allclose(from_heatmap(to_heatmap(xy, (96, 64), (24, 16)), (96, 64), (24, 16)), xy, atol=1e-5)


def test_crop_affine_maps_the_box_onto_the_input():
    box = crop_box_topdown((100, 50, 40, 120), (640, 480), (256, 192))
    assert box[2] / box[3] == pytest.approx(192 / 256)
    a = rect_affine(box, (256, 192))
    centre = a @ [box[0] + box[2] / 2, box[1] + box[3] / 2, 1]
    corner = a @ [box[0], box[1], 1]
    np.testing.assert_allclose(centre[:2], [95.5, 127.5])
    np.testing.assert_allclose(corner[:2], [95.5 - 96, 127.5 - 128], atol=1e-9)
    rot = rect_affine(box, (256, 192), rot_deg=90)
    np.testing.assert_allclose((rot @ [box[0] + box[2] / 2, box[1], 1])[:2], [95.5 - 128, 127.5], atol=1e-6)


def test_topdown_returns_image_pixels_and_fills_the_unlabelled_joints():
    td = TopDown(create_model("poseresnet_test"))
    img = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    kp, score = td(img, [[20, 10, 50, 100], [90, 30, 40, 80]])
    assert kp.shape == (2, 17, 2) and score.shape == (2, 17) and np.isfinite(kp).all()
    n = H36M_17.joint_names
    np.testing.assert_allclose(kp[:, n.index("pelvis")], (kp[:, n.index("left_hip")] + kp[:, n.index("right_hip")]) / 2,
                               atol=1e-4)
    assert td(img, np.zeros((0, 4)))[0].shape == (0, 17, 2)
    filled = fill_unlabelled(np.zeros((17, 2)))
    assert filled.shape == (17, 2)
    with pytest.raises(ValueError, match="PoseResNet"):
        TopDown(create_model("rtmo_test"))
    with pytest.raises(ValueError, match="uint8"):
        td(img.astype(np.float32), [[0, 0, 10, 10]])


def test_loss_ignores_joints_without_weight():
    pred, target = torch.zeros(2, 17, 8, 6), torch.zeros(2, 17, 8, 6)
    pred[:, 3] = 1.0
    w = torch.ones(2, 17)
    assert heatmap_loss(pred, target, w) > 0
    w[:, 3] = 0
    assert heatmap_loss(pred, target, w) == 0


try:
    lspet.load()
    HAVE_LSPET = True
except FileNotFoundError:  # pragma: no cover - the data are beside the repository here
    HAVE_LSPET = False


@pytest.mark.skipif(not HAVE_LSPET, reason="LSPET is not in ../shared/data")
def test_lspet_items_targets_peak_at_the_labels_and_flips_swap_sides():
    from mobpose.data.topdown import TopDownLSPET

    plain = TopDownLSPET(4, (96, 64), (24, 16), seed=3, augment=False)
    s = plain.sample(1)
    item = plain[1]
    w = s["weight"] > 0
    assert item["image"].shape == (3, 96, 64) and item["target"].shape == (17, 24, 16) and w.sum() >= 6
    n = H36M_17.joint_names
    assert not w[[n.index("pelvis"), n.index("spine"), n.index("neck_nose")]].any()
    got, _ = decode_heatmaps(item["target"][None].numpy())
    uv = from_heatmap(got[0], (96, 64), (24, 16))
    assert np.abs(uv[w] - s["keypoints"][w]).max() <= 2.0  # 4 input px per heatmap px, a quarter step off at most
    # the labels map through the affine: input = affine @ image
    row = plain.joints[s["row"]]
    lsp = list(lspet.load()["names"])
    j = n.index("left_knee")
    if row[lsp.index("left_knee"), 2] > 0:
        np.testing.assert_allclose(s["affine"][:2] @ [*row[lsp.index("left_knee"), :2], 1], s["keypoints"][j],
                                   atol=1e-3)
    # a flipped item: the person's left knee label now marks the right knee
    ds = TopDownLSPET(64, (96, 64), (24, 16), seed=3)
    flipped = [f for f in (ds.sample(i) for i in range(64)) if np.linalg.det(f["affine"][:2, :2]) < 0]
    checked = 0
    for f in flipped:
        label = ds.joints[f["row"], lsp.index("left_knee")]
        if label[2] > 0:
            np.testing.assert_allclose(f["affine"][:2] @ [*label[:2], 1], f["keypoints"][n.index("right_knee")],
                                       atol=1e-3)
            checked += 1
    assert checked >= 3


@pytest.mark.skipif(not HAVE_LSPET, reason="LSPET is not in ../shared/data")
def test_training_runs_and_resumes(tmp_path):
    from mobpose.cli import main

    args = ["train", "poseresnet", "--out", str(tmp_path / "run"), "--model", "poseresnet_test", "--batch-size", "4",
            "--samples-per-epoch", "8", "--epochs", "2", "--eval-count", "4", "--workers", "0", "--imagenet", "none"]
    assert main(args + ["--max-steps", "1"]) == 0
    assert (tmp_path / "run" / "last.safetensors").is_file()
    assert main(args) == 0
    import json

    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["epoch"] == 2 and "lspet_pck" in log[-1] and log[-1]["step"] == 4


@pytest.mark.skipif(not HAVE_LSPET, reason="LSPET is not in ../shared/data")
def test_people_table_has_every_row(tmp_path):
    """The multi-person table on two val images per kind, with the test models (figures meaningless, rows real)."""
    from mobpose.export.golden import seeded_test_model
    from mobpose.train.people_eval import evaluate_people_table, format_people_table

    report = evaluate_people_table(seeded_test_model("rtmo_test"), poseresnet=create_model("poseresnet_test"),
                                   count=2, size=64)
    rows = report["rows"]
    assert set(rows) == {"RTMO", "control: the whole image", "PoseResNet, labelled boxes", "PoseResNet, RTMO's boxes",
                         "control: average pose in the labelled boxes"}
    for r in rows.values():
        assert 0 <= r["all"]["ap"] <= 1 and r["all"]["people"] >= 2
    assert 0 <= rows["RTMO"]["all"]["recall"] <= rows["RTMO"]["all"]["recall_any"] <= 1
    assert "| RTMO |" in format_people_table(report)
