"""Training runs are repeatable: the same seed gives the same weights (the model is built after seeding),
another seed other weights; and a run folder's stale checkpoint temporaries are removed when a run starts."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mobpose import checkpoint as ck
from mobpose.train import TrainConfig
from mobpose.train.ipem_stage import train_ipem
from mobpose.train.lifter_stage import LifterDataConfig, train_lifter
from mobpose.train.prm_stage import PRMDataConfig, train_prm

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
import toy_train  # noqa: E402


def _tiny(seed: int) -> TrainConfig:
    return TrainConfig(epochs=1, batch_size=8, lr=1e-3, weight_decay=0.0, schedule="constant", seed=seed,
                       max_steps=2)


def _squares(n: int = 16, size: int = 64) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        img = rng.normal(0, 0.1, (3, size, size)).astype(np.float32)
        cx, cy = rng.integers(1, 7, 2)
        img[:, cy * 8: (cy + 1) * 8, cx * 8: (cx + 1) * 8] += 2.0
        out.append({"image": img, "target": np.tile(np.array([cx, cy, cx], np.float32), (18, 1))})
    return out


def _run(stage: str, out: Path, seed: int) -> None:
    if stage == "prm":
        train_prm(str(out), model_name="prm_test", data=PRMDataConfig(max_sequences=1, views=1, seed=seed),
                  train=_tiny(seed), eval_sequences=1, progress=False)
    elif stage == "lifter":
        train_lifter(str(out), model_name="videopose3d_test", model_kwargs={"channels": 16},
                     data=LifterDataConfig(max_sequences=1, views=1, seed=seed), train=_tiny(seed), eval_sequences=1,
                     progress=False)
    else:
        train_ipem(str(out), _squares(), model_name="convnextpose_test", model_kwargs={"softargmax_mode": "exact"},
                   train=_tiny(seed), progress=False)


def _weights(out: Path) -> dict[str, torch.Tensor]:
    tensors, _ = ck.load(out / "last.safetensors", kind="training")
    return {k: v for k, v in tensors.items() if k.startswith("model.")}


@pytest.mark.parametrize("stage", ["prm", "lifter", "ipem"])
def test_same_seed_same_weights_other_seed_other_weights(tmp_path: Path, stage: str) -> None:
    torch.manual_seed(123)  # whatever the global RNG holds before a run must not matter
    _run(stage, tmp_path / "a", seed=3)
    torch.rand(17)  # the global RNG moved on: a second run in the same process starts elsewhere
    _run(stage, tmp_path / "b", seed=3)
    _run(stage, tmp_path / "c", seed=4)
    a, b, c = _weights(tmp_path / "a"), _weights(tmp_path / "b"), _weights(tmp_path / "c")
    assert a.keys() == b.keys() == c.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0, msg=f"{stage} seed 3 twice: {k} differs")
    assert any(not torch.equal(a[k], c[k]) for k in a), f"{stage}: seeds 3 and 4 gave the same weights"


def test_stale_checkpoint_temporaries_are_removed_at_start(tmp_path: Path, caplog) -> None:
    toy_train.run(str(tmp_path), max_steps=3)  # a run "killed" after step 3
    snapshot = tmp_path / "step3.safetensors"  # a real checkpoint the resumed run does not write
    snapshot.write_bytes((tmp_path / "last.safetensors").read_bytes())
    before = snapshot.read_bytes()
    stale = [tmp_path / ".last.safetensors.k2j4x9_a.tmp", tmp_path / ".best.safetensors.0q8zz1.tmp"]
    for p in stale:
        p.write_bytes(b"\x00" * 1000)  # what a write killed mid-way leaves
    keep = [tmp_path / "notes.tmp", tmp_path / ".other.npz.abc.tmp"]
    for p in keep:
        p.write_text("not a checkpoint temporary")
    nested = tmp_path / "sub"
    nested.mkdir()
    (nested / ".last.safetensors.abc.tmp").write_bytes(b"x")  # another run's folder: not this run's
    with caplog.at_level(logging.INFO, logger="mobpose"):
        toy_train.run(str(tmp_path))  # resumes at step 3 and runs to the end
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep) and (nested / ".last.safetensors.abc.tmp").exists()
    assert snapshot.read_bytes() == before
    assert ck.load(tmp_path / "last.safetensors", kind="training")[1]["training"]["step"] == 32  # 4 epochs x 8
    assert any("stale" in r.getMessage() and ".last.safetensors.k2j4x9_a.tmp" in r.getMessage()
               for r in caplog.records)
    # a fresh run folder with only temporaries in it starts cleanly too
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / ".last.safetensors.zz.tmp").write_bytes(b"\x00" * 10)
    toy_train.run(str(fresh), max_steps=2)
    assert not list(fresh.glob(".*.tmp")) and (fresh / "last.safetensors").exists()
