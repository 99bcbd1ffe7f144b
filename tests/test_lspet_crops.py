"""LSPET train crops as IPEM training items (2D targets only), the synthetic + LSPET mix, and a stage-1 run on
it (the data are read from ../shared/data/lspet or MOBPOSE_LSPET_DIR)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mobpose import lspet
from mobpose.data.synthetic import EngineConfig
from mobpose.skeleton import H36M_18

try:
    lspet.load()
except FileNotFoundError as exc:  # pragma: no cover - the data are beside the repository here
    pytest.skip(str(exc), allow_module_level=True)

from mobpose.data.lspet_crops import LSPETCropDataset, MixedIPEMDataset  # noqa: E402

PLAIN = EngineConfig(crop_size=64, heatmap_size=(8, 16, 16), scale_aug=0.0, rot_prob=0.0, shift=0.0, colour=0.0,
                     occlusion_prob=0.0, blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.0, mirror_prob=0.0)


def test_items_supervise_x_and_y_of_labelled_joints_only():
    ds = LSPETCropDataset(16, seed=3, config=dataclasses.replace(PLAIN, augment=False))
    names18 = list(H36M_18.joint_names)
    for i in range(16):
        s = ds.sample(i)
        assert s["crop"].shape == (64, 64, 3) and s["crop"].dtype == np.uint8
        assert s["row"] < 9000, "a val row was drawn for training"
        assert (s["mask"][:, 2] == 0).all()  # no depth
        for name in ("pelvis", "spine", "neck_nose", "thorax_mid"):
            assert (s["mask"][names18.index(name)] == 0).all()
        kept = s["mask"][:, 0] > 0
        assert kept.sum() >= 6
        assert ((s["target"][kept, :2] >= 0) & (s["target"][kept, :2] <= 15)).all()
        # the labelled joints land where the crop's affine sends them (heatmap units = crop px * 16 / 64)
        lab = ds.joints[s["row"]]
        uv = lab[:, :2] @ s["crop_affine"][:2, :2].T + s["crop_affine"][:2, 2]
        for j, n in enumerate(lspet.H36M_OF_LSP):
            k = names18.index(lspet.H36M_OF_LSP[n])
            if s["mask"][k, 0]:
                np.testing.assert_allclose(s["target"][k, :2], uv[j] / 4, atol=1e-4)
    item = ds[0]
    assert set(item) == {"image", "target", "mask", "facing"} and np.isnan(float(item["facing"]))
    assert tuple(item["image"].shape) == (3, 64, 64)


def test_a_mirrored_item_is_the_flipped_crop_with_left_and_right_swapped():
    plain = LSPETCropDataset(4, seed=5, config=PLAIN)
    mirrored = LSPETCropDataset(4, seed=5, config=dataclasses.replace(PLAIN, mirror_prob=1.0))
    flip = H36M_18.flip_indices
    for i in range(4):
        a, b = plain.sample(i), mirrored.sample(i)
        assert a["row"] == b["row"] and b["mirrored"] and not a["mirrored"]
        assert np.abs(b["crop"].astype(int) - a["crop"][:, ::-1].astype(int)).max() <= 1
        np.testing.assert_array_equal(b["mask"], a["mask"][flip])
        keep = b["mask"][:, 0] > 0
        want_x = (63 - a["target"][flip, 0] * 4) / 4  # heatmap x of the mirrored pixel
        np.testing.assert_allclose(b["target"][keep, 0], want_x[keep], atol=1e-4)
        np.testing.assert_allclose(b["target"][keep, 1], a["target"][flip][keep, 1], atol=1e-4)


def test_the_mix_draws_lspet_items_at_the_fraction():
    real = LSPETCropDataset(8, config=PLAIN)
    fake = [{"image": None, "synthetic": i} for i in range(400)]
    mix = MixedIPEMDataset(fake, real, 0.25, seed=1)
    share = np.mean([mix.is_real(i) for i in range(400)])
    assert 0.18 < share < 0.32
    mix.set_epoch(1)
    assert real.epoch == 1
    with pytest.raises(ValueError, match="fraction"):
        MixedIPEMDataset(fake, real, 0.0)


def test_run_ipem_on_the_mix(tmp_path):
    import json

    from mobpose.train.ipem_stage import IPEMDataConfig, ipem_recipe, run_ipem

    data = IPEMDataConfig(samples_per_epoch=8, eval_samples=4, workers=1, lspet_fraction=0.5)
    out = tmp_path / "ipem"
    run_ipem(str(out), model_name="convnextpose_test", data=data, train=ipem_recipe(1, 4), progress=False,
             model_kwargs={"facing_bins": 8}, heatmap_loss=1.0, facing_loss=1.0)
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 2 and np.isfinite(log[-1]["mpjpe"]) and np.isfinite(log[-1]["train_loss"])
    # the 8 items of that epoch held real photos (NaN facing) beside renders, and the loss stayed finite
    mix = MixedIPEMDataset(list(range(8)), LSPETCropDataset(8, config=PLAIN), 0.5, seed=0)
    mix.set_epoch(0)
    assert 0 < sum(mix.is_real(i) for i in range(8)) < 8
