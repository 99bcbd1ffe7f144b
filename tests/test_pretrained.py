"""Pretrained weights: export from training checkpoints, load by name or path, offline, verified by checksum."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

import mobpose
from mobpose import checkpoint as ck
from mobpose import pretrained
from mobpose.cli import main as cli_main
from mobpose.models import create_model, list_models
from mobpose.models.prm import config_dict

# fp16 storage rounds every weight to 11 significant bits (relative error <= 2^-11 ~ 4.9e-4). Through these tiny
# random networks the outputs then move by < 2e-3 of their largest magnitude (measured: 1e-5 ConvNeXtPose,
# 3.5e-4 PRM); differently initialised weights move them by more (checked in the test).
FP16_RTOL = 2e-3


def _perturbed(name: str, seed: int = 0) -> torch.nn.Module:
    """A registry model with random weights and BatchNorm statistics (so outputs depend on every tensor)."""
    torch.manual_seed(seed)
    model = create_model(name)
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if t.is_floating_point():
                t.add_(0.1 * torch.randn_like(t))
                if key.endswith("running_var"):
                    t.abs_().add_(0.5)
    return model.eval()


def _config(model: torch.nn.Module) -> dict:
    if hasattr(model.config, "parents"):
        return config_dict(model.config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(model.config).items()}


def _input(name: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if name.startswith("convnextpose"):
        return torch.randn(2, 3, 64, 64, generator=g)
    return 300.0 * torch.randn(2, 9, 17, 3, generator=g)  # prm_test: (B, T=9, J=17, 3) mm


def _training_checkpoint(path: Path, name: str, model: torch.nn.Module) -> Path:
    """A checkpoint as the training loop writes it: `model.` tensors, optimizer and RNG state."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors["optim.0.exp_avg"] = torch.zeros(3)
    tensors["rng.torch"] = torch.get_rng_state()
    training = {"epoch": 2, "batch": 0, "step": 40, "best": 1.5, "optimizer": {"param_groups": [], "state": {}},
                "run": {"stage": "test"}}
    return ck.save(path, tensors, model=name, config=_config(model), kind="training", training=training)


@pytest.fixture(params=["convnextpose_test", "prm_test"])
def trained(request, tmp_path: Path) -> tuple[str, torch.nn.Module, Path]:
    name = request.param
    model = _perturbed(name)
    return name, model, _training_checkpoint(tmp_path / f"{name}_last.safetensors", name, model)


@pytest.fixture
def shipped(tmp_path: Path) -> tuple[Path, Path, torch.nn.Module]:
    """A weights folder holding one exported convnextpose_test as 'tiny'; (folder, file, original model)."""
    model = _perturbed("convnextpose_test")
    src = _training_checkpoint(tmp_path / "last.safetensors", "convnextpose_test", model)
    folder = tmp_path / "weights"
    return folder, pretrained.export_weights(src, "tiny", description="a tiny test model", weights_dir=folder), model


@torch.no_grad()
def test_export_and_load_by_name_fp32(trained, tmp_path: Path) -> None:
    name, model, src = trained
    folder = tmp_path / "weights"
    path = pretrained.export_weights(src, "tiny", description="tiny", metrics={"MPJPE": 42.0}, weights_dir=folder)
    assert path == folder / "tiny.safetensors"
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "tiny.safetensors"]  # no temporary files
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "mobpose-weights-v1"
    entry = manifest["models"]["tiny"]
    assert entry == {"file": "tiny.safetensors", "sha256": pretrained.file_sha256(path), "bytes": path.stat().st_size,
                     "model": name, "description": "tiny", "card": "docs/MODELS.md#tiny", "dtype": "float32",
                     "metrics": {"MPJPE": 42.0}}
    tensors, meta = ck.load(path, kind="weights")  # only the model tensors, with its name and config
    assert set(tensors) == set(model.state_dict()) and meta["model"] == name and meta["config"] == _config(model)
    assert pretrained.list_pretrained(folder) == ["tiny"]
    assert pretrained.pretrained_info("tiny", folder)["path"] == str(path)

    loaded = pretrained.load_model("tiny", weights_dir=folder)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.config == model.config
    x = _input(name)
    assert torch.equal(loaded(x), model(x))
    assert pretrained.load_model("tiny", eval=False, weights_dir=folder).training


@torch.no_grad()
def test_fp16_export_loads_as_float32(trained, tmp_path: Path) -> None:
    name, model, src = trained
    full = pretrained.export_weights(src, "full", weights_dir=tmp_path)
    half = pretrained.export_weights(src, "half", dtype=torch.float16, weights_dir=tmp_path)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    tensors, _ = ck.load(half)
    assert {t.dtype for t in tensors.values() if t.is_floating_point()} == {torch.float16}
    assert pretrained.pretrained_info("half", tmp_path)["dtype"] == "float16"
    loaded = pretrained.load_model("half", weights_dir=tmp_path)
    assert {t.dtype for t in loaded.state_dict().values() if t.is_floating_point()} == {torch.float32}
    x = _input(name)
    ref, out = model(x), loaded(x)
    tol = FP16_RTOL * ref.abs().max()
    assert (out - ref).abs().max() <= tol
    assert (_perturbed(name, seed=1)(x) - ref).abs().max() > tol  # the tolerance tells other weights apart


@torch.no_grad()
def test_int8_export_is_smaller_and_within_half_a_step(trained, tmp_path: Path) -> None:
    from mobpose.safetensors_np import load_tensors

    name, model, src = trained
    full = pretrained.export_weights(src, "full", weights_dir=tmp_path)
    q8 = pretrained.export_weights(src, "q8", dtype="int8", weights_dir=tmp_path)
    assert q8.stat().st_size < 0.6 * full.stat().st_size  # the test models' small tensors stay float16
    assert pretrained.pretrained_info("q8", tmp_path)["dtype"] == "float16+int8 weights"
    tensors, _ = ck.load(q8)
    big = any(v.is_floating_point() and v.dim() >= 2 and v.numel() >= 1024 for v in model.state_dict().values())
    assert any(t.dtype == torch.int8 for t in tensors.values()) == big  # the small tensors stay float16
    loaded = pretrained.load_model("q8", weights_dir=tmp_path)
    for k, ref in model.state_dict().items():
        got = loaded.state_dict()[k]
        if ref.is_floating_point() and ref.dim() >= 2 and ref.numel() >= 1024:  # half a step of its channel's scale
            step = ref.abs().flatten(1).amax(1) / 127.0
            err = (got - ref).abs().flatten(1).amax(1)
            assert (err <= step * 0.5 * 1.01 + 1e-6).all(), k
    # numpy reads the same values (the runtime without torch)
    back = load_tensors(q8)
    for k, v in loaded.state_dict().items():
        if v.is_floating_point():
            assert abs(back[k] - v.numpy()).max() < 1e-6, k
    x = _input(name)
    assert (loaded(x) - model(x)).abs().max() > 0  # stored in 8 bits (or float16): not the same weights


@torch.no_grad()
def test_export_leaves_out_the_training_only_facing_head(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("convnextpose_test", facing_bins=8).eval()
    src = _training_checkpoint(tmp_path / "last.safetensors", "convnextpose_test", model)
    path = pretrained.export_weights(src, "faced", weights_dir=tmp_path / "w")
    tensors, meta = ck.load(path)
    assert meta["config"]["facing_bins"] == 0
    assert not any(k.startswith("facing.") for k in tensors) and any(k.startswith("facing.") for k in
                                                                         model.state_dict())
    loaded = pretrained.load_model("faced", weights_dir=tmp_path / "w")
    assert loaded.facing is None
    x = _input("convnextpose_test")
    assert torch.equal(loaded(x), model(x))  # the head never touches the poses


def test_softargmax_override(shipped) -> None:
    folder, _, _ = shipped
    model = pretrained.load_model("tiny", softargmax="exact", weights_dir=folder)
    assert model.softargmax_mode == "exact" and model.config.softargmax_mode == "exact"
    with pytest.raises(ValueError, match="softargmax must be one of"):
        pretrained.load_model("tiny", softargmax="nope", weights_dir=folder)


def test_softargmax_override_on_a_model_without_one(tmp_path: Path) -> None:
    src = _training_checkpoint(tmp_path / "prm.safetensors", "prm_test", _perturbed("prm_test"))
    with pytest.raises(ValueError, match="has no soft-argmax"):
        pretrained.load_model(src, softargmax="exact")


def test_unknown_name_lists_available(shipped) -> None:
    folder, _, _ = shipped
    pretrained.export_weights(folder / "tiny.safetensors", "tiny2", weights_dir=folder)
    with pytest.raises(ValueError, match=r"unknown pretrained model 'nope'; available: tiny, tiny2"):
        pretrained.load_model("nope", weights_dir=folder)
    with pytest.raises(ValueError, match="unknown pretrained model"):
        pretrained.pretrained_info("nope", folder)


def test_no_weights_installed(tmp_path: Path) -> None:
    assert pretrained.list_pretrained(tmp_path) == [] and pretrained.total_bytes(tmp_path / "none") == 0
    with pytest.raises(ValueError, match=r"available: none \(no pretrained weights are installed\)"):
        pretrained.load_model("tiny", weights_dir=tmp_path)


def test_missing_file_means_incomplete_install(shipped) -> None:
    folder, path, _ = shipped
    path.unlink()
    with pytest.raises(FileNotFoundError, match=r"tiny\.safetensors is missing; the mobpose install is incomplete"):
        pretrained.load_model("tiny", weights_dir=folder)


def _checksum_message(path: Path, expected: str) -> str:
    """A regex: the message names the file, the expected and the computed checksum, and the cause."""
    return (rf"{path.name}.*expected sha256 {expected}.*computed {pretrained.file_sha256(path)}"
            r".*corrupt or truncated")


def test_flipped_byte_in_tensor_data(shipped) -> None:
    folder, path, _ = shipped
    expected = pretrained.pretrained_info("tiny", folder)["sha256"]
    data = bytearray(path.read_bytes())
    header = int.from_bytes(data[:8], "little")  # safetensors: u64 header length, JSON header, tensor bytes
    data[8 + header + 100] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ck.CheckpointError, match=_checksum_message(path, expected)):
        pretrained.load_model("tiny", weights_dir=folder)


def test_truncated_file(shipped) -> None:
    folder, path, _ = shipped
    expected = pretrained.pretrained_info("tiny", folder)["sha256"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ck.CheckpointError, match=_checksum_message(path, expected)):
        pretrained.load_model("tiny", weights_dir=folder)


def test_manifest_with_wrong_sha(shipped) -> None:
    folder, path, _ = shipped
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["models"]["tiny"]["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ck.CheckpointError, match=_checksum_message(path, "0" * 64)):
        pretrained.load_model("tiny", weights_dir=folder)


def test_malformed_manifest(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"format": "other", "models": {}}')
    with pytest.raises(ValueError, match="not a mobpose weights manifest"):
        pretrained.list_pretrained(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": pretrained.MANIFEST_FORMAT, "models": {
        "x": {"file": "../x.safetensors", "sha256": "0", "bytes": 1, "model": "prm_test"}}}))
    with pytest.raises(ValueError, match="must be a plain file name"):
        pretrained.list_pretrained(tmp_path)


@torch.no_grad()
def test_load_by_path(shipped, tmp_path: Path) -> None:
    _, path, model = shipped
    x = _input("convnextpose_test")
    for source in (path, str(path), tmp_path / "last.safetensors", str(tmp_path / "last.safetensors")):
        loaded = pretrained.load_model(source)
        assert not loaded.training and torch.equal(loaded(x), model(x))
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        pretrained.load_model(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        pretrained.load_model("nope.safetensors", weights_dir=tmp_path)


def test_load_by_path_rejects_a_corrupt_file(shipped) -> None:
    _, path, _ = shipped
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ck.CheckpointError, match="checksum mismatch"):
        pretrained.load_model(path)


def test_export_replaces_the_entry_and_checks_names(shipped, tmp_path: Path) -> None:
    folder, path, _ = shipped
    other = _training_checkpoint(tmp_path / "other.safetensors", "convnextpose_test", create_model("convnextpose_test"))
    before = pretrained.pretrained_info("tiny", folder)["sha256"]
    pretrained.export_weights(other, "tiny", description="retrained", weights_dir=folder)
    info = pretrained.pretrained_info("tiny", folder)
    assert info["sha256"] != before and info["description"] == "retrained" and info["metrics"] == {}
    assert pretrained.list_pretrained(folder) == ["tiny"]
    assert pretrained.total_bytes(folder) == path.stat().st_size + (folder / "manifest.json").stat().st_size
    for bad in ("../x", "Tiny", "", "a b", "x.safetensors"):
        with pytest.raises(ValueError, match="pretrained name must match"):
            pretrained.export_weights(other, bad, weights_dir=folder)
    with pytest.raises(ValueError, match="floating torch dtype"):
        pretrained.export_weights(other, "x", dtype=torch.int8, weights_dir=folder)


def test_export_rejects_tensors_of_another_model(tmp_path: Path) -> None:
    model = _perturbed("prm_test")
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    src = ck.save(tmp_path / "bad.safetensors", tensors, model="convnextpose_test", config={}, kind="training",
                  training={})
    with pytest.raises(ck.CheckpointError, match="tensors do not match model 'convnextpose_test'"):
        pretrained.export_weights(src, "bad", weights_dir=tmp_path / "w")
    assert not (tmp_path / "w" / "bad.safetensors").exists()


def test_cli_export_and_list(shipped, tmp_path: Path, capsys) -> None:
    folder, _, _ = shipped
    src = str(tmp_path / "last.safetensors")
    assert cli_main(["weights", "export", src, "--name", "tiny_fp16", "--description", "half precision", "--fp16",
                     "--metrics", '{"MPJPE": 1.5}', "--weights-dir", str(folder)]) == 0
    assert "tiny_fp16.safetensors" in capsys.readouterr().out
    assert pretrained.pretrained_info("tiny_fp16", folder)["metrics"] == {"MPJPE": 1.5}
    assert cli_main(["weights", "list", "--weights-dir", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[1].split()[:2] == ["tiny_fp16", "convnextpose_test"] and lines[1].endswith("MB  half precision")
    assert cli_main(["weights", "export", src, "--name", "BAD", "--weights-dir", str(folder)]) == 2
    assert "pretrained name must match" in capsys.readouterr().err


def test_top_level_exports_are_lazy() -> None:
    assert mobpose.load_model is pretrained.load_model and mobpose.list_pretrained is pretrained.list_pretrained
    assert {"load_model", "list_pretrained"} <= set(mobpose.__all__)
    code = "import sys, mobpose; mobpose.list_pretrained(); assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_network_code() -> None:
    source = Path(pretrained.__file__).read_text()
    for word in ("urllib", "requests", "http", "socket", "download"):
        assert word not in source, word


def test_shipped_manifest() -> None:
    """The package's manifest: every listed file exists, matches its checksum and size, and loads."""
    path = pretrained.WEIGHTS_DIR / "manifest.json"
    assert path.is_file()
    manifest = json.loads(path.read_text())
    assert manifest["format"] == pretrained.MANIFEST_FORMAT and isinstance(manifest["models"], dict)
    assert pretrained.list_pretrained() == sorted(manifest["models"])
    for name, entry in manifest["models"].items():
        file = pretrained.WEIGHTS_DIR / entry["file"]
        assert file.is_file(), file
        assert file.stat().st_size == entry["bytes"] and pretrained.file_sha256(file) == entry["sha256"], name
        assert entry["model"] in list_models() and entry["card"].startswith("docs/MODELS.md#")
        assert isinstance(pretrained.load_model(name), torch.nn.Module)
    assert pretrained.total_bytes() <= 20 * 2**20 == pretrained.SIZE_BUDGET



def test_tracker_expand_comes_from_the_manifest():
    from mobpose.runtime.pipeline import tracker_expand

    if "ipem-mnv2" in pretrained.list_pretrained():
        assert tracker_expand("ipem-mnv2") == pretrained.pretrained_info("ipem-mnv2")["tracker_expand"] == 1.4
    assert tracker_expand("ipem-xs") == 1.2  # no entry: PoseTracker's own factor
    assert tracker_expand("runs/some/checkpoint.safetensors") == 1.2
