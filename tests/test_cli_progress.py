"""`mobpose eval` shows a progress bar over its clips / batches, `mobpose export` logs each of its steps."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from mobpose import checkpoint as ck
from mobpose import cli
from mobpose.models import create_model


def _save(model: torch.nn.Module, name: str, config: dict, path: Path) -> Path:
    return ck.save(path, {f"model.{k}": v for k, v in model.state_dict().items()}, model=name, config=config,
                   kind="training")


def _prm(tmp_path: Path) -> Path:
    from mobpose.models.prm import config_dict

    torch.manual_seed(0)
    model = create_model("prm_test", causal=True)
    return _save(model, "prm_test", config_dict(model.config), tmp_path / "prm.safetensors")


def test_eval_prm_shows_progress_over_the_clips(tmp_path: Path, capsys) -> None:
    assert cli.main(["eval", "prm", str(_prm(tmp_path)), "--eval-sequences", "1"]) == 0
    out, err = capsys.readouterr()
    assert "PRM on clips" in err and "/4 " in err  # 1 sequence x 4 protocol cameras
    assert "PRM on clips" not in out and "P-MPJPE" in out


def test_eval_lifter_shows_progress_over_the_clips(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    model = create_model("videopose3d_test")
    path = _save(model, "videopose3d_test", model.config, tmp_path / "lifter.safetensors")
    assert cli.main(["eval", "lifter", str(path), "--eval-sequences", "1"]) == 0
    out, err = capsys.readouterr()
    assert "lifter on clips" in err and "/4 " in err and "MPJPE" in out


def test_eval_ipem_shows_progress_over_the_batches(tmp_path: Path, capsys) -> None:
    from mobpose.train.ipem_stage import _jsonable

    torch.manual_seed(0)
    model = create_model("convnextpose_test")
    path = _save(model, "convnextpose_test", _jsonable(asdict(model.config)), tmp_path / "ipem.safetensors")
    assert cli.main(["eval", "ipem", str(path), "--samples", "2"]) == 0
    out, err = capsys.readouterr()
    assert "IPEM on renders" in err and "/1 " in err
    assert json.loads(out.strip().splitlines()[-1])["samples"] == 2


class _Report:
    ok = True

    def to_dict(self) -> dict:
        return {"ok": True, "ops": ["FULLY_CONNECTED"], "max_rank": 2}


@pytest.mark.parametrize("step", [False, True])
def test_export_logs_each_step(tmp_path: Path, monkeypatch, caplog, capsys, step: bool) -> None:
    """The conversion itself (litert-torch, minutes) is replaced: this checks what the command says."""
    from mobpose.export import check, tflite

    calls = []

    def convert(module, inputs, path, signature, fp16=False):
        calls.append("convert")
        Path(path).write_bytes(b"\0" * 64)
        return Path(path)

    monkeypatch.setattr(tflite, "convert_module", convert)
    monkeypatch.setattr(tflite, "write_metadata", lambda path, meta: calls.append("metadata"))
    monkeypatch.setattr(check, "check_gpu_compat", lambda path: calls.append("check") or _Report())
    prm = _prm(tmp_path)
    out = tmp_path / "m.tflite"
    argv = ["export", str(prm), "--out", str(out)]
    if step:
        ipem = create_model("convnextpose_test")
        from mobpose.train.ipem_stage import _jsonable

        ipem_path = _save(ipem, "convnextpose_test", _jsonable(asdict(ipem.config)), tmp_path / "ipem.safetensors")
        argv = ["export", str(ipem_path), "--prm", str(prm), "--out", str(out)]
    caplog.set_level(logging.INFO, logger="mobpose.nothing")  # captures INFO records, sets no mobpose level
    mobpose_log = logging.getLogger("mobpose")
    level = mobpose_log.level
    mobpose_log.setLevel(logging.WARNING)  # as without -v; the export command shows its steps anyway
    try:
        assert cli.main(argv) == 0
    finally:
        mobpose_log.setLevel(level)
    assert calls == ["convert", "metadata", "check"]
    steps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("export: ")]
    assert [s.split()[1] for s in steps] == ["loading", "converting", "writing", "checking", str(out) + ","], steps
    assert "metadata" in steps[2] and "GPU check passed" in steps[4]
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["gpu_check_ok"] is True
    assert logging.getLogger("mobpose.export").level == logging.NOTSET  # restored after the command
