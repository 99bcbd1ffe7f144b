"""Stage 1 on a tiny configuration: the IPEM learns where a bright square is (L1 on coordinates)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mobpose import checkpoint as ck
from mobpose.train import TrainConfig
from mobpose.train.ipem_stage import collate_ipem, ipem_recipe, train_ipem


def _square_dataset(n: int, size: int = 64, cells: int = 8, seed: int = 0) -> list[dict]:
    """Images with one bright square; every joint's target is the square's heatmap cell (x, y, z=x)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = rng.normal(0, 0.1, (3, size, size)).astype(np.float32)
        cx, cy = rng.integers(1, cells - 1, 2)
        scale = size // cells
        img[:, cy * scale: (cy + 1) * scale, cx * scale: (cx + 1) * scale] += 2.0
        target = np.tile(np.array([cx + 0.5, cy + 0.5, cx + 0.5], np.float32), (18, 1))
        mask = np.ones((18, 3), np.float32)
        mask[:, 2] = 0  # z unknown: the loss must ignore it
        out.append({"image": img, "target": target - 0.5, "mask": mask})
    return out


def test_ipem_learns_a_square_position(tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = _square_dataset(64)
    train = TrainConfig(epochs=8, batch_size=16, lr=3e-3, weight_decay=0.0, schedule="constant")
    summary = train_ipem(str(tmp_path), data, model_name="convnextpose_test", model_kwargs={"softargmax_mode": "exact"},
                         train=train, progress=False)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    first = log[0]["train_loss"]
    assert summary["train_loss"] < 0.7 * first
    tensors, meta = ck.load(tmp_path / "last.safetensors", kind="training")
    assert meta["model"] == "convnextpose_test" and meta["training"]["run"]["stage"] == 1


def test_collate_and_recipe() -> None:
    images, targets, masks, facing = collate_ipem(_square_dataset(3))
    assert images.shape == (3, 3, 64, 64) and targets.shape == (3, 18, 3) and masks.shape == (3, 18, 3)
    r = ipem_recipe()
    assert (r.lr, r.weight_decay, r.warmup_epochs, r.min_lr, r.epochs) == (1e-3, 0.1, 5.0, 1e-6, 70)


# ---- stage 1 on the synthetic engine -------------------------------------------------------------


def _eval_set(n=6):
    from mobpose.data.cmu import load_cmu
    from mobpose.data.synthetic import EngineConfig
    from mobpose.data.synthetic.dataset import SyntheticPoseDataset, pose_pool

    return SyntheticPoseDataset(pose_pool(load_cmu(split="test")[:2]), n, seed=1, fixed=True, with_labels=True,
                                config=EngineConfig(augment=False))


class _Oracle(torch.nn.Module):
    """Returns the targets of the evaluation items in order (tests the decoding, not a network)."""

    heatmap_size = (32, 32, 32)

    def __init__(self, targets):
        super().__init__()
        self.targets = list(targets)

    def forward(self, images):
        out = torch.stack(self.targets[: len(images)])
        del self.targets[: len(images)]
        return out


def test_evaluate_ipem_decodes_targets_to_ground_truth():
    from mobpose.train.ipem_stage import evaluate_ipem

    ds = _eval_set()
    report = evaluate_ipem(_Oracle([ds[i]["target"] for i in range(len(ds))]), ds, batch_size=4)
    assert report["samples"] == 6
    assert report["mpjpe"] < 1.0 and report["pa_mpjpe"] < 1.0
    assert report["mean_pose_mpjpe"] > 50.0


def test_lr_separation_tells_hedging_from_telling_sides_apart():
    from mobpose.skeleton import H36M_17
    from mobpose.train.ipem_stage import lr_separation

    rng = np.random.default_rng(0)
    gt = rng.normal(0, 300, (5, 17, 3))
    assert lr_separation(gt, gt) == pytest.approx(1.0)
    assert lr_separation(H36M_17.flip(gt), gt) == pytest.approx(1.0)  # sides swapped, still apart
    hedged = (gt + gt[:, H36M_17.flip_indices]) / 2  # each pair on its midpoint
    assert lr_separation(hedged, gt) == pytest.approx(0.0, abs=1e-9)
    assert lr_separation(gt * 0.5, gt) == pytest.approx(0.5)


def test_run_ipem_trains_validates_and_resumes(tmp_path):
    import json

    from mobpose.train.ipem_stage import IPEMDataConfig, ipem_recipe, run_ipem

    data = IPEMDataConfig(samples_per_epoch=8, eval_samples=4, workers=1)
    out = tmp_path / "ipem"
    run_ipem(str(out), model_name="convnextpose_test", data=data, train=ipem_recipe(1, 4), progress=False)
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 2 and {"mpjpe", "pa_mpjpe", "mean_pose_mpjpe"} <= set(log[-1])
    assert (out / "best.safetensors").exists()
    summary = run_ipem(str(out), model_name="convnextpose_test", data=data, train=ipem_recipe(2, 4), progress=False)
    assert summary["steps"] == 4  # resumed after epoch 1, not restarted


def test_ipem_clips_feed_stage_two(tmp_path):
    """The IPEM run on rendered CMU clips (cached), then the PRM trained and evaluated on its outputs."""
    from mobpose.models import create_model
    from mobpose.train.ipem_stage import ipem_clips, load_clips, predict_clips, save_clips
    from mobpose.train.prm_stage import PRMDataConfig, train_prm

    model = create_model("convnextpose_test")
    clips = predict_clips(model, "train", cameras="random", views=2, max_sequences=1, progress=False)
    assert len(clips) == 2 and [c[2] for c in clips] == [0, 1]
    action, name, cam, clean, pred = clips[0]
    assert clean.shape == pred.shape and clean.shape[1:] == (17, 3)
    assert np.abs(clean[:, 0]).max() == 0 and np.isfinite(pred).all()
    assert not np.allclose(clips[0][3], clips[1][3])  # two cameras see the clip differently
    save_clips(str(tmp_path / "c.npz"), clips, {"x": 1})
    again, info = load_clips(str(tmp_path / "c.npz"))
    assert info == {"x": 1} and again[0][:3] == (action, name, cam)
    np.testing.assert_array_equal(again[0][4], pred)

    ckpt = tmp_path / "ipem.safetensors"
    ck.save(ckpt, {f"model.{k}": v for k, v in model.state_dict().items()}, model="convnextpose_test",
            config={k: list(v) if isinstance(v, tuple) else v for k, v in vars(model.config).items()}, kind="training")
    first = ipem_clips(str(ckpt), "train", str(tmp_path / "cache"), cameras="random", views=1, max_sequences=1,
                       progress=False)
    files = list((tmp_path / "cache").glob("ipem_train_*.npz"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    second = ipem_clips(str(ckpt), "train", str(tmp_path / "cache"), cameras="random", views=1, max_sequences=1,
                        progress=False)
    assert files[0].stat().st_mtime_ns == stamp  # read from the cache, not recomputed
    np.testing.assert_array_equal(first[0][4], second[0][4])
    # renders of the other kind of body are other clips (other joints even): never read from that cache
    spheres = ipem_clips(str(ckpt), "train", str(tmp_path / "cache"), cameras="random", views=1, max_sequences=1,
                         progress=False, bodies="spheres")
    assert len(list((tmp_path / "cache").glob("ipem_train_*.npz"))) == 2
    assert not np.allclose(spheres[0][3], first[0][3])

    data = PRMDataConfig(views=1, max_sequences=1, ipem=str(ckpt))
    summary = train_prm(str(tmp_path / "prm"), model_name="prm_test", data=data,
                        train=TrainConfig(epochs=1, batch_size=32), eval_sequences=1, val_stride=1, progress=False)
    assert "input_MPJPE" in summary and summary["final"]["input"]["MPJPE"] > 0
    assert len(list((tmp_path / "prm").glob("ipem_test_*.npz"))) == 1  # the 4 protocol cameras of 1 test clip
    run = ck.load(tmp_path / "prm" / "best.safetensors")[1]["training"]["run"]
    assert run["data"]["input"] == "ipem" and "noise" not in run["data"]

    # the mixed recipe: the IPEM's outputs and noisy ground truth at several noise levels, both protocols
    data = PRMDataConfig(views=1, max_sequences=1, ipem=str(ckpt), mix_noisy=True, noise_levels=(0.5, 2.0))
    summary = train_prm(str(tmp_path / "mixed"), model_name="prm_test", data=data,
                        train=TrainConfig(epochs=1, batch_size=32), eval_sequences=1, val_stride=1, progress=False)
    assert set(summary["final"]) == {"noisy_gt", "ipem"} and "mpjpe_ratio" in summary
    # the two protocols' inputs differ: the IPEM's outputs vs the noisy ground truth
    assert summary["final"]["ipem"]["input"]["MPJPE"] != summary["final"]["noisy_gt"]["input"]["MPJPE"]
    run = ck.load(tmp_path / "mixed" / "best.safetensors")[1]["training"]["run"]
    assert run["data"]["input"] == "ipem+noisy-gt" and run["data"]["noise_levels"] == [0.5, 2.0]
    with pytest.raises(ValueError, match="mix_noisy needs an IPEM"):
        PRMDataConfig(mix_noisy=True)
    with pytest.raises(ValueError, match="noise_levels"):
        PRMDataConfig(noise_levels=(-1.0,))


def test_noise_levels_scale_the_noise():
    from mobpose.data import EstimatorNoise, corrupt
    from mobpose.train.prm_stage import scaled_noise

    clean = np.zeros((200, 17, 3))
    small, large = (np.abs(corrupt(clean, np.random.default_rng(0), scaled_noise(EstimatorNoise(), s))).mean()
                    for s in (0.5, 2.0))
    assert 3.0 < large / small < 5.0  # the sizes scale by 4 (swaps of equal zeros change nothing)


def test_run_ipem_init_from_another_softargmax(tmp_path):
    """A Taylor fine-tune starts from an exact-softmax run's weights (another logit scale too)."""
    from mobpose.pretrained import model_from_file
    from mobpose.train.ipem_stage import IPEMDataConfig, ipem_recipe, run_ipem

    data = IPEMDataConfig(samples_per_epoch=4, eval_samples=2, workers=0)
    run_ipem(str(tmp_path / "exact"), model_name="convnextpose_test", softargmax="exact", data=data,
             train=ipem_recipe(1, 4), progress=False)
    start = tmp_path / "exact" / "last.safetensors"
    train = ipem_recipe(1, 4)
    from dataclasses import replace

    run_ipem(str(tmp_path / "taylor"), model_name="convnextpose_test", softargmax="taylor", data=data,
             train=replace(train, lr=1e-12, min_lr=1e-12, weight_decay=0.0), progress=False,
             model_kwargs={"logit_scale": 16.0}, init=str(start))
    a, b = model_from_file(str(start)), model_from_file(str(tmp_path / "taylor" / "last.safetensors"))
    assert b.softargmax_mode == "taylor" and b.config.logit_scale == 16.0
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        if p.is_floating_point() and "running" not in name:
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)  # lr ~ 0: the weights are the start's
    with pytest.raises(ValueError, match="do not fit"):
        run_ipem(str(tmp_path / "bad"), model_name="convnextpose_test", data=data, train=train, progress=False,
                 model_kwargs={"head_channels": 8}, init=str(start))


def test_facing_yaw_and_classes():
    """A person facing the camera has forward -Z (yaw pi); facing away, +Z (yaw 0); the sectors follow."""
    import math

    from mobpose.data.synthetic.scene import facing_yaw
    from mobpose.train.ipem_stage import facing_classes

    j = np.zeros((18, 3))
    j[:, 2] = 5000.0
    j[8, 1] = -500.0  # thorax above the pelvis (camera y points down)
    j[1, 0], j[4, 0] = -100.0, 100.0  # right hip on the image left, left hip on the image right: facing us
    assert abs(facing_yaw(j)) == pytest.approx(math.pi)
    j[1, 0], j[4, 0] = 100.0, -100.0  # seen from behind
    assert facing_yaw(j) == pytest.approx(0.0)
    yaws = torch.tensor([0.0, 0.3, 0.5, math.pi / 2, math.pi, -math.pi, -0.5])
    assert facing_classes(yaws, 8).tolist() == [0, 0, 1, 2, 4, 4, 7]


def test_run_ipem_with_a_facing_head_from_a_start_without_one(tmp_path):
    """--facing-loss: the head is trained next to the coordinates; a start without the head is accepted;
    asking for the loss without the head is an error."""
    from mobpose.pretrained import model_from_file
    from mobpose.train.ipem_stage import IPEMDataConfig, ipem_recipe, run_ipem

    data = IPEMDataConfig(samples_per_epoch=4, eval_samples=2, workers=0)
    run_ipem(str(tmp_path / "plain"), model_name="convnextpose_test", data=data, train=ipem_recipe(1, 4),
             progress=False)
    run_ipem(str(tmp_path / "facing"), model_name="convnextpose_test", data=data, train=ipem_recipe(1, 4),
             progress=False, model_kwargs={"facing_bins": 8}, facing_loss=1.0, heatmap_loss=0.5,
             init=str(tmp_path / "plain" / "last.safetensors"))
    model = model_from_file(str(tmp_path / "facing" / "last.safetensors"))
    heatmaps, facing = model.forward_train(torch.zeros(2, 3, 64, 64))
    assert facing.shape == (2, 8) and heatmaps.shape[:2] == (2, 18)
    from mobpose.train.ipem_stage import collate_labelled, evaluate_ipem, facing_classes, ipem_eval_set

    evalset = ipem_eval_set(model, 6)
    batch = collate_labelled([evalset[i] for i in range(6)])
    with torch.no_grad():
        hits = model.forward_train(batch["image"])[1].argmax(-1) == facing_classes(batch["facing"], 8)
    for flip in (False, True):  # the head reads the unflipped pass's features, in batches of 4 + 2
        got = evaluate_ipem(model, evalset, batch_size=4, flip_test=flip)["facing_accuracy"]
        assert got == pytest.approx(hits.float().mean().item())
    assert model_from_file(str(tmp_path / "plain" / "last.safetensors")).forward_train(
        torch.zeros(1, 3, 64, 64))[1] is None
    from mobpose.models import create_model

    with pytest.raises(ValueError, match="facing_bins"):
        create_model("convnextpose_test", facing_bins=-1)
    with pytest.raises(ValueError, match="facing head"):
        run_ipem(str(tmp_path / "bad"), model_name="convnextpose_test", data=data, train=ipem_recipe(1, 4),
                 progress=False, facing_loss=1.0)
