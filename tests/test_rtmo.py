"""RTMO (mobpose.models.rtmo): the dense graph's layout, the DCC's numpy twin (mobpose.runtime.people) against
PyTorch, decoding and NMS, the letterbox round trip, the SimOTA assignment, the loss and a few training steps,
and the detector on an image."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mobpose.export.golden import seeded_test_model
from mobpose.models import create_model
from mobpose.models.rtmo import RTMOConfig, decode_dense, dense_channels, dense_layout, priors
from mobpose.runtime.people import People, PeopleDetector, dcc_forward, letterbox, nms, postprocess, priors_np, to_image
from mobpose.train.rtmo_stage import giou, mle_loss, oks_torch, rtmo_loss, simota


@pytest.fixture(scope="module")
def model():
    return seeded_test_model("rtmo_test")


def test_layout_covers_the_dense_output(model):
    lay = dense_layout(model.config)
    assert [lay[k].start for k in ("score", "box", "offsets", "visibility", "pose")] == [0, 1, 5, 39, 56]
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 16 + 4, dense_channels(model.config))
    out = model(torch.randn(1, 3, 128, 96 + 32))  # any multiple of 32: the grid follows the input
    assert out.shape == (1, 64 + 16, dense_channels(model.config))
    assert torch.equal(priors(64), torch.from_numpy(priors_np(64)))


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="backbone"):
        RTMOConfig(backbone="resnet")
    with pytest.raises(ValueError, match="multiple of 32"):
        RTMOConfig(input_size=100)
    with pytest.raises(ValueError, match="spe_channels"):
        RTMOConfig(spe_channels=7)


@pytest.mark.parametrize("case", ["rtmo_test", "rtmo_mnv2_test"])
def test_numpy_dcc_matches_pytorch(case):
    m = seeded_test_model(case)
    rng = np.random.default_rng(0)
    n = 6
    pose = rng.normal(0, 2, (n, m.config.pose_channels)).astype(np.float32)
    x0 = rng.uniform(0, 40, (n, 2))
    boxes = np.concatenate([x0, x0 + rng.uniform(5, 30, (n, 2))], 1).astype(np.float32)
    cells = rng.uniform(0, 64, (n, 2)).astype(np.float32)
    with torch.no_grad():
        ref = m.dcc(*(torch.from_numpy(a) for a in (pose, boxes, cells)))["keypoints"].numpy()
    w = {k[4:]: v.numpy() for k, v in m.state_dict().items() if k.startswith("dcc.")}
    got = dcc_forward(w, m.config, pose, boxes, cells)
    assert got.shape == (n, 17, 2) and np.isfinite(got).all()
    np.testing.assert_allclose(got, ref, atol=1e-3)  # pixels; float32 softmax expectations reordered
    # keypoints lie inside the enlarged box (a softmax expectation of bins laid over it)
    c, half = (boxes[:, None, :2] + boxes[:, None, 2:]) / 2, (boxes[:, None, 2:] - boxes[:, None, :2]) * 1.25 / 2
    assert (np.abs(got - c) <= half + 1e-3).all()
    assert dcc_forward(w, m.config, pose[:0], boxes[:0], cells[:0]).shape == (0, 17, 2)


def test_postprocess_decodes_keeps_and_suppresses(model):
    cfg = dataclasses.asdict(model.config)
    lay = dense_layout(model.config)
    prior = priors_np(64)
    dense = np.zeros((len(prior), dense_channels(model.config)), np.float32)
    dense[:, 0] = -10.0  # nobody
    # cell 5 (stride 16): a person, its box 1 stride left/up and 2 strides right/down of the cell centre
    dense[5, 0], dense[5, lay["box"]] = 3.0, np.log([1, 1, 2, 2])
    dense[6, 0], dense[6, lay["box"]] = 2.0, np.log([2, 1, 1, 1.5])  # the same person seen from the next cell
    w = {k[4:]: v.numpy() for k, v in model.state_dict().items() if k.startswith("dcc.")}
    people = postprocess(dense, cfg, w, 64, score_threshold=0.5, nms_iou=0.65)
    assert len(people) == 1
    cx, cy, s = prior[5]
    np.testing.assert_allclose(people.boxes[0], [cx - s, cy - s, cx + 2 * s, cy + 2 * s], rtol=1e-5)
    np.testing.assert_allclose(people.scores[0], 1 / (1 + np.exp(-3.0)), rtol=1e-6)
    assert people.keypoints.shape == (1, 17, 2) and people.keypoint_scores.shape == (1, 17)
    kept = postprocess(dense, cfg, w, 64, score_threshold=0.5, nms_iou=0.99)
    assert len(kept) == 2 and kept.scores[0] > kept.scores[1]
    assert len(postprocess(dense, cfg, w, 64, score_threshold=0.99)) == 0
    with pytest.raises(ValueError, match="dense output"):
        postprocess(dense[:-1], cfg, w, 64)


def test_nms_keeps_the_best_of_each_cluster():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5]], np.float32)
    scores = np.array([0.5, 0.9, 0.8, 0.4], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.99).tolist() == [1, 2, 0, 3]
    part = np.array([[0, 0, 100, 200], [10, 10, 60, 80]], np.float32)  # a box on a part of a surer one
    assert nms(part, np.array([0.9, 0.8], np.float32), 0.5).tolist() == [0, 1]  # IoU 0.18: both kept
    assert nms(part, np.array([0.9, 0.8], np.float32), 0.5, inside=0.8).tolist() == [0]  # all of it inside
    assert nms(part, np.array([0.8, 0.9], np.float32), 0.5, inside=0.8).tolist() == [1, 0]  # the big one stays


def test_letterbox_round_trip():
    img = np.zeros((90, 160, 3), np.uint8)
    img[40:50, 100:110] = 255
    canvas, scale, off = letterbox(img, 64)
    assert canvas.shape == (64, 64, 3) and scale == pytest.approx(64 / 160)
    assert canvas[0, 0, 0] == 114 and off[0] == 0 and off[1] > 0  # grey bands above and below
    p = People(np.array([[100 * scale + off[0], 40 * scale + off[1], 110 * scale + off[0], 50 * scale + off[1]]],
                        np.float32), np.ones(1, np.float32),
               np.array([[[105 * scale + off[0], 45 * scale + off[1]]] * 17], np.float32), np.ones((1, 17), np.float32))
    back = to_image(p, scale, off, (160, 90))
    np.testing.assert_allclose(back.boxes[0], [100, 40, 110, 50], atol=1e-4)
    np.testing.assert_allclose(back.keypoints[0, 0], [105, 45], atol=1e-4)
    np.testing.assert_allclose(back.xywh()[0], [100, 40, 10, 10], atol=1e-4)


def test_simota_gives_each_person_cells_near_it():
    prior = priors(128)
    a = len(prior)
    gt = torch.tensor([[8.0, 8.0, 56.0, 120.0], [72.0, 16.0, 120.0, 80.0]])
    kp = torch.zeros(2, 17, 2) + torch.tensor([[32.0, 64.0], [96.0, 48.0]])[:, None]
    lab = torch.ones(2, 17, dtype=torch.bool)
    boxes = gt[torch.where(prior[:, 0] < 64, 0, 1)]  # every cell predicts the box of its half
    coarse = kp[torch.where(prior[:, 0] < 64, 0, 1)]
    cells, people = simota(prior, torch.zeros(a), boxes, coarse, gt, kp, lab)
    assert len(cells) >= 2 and set(people.tolist()) == {0, 1}
    assert len(set(cells.tolist())) == len(cells)  # a cell goes to one person
    for c, g in zip(cells.tolist(), people.tolist(), strict=True):
        x, y = prior[c, :2]
        assert gt[g, 0] < x < gt[g, 2] and gt[g, 1] < y < gt[g, 3]
    empty = simota(prior, torch.zeros(a), boxes, coarse, gt[:0], kp[:0], lab[:0])
    assert len(empty[0]) == 0


def test_oks_and_giou():
    gt = torch.tensor([[[10.0, 10.0]] * 17])
    lab = torch.ones(1, 17, dtype=torch.bool)
    assert oks_torch(gt.clone(), gt, lab, torch.tensor([100.0])).item() == pytest.approx(1.0)
    far = oks_torch(gt + 50, gt, lab, torch.tensor([100.0])).item()
    assert 0 <= far < 1e-3
    assert oks_torch(gt + 50, gt, lab & False, torch.tensor([100.0])).item() == 0.0
    iou, g = giou(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 1, 3, 3]]))
    assert iou.item() == pytest.approx(1 / 7) and g.item() == pytest.approx(1 / 7 - (9 - 7) / 9)


def test_mle_loss_prefers_the_right_place_and_a_fitting_sigma():
    bins = torch.linspace(0, 100, 101)[None]
    def loss(centre, sigma):
        prob = torch.softmax(-((bins - centre) ** 2) / 2.0, -1)[:, None].expand(1, 17, 101)
        out = {"prob_x": prob, "prob_y": prob, "bins_x": bins, "bins_y": bins,
               "sigma": torch.full((1, 17), sigma)}
        return mle_loss(out, torch.full((1, 17, 2), 50.0), torch.ones(1, 17, dtype=torch.bool),
                        torch.tensor([100.0 ** 2])).item()
    assert loss(50.0, 0.01) < loss(60.0, 0.01)
    assert loss(50.0, 0.01) < loss(50.0, 0.09)  # sure and right beats unsure and right
    assert loss(80.0, 0.09) < loss(80.0, 0.01)  # unsure beats sure when wrong


def _batch(n_img: int = 2):
    rng = np.random.default_rng(1)
    images, kps, labs, defs, boxes = [], [], [], [], []
    for _ in range(n_img):
        img = np.full((64, 64, 3), 30, np.uint8)
        x0, y0 = rng.integers(4, 28, 2)
        img[y0:y0 + 30, x0:x0 + 20] = 220
        images.append(img)
        kp = np.stack([rng.uniform(x0, x0 + 20, 17), rng.uniform(y0, y0 + 30, 17)], 1).astype(np.float32)
        kps.append(torch.from_numpy(kp)[None])
        labs.append(torch.ones(1, 17, dtype=torch.bool))
        defs.append(torch.ones(1, 17, dtype=torch.bool))
        boxes.append(torch.tensor([[x0, y0, x0 + 20, y0 + 30]], dtype=torch.float32))
    from mobpose.models.convnextpose import normalize_images

    return {"image": normalize_images(np.stack(images)), "keypoints": kps, "labelled": labs, "defined": defs,
            "boxes": boxes}


def test_loss_is_finite_and_a_few_steps_lower_it():
    torch.manual_seed(0)
    m = create_model("rtmo_test")
    batch = _batch()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        loss, parts = rtmo_loss(m, batch)
        assert torch.isfinite(loss) and parts["positives"] > 0
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first
    empty = {**batch, "boxes": [b[:0] for b in batch["boxes"]], "keypoints": [k[:0] for k in batch["keypoints"]],
             "labelled": [x[:0] for x in batch["labelled"]], "defined": [x[:0] for x in batch["defined"]]}
    loss, parts = rtmo_loss(m, empty)  # images without people: the score loss alone
    assert torch.isfinite(loss) and parts["positives"] == 0


def test_detector_on_an_image(model, tmp_path):
    det = PeopleDetector(model, backend="torch", score_threshold=0.0, max_people=3)
    people = det(np.random.default_rng(0).integers(0, 256, (50, 90, 3), dtype=np.uint8))
    assert len(people) == 3 and people.keypoints.shape == (3, 17, 2)
    assert (people.boxes[:, [0, 2]] <= 90).all() and (people.boxes[:, [1, 3]] <= 50).all()
    assert (np.diff(people.scores) <= 0).all()
    for bad, what in ((np.zeros((50, 90), np.uint8), "uint8 \\(H, W, 3\\)"), (np.zeros((0, 9, 3), np.uint8), "empty"),
                      (np.zeros((5, 9, 3), np.float32), "uint8")):
        with pytest.raises(ValueError, match=what):
            det(bad)
    with pytest.raises(ValueError, match="backend"):
        PeopleDetector(model, backend="onnx")
    with pytest.raises(ValueError, match="RTMO"):
        PeopleDetector(create_model("poseresnet_test"), backend="torch")


def test_detector_from_a_file_tflite_and_torch_agree(model, tmp_path, monkeypatch):
    """A checkpoint file on both backends: the TFLite dense graph (exported into the cache) and the DCC's
    weights read with numpy from the file give the torch module's people."""
    pytest.importorskip("litert_torch")
    from mobpose import checkpoint as ck

    monkeypatch.setenv("MOBPOSE_CACHE_DIR", str(tmp_path / "cache"))
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(model.config).items()}
    path = ck.save(tmp_path / "rtmo.safetensors", model.state_dict(), model="rtmo_test", config=cfg)
    img = np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    a = PeopleDetector(str(path), backend="torch", score_threshold=0.0, max_people=4)(img)
    det = PeopleDetector(str(path), backend="tflite", score_threshold=0.0, max_people=4)
    b = det(img)
    assert det.backend == "tflite" and len(a) == len(b) >= 1
    np.testing.assert_allclose(b.boxes, a.boxes, atol=1e-3)
    np.testing.assert_allclose(b.keypoints, a.keypoints, atol=1e-2)


def test_decode_dense_matches_the_numpy_decoding(model):
    out = model(torch.randn(1, 3, 64, 64))
    dec = decode_dense(out, model.config, priors(64))
    cfg = dataclasses.asdict(model.config)
    w = {k[4:]: v.numpy() for k, v in model.state_dict().items() if k.startswith("dcc.")}
    people = postprocess(out[0].detach().numpy(), cfg, w, 64, score_threshold=0.0, nms_iou=1.0, max_people=100)
    best = int(dec["score"][0].argmax())
    np.testing.assert_allclose(people.boxes[0], dec["boxes"][0, best].detach().numpy(), rtol=1e-5, atol=1e-4)
