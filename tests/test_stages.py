"""Stage-2 PRM and lifter recipes on tiny configurations, through the library and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mobpose.models import create_model
from mobpose.train import TrainConfig
from mobpose.train.lifter_stage import LifterDataConfig, lift_clip, load_lifter, train_lifter
from mobpose.train.prm_stage import PRMDataConfig, evaluate_prm, load_prm, protocol_set, refine_clip, train_prm

TINY = TrainConfig(epochs=1, batch_size=16, lr=1e-3, weight_decay=0.0, schedule="constant")
METRICS = {"MPJPE", "P-MPJPE", "PA-MPJPE", "N-MPJPE", "MPJVE"}


def test_prm_stage_trains_evaluates_and_reloads(tmp_path: Path) -> None:
    summary = train_prm(str(tmp_path), model_name="prm_test", data=PRMDataConfig(max_sequences=2, views=1),
                        train=TINY, eval_sequences=1, progress=False)
    assert summary["steps"] > 0 and np.isfinite(summary["refined_MPJPE"])
    assert summary["input_MPJPE"] > 20  # the noise model's error is present in the input
    model = load_prm(str(tmp_path / "best.safetensors"))
    report = evaluate_prm(model, protocol_set(max_sequences=1))
    assert set(report) == {"basketball", "all"}
    assert set(report["all"]) == {"input", "refined"} and set(report["all"]["input"]) == METRICS
    assert report["all"]["refined"]["MPJPE"] == pytest.approx(summary["final"]["refined"]["MPJPE"], rel=1e-6)
    assert json.loads((tmp_path / "report.json").read_text())["all"] == summary["final"]


def test_refine_clip_is_causal_and_handles_short_clips() -> None:
    model = create_model("prm_test", causal=True).eval()
    with torch.no_grad():
        for p in model.head.parameters():
            p.normal_(std=0.1)
    clip = np.random.default_rng(0).normal(0, 200, (5, 17, 3)).astype(np.float32)  # shorter than T = 9
    out = refine_clip(model, clip)
    assert out.shape == clip.shape
    changed = clip.copy()
    changed[3:] += 100
    np.testing.assert_allclose(refine_clip(model, changed)[:3], out[:3], atol=1e-3)


def test_lifter_stage_trains_and_lifts(tmp_path: Path) -> None:
    summary = train_lifter(str(tmp_path), model_name="videopose3d_test", model_kwargs={"channels": 16},
                           data=LifterDataConfig(max_sequences=2, views=1), train=TINY, eval_sequences=1,
                           progress=False)
    assert summary["steps"] > 0 and np.isfinite(summary["noisy-2d_MPJPE"])
    assert set(summary["final"]) == {"gt-2d", "noisy-2d"}
    model = load_lifter(str(tmp_path / "best.safetensors"))
    out = lift_clip(model, np.zeros((4, 17, 2), dtype=np.float32))  # shorter than the receptive field
    assert out.shape == (4, 17, 3) and np.all(out[:, 0] == 0)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mobpose.cli", *args], capture_output=True, text=True, timeout=300)


def test_cli_train_then_eval_prm(tmp_path: Path) -> None:
    run = _cli("train", "prm", "--out", str(tmp_path), "--model", "prm_test", "--max-sequences", "2", "--views", "1",
               "--epochs", "1", "--batch-size", "16", "--eval-sequences", "1")
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.strip().splitlines()[-1])["steps"] > 0
    ev = _cli("eval", "prm", str(tmp_path / "best.safetensors"), "--eval-sequences", "1",
              "--json", str(tmp_path / "r.json"))
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert "protocol CMU-17" in ev.stdout and "P-MPJPE" in ev.stdout
    assert json.loads((tmp_path / "r.json").read_text())["all"]["refined"]["MPJPE"] > 0


def test_cli_reports_bad_checkpoints(tmp_path: Path) -> None:
    missing = _cli("eval", "prm", str(tmp_path / "none.safetensors"))
    assert missing.returncode == 2 and "none.safetensors does not exist" in missing.stderr
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    corrupt = _cli("eval", "lifter", str(bad))
    assert corrupt.returncode == 2 and "bad.safetensors" in corrupt.stderr
    assert "Traceback" not in corrupt.stderr


def test_cli_eval_on_a_users_h36m_file(tmp_path: Path) -> None:
    """A small file in the VideoPose3D data_3d_h36m.npz format (metres, 32 joints) for S9 and S11."""
    from mobpose.data import load_cmu

    walk = load_cmu(split="test", actions=["walking"])[0].positions[:200]  # mm, Z up
    joints32 = np.zeros((len(walk), 32, 3), np.float32)
    kept = [i for i in range(32) if i not in (4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31)]
    joints32[:, kept] = walk / 1000.0
    np.savez_compressed(tmp_path / "data_3d_h36m.npz",
                        positions_3d={"S9": {"Walking 1": joints32}, "S11": {"Walking": joints32[:150]}})
    run = _cli("train", "prm", "--out", str(tmp_path / "run"), "--model", "prm_test", "--max-sequences", "1",
               "--views", "1", "--epochs", "1", "--batch-size", "16", "--eval-sequences", "1")
    assert run.returncode == 0, run.stderr[-2000:]
    ev = _cli("eval", "prm", str(tmp_path / "run" / "last.safetensors"),
              "--h36m-3d", str(tmp_path / "data_3d_h36m.npz"))
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert "H36M-17v" in ev.stdout and "Walking" in ev.stdout


@pytest.mark.parametrize("unlabelled", ["semi", "drop"])
def test_lifter_semi_supervised_option(tmp_path: Path, unlabelled: str) -> None:
    data = LifterDataConfig(max_sequences=4, views=1, labelled_fraction=0.5, unlabelled=unlabelled)
    summary = train_lifter(str(tmp_path), model_name="videopose3d_test", model_kwargs={"channels": 16}, data=data,
                           train=TINY, eval_sequences=1, progress=False)
    assert summary["steps"] > 0 and np.isfinite(summary["gt-2d_MPJPE"])
    from mobpose import checkpoint as ck

    tensors, meta = ck.load(tmp_path / "last.safetensors")
    has_trajectory = any(k.startswith("model.trajectory.") for k in tensors)
    assert has_trajectory == (unlabelled == "semi")
    assert meta["training"]["run"]["data"]["labelled_fraction"] == 0.5
    model = load_lifter(str(tmp_path / "last.safetensors"))  # the pose model alone
    assert model.num_joints_out == 17
    with pytest.raises(ValueError, match="labelled_fraction"):
        LifterDataConfig(labelled_fraction=0.0)


def test_cli_eval_lifter_on_users_h36m_2d_and_cameras(tmp_path: Path) -> None:
    """Small files in the VideoPose3D formats (3D, 2D per camera) plus camera parameters as JSON."""
    from mobpose.data import h36m_cameras, h36m_views, load_cmu

    walk = load_cmu(split="test", actions=["walking"])[0].positions[:240]
    walk = walk - [walk[:, 0, 0].mean(), walk[:, 0, 1].mean(), 0]  # centre the clip under the cameras
    joints32 = np.zeros((len(walk), 32, 3), np.float32)
    kept = [i for i in range(32) if i not in (4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31)]
    joints32[:, kept] = walk / 1000.0
    np.savez_compressed(tmp_path / "d3.npz",
                        positions_3d={"S9": {"Walking 1": joints32}, "S11": {"Walking": joints32}})
    # One camera 5 m away along -Y looking at +Y (camera X = world X, camera Y = -world Z, camera Z = world Y).
    r_cam_to_world = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float)  # columns: camera axes in world
    w = np.sqrt(1 + np.trace(r_cam_to_world)) / 2
    r = r_cam_to_world
    q = [w, (r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w), (r[1, 0] - r[0, 1]) / (4 * w)]
    params = {"intrinsics": [{"id": "c1", "center": [500, 500], "focal_length": [1150, 1150],
                              "radial_distortion": [0, 0, 0], "tangential_distortion": [0, 0], "res_w": 1000,
                              "res_h": 1000}],
              "extrinsics": {s: [{"orientation": q, "translation": [0, -5000, 1000]}] for s in ("S9", "S11")}}
    (tmp_path / "cams.json").write_text(json.dumps(params))
    cam = h36m_cameras(params)["S9"][0]
    kp = h36m_views(walk, cam).keypoints_2d
    assert np.isfinite(kp).all() and (kp > 0).all() and (kp < 1000).all()  # the person is in view
    np.savez_compressed(tmp_path / "d2.npz", positions_2d={"S9": {"Walking 1": [kp]}, "S11": {"Walking": [kp]}},
                        metadata={"num_joints": 17})
    run = _cli("train", "lifter", "--out", str(tmp_path / "run"), "--model", "videopose3d_test", "--channels", "16",
               "--max-sequences", "2", "--views", "1", "--epochs", "1", "--batch-size", "16", "--eval-sequences", "1")
    assert run.returncode == 0, run.stderr[-2000:]
    args = ["--h36m-3d", str(tmp_path / "d3.npz"), "--h36m-2d", str(tmp_path / "d2.npz"),
            "--h36m-cameras", str(tmp_path / "cams.json"), "--json", str(tmp_path / "r.json")]
    ev = _cli("eval", "lifter", str(tmp_path / "run" / "last.safetensors"), *args)
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert "your 2D and cameras" in ev.stdout and "h36m-2d" in ev.stdout
    assert np.isfinite(json.loads((tmp_path / "r.json").read_text())["all"]["h36m-2d"]["MPJPE"])
    lone = _cli("eval", "lifter", str(tmp_path / "run" / "last.safetensors"), "--h36m-2d", str(tmp_path / "d2.npz"))
    assert lone.returncode == 2 and "go together" in lone.stderr
