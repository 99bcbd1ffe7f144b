"""The training loop: learning, schedules, exact resume after an interruption, DDP with 2 processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mobpose import checkpoint as ck
from mobpose.train import TrainConfig, lr_at

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
import toy_train  # noqa: E402


def test_it_learns(tmp_path: Path) -> None:
    model = toy_train.run(str(tmp_path), epochs=25, lr=0.1)
    torch.testing.assert_close(model.weight.detach(), torch.tensor([[1.0, -2.0, 0.5, 3.0]]), atol=0.05, rtol=0)
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len(lines) == 25  # one record per epoch


def test_resume_gives_the_same_weights(tmp_path: Path) -> None:
    straight = toy_train.run(str(tmp_path / "a"))
    toy_train.run(str(tmp_path / "b"), max_steps=5)  # "killed" after 5 steps (mid-epoch)
    tensors, meta = ck.load(tmp_path / "b" / "last.safetensors", kind="training")
    assert meta["training"]["step"] == 5 and meta["training"]["batch"] == 5
    resumed = toy_train.run(str(tmp_path / "b"))
    torch.testing.assert_close(resumed.weight, straight.weight, atol=1e-6, rtol=0)


def test_corrupt_checkpoint_is_reported(tmp_path: Path) -> None:
    toy_train.run(str(tmp_path), max_steps=3)
    last = tmp_path / "last.safetensors"
    last.write_bytes(last.read_bytes()[:100])
    with pytest.raises(ck.CheckpointError, match="last.safetensors"):
        toy_train.run(str(tmp_path))


def test_schedules() -> None:
    cos = TrainConfig(epochs=10, lr=1.0, min_lr=0.0, warmup_epochs=2)
    assert lr_at(cos, 1.0) == pytest.approx(0.5, abs=1e-3)  # half-way through warm-up
    assert lr_at(cos, 2.0) == pytest.approx(1.0)
    assert lr_at(cos, 6.0) == pytest.approx(0.5)
    assert lr_at(cos, 10.0) == pytest.approx(0.0, abs=1e-9)
    exp = TrainConfig(epochs=10, lr=1.0, schedule="exponential", decay=0.5)
    assert lr_at(exp, 2.5) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)


def test_two_process_ddp_matches_one_process(tmp_path: Path) -> None:
    single = toy_train.run(str(tmp_path / "single"))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # --standalone: a local rendezvous on a free port chosen by torchrun itself.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(Path(__file__).parent / "helpers" / "toy_train.py"), str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tensors, _ = ck.load(tmp_path / "ddp" / "last.safetensors", kind="training")
    # Each rank takes half of every global batch of 8 and DDP averages the gradients: the same updates.
    torch.testing.assert_close(tensors["model.weight"], single.weight.detach(), atol=1e-5, rtol=0)
