"""mobpose.infer and the `mobpose infer` command on real files: a clip of synthetic renders encoded
with OpenCV (mp4v .mp4), decoded back through infer; the CLI through a subprocess, with --render
checked to be a readable video of the expected frame count; bad input named with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import FRAMES
from mobpose.runtime import PoseResult, infer
from mobpose.runtime.render import VideoWriter


@pytest.fixture(scope="module")
def video(clip, tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    with VideoWriter(path, fps=25.0) as w:
        for im in clip[0]:
            w.write(im)
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mobpose.cli", *args], capture_output=True, text=True, timeout=600)


def test_infer_on_a_video_file_matches_the_decoded_frames(models, clip, video):
    ipem, prm, _ = models
    res = infer(video, model=ipem, prm=prm, backend="torch", bbox=clip[1], finder="none")
    assert len(res) == FRAMES and res.info["skipped"] == []
    assert res.info["fps"] == pytest.approx(25.0)
    np.testing.assert_allclose(np.diff(res.timestamps), 1 / 25.0, atol=2e-3)
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    cap.release()
    ref = infer(np.stack(frames), model=ipem, prm=prm, backend="torch", bbox=clip[1], finder="none")
    np.testing.assert_allclose(res.joints_3d, ref.joints_3d, atol=1e-4)
    assert np.isfinite(res.joints_3d_camera).all() and (res.joints_3d_camera[:, :, 2] > 0).all()


def test_cli_infer_writes_poses_and_a_rendered_video(models, clip, video, tmp_path):
    ipem, prm, _ = models
    out, render = tmp_path / "poses.json", tmp_path / "drawn.mp4"
    r = _cli("infer", str(video), "--out", str(out), "--render", str(render), "--model", ipem, "--prm", prm,
             "--backend", "torch", "--bbox", *map(str, clip[1]), "--no-progress")
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert f"{FRAMES} frames in" in last and "fps" in last and "ipem" in last and "prm" in last
    res = PoseResult.load(out)
    assert len(res) == FRAMES and res.info["backend"] == "torch"
    doc = json.loads(out.read_text())
    assert "units" in doc and doc["joint_names"][0] == "pelvis"
    cap = cv2.VideoCapture(str(render))
    assert cap.isOpened()
    count = 0
    while cap.read()[0]:
        count += 1
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    cap.release()
    assert count == FRAMES
    assert size[0] > clip[0].shape[2] and size[1] == clip[0].shape[1]  # the frame and the 3D view beside it


def test_cli_infer_on_one_image_renders_a_png(models, clip, tmp_path):
    ipem, prm, _ = models
    image = tmp_path / "person.png"
    cv2.imwrite(str(image), cv2.cvtColor(clip[0][0], cv2.COLOR_RGB2BGR))
    out, render = tmp_path / "pose.npz", tmp_path / "pose.png"
    r = _cli("infer", str(image), "--out", str(out), "--render", str(render), "--model", ipem, "--prm", "none",
             "--backend", "torch", "--no-progress")
    assert r.returncode == 0, r.stderr
    drawn = cv2.imread(str(render))
    assert drawn is not None and drawn.shape[0] == clip[0].shape[1]
    assert len(PoseResult.load(out)) == 1


@pytest.mark.parametrize("case", ["missing", "not_a_video", "empty_dir", "bad_backend", "bad_model", "bad_out"])
def test_cli_bad_input_is_named(models, tmp_path, case):
    ipem, prm, _ = models
    source, extra, expect = tmp_path / "missing.mp4", [], "missing.mp4"
    if case == "not_a_video":
        source = tmp_path / "notes.mp4"
        source.write_text("this is not a video")
        expect = "notes.mp4"
    elif case == "empty_dir":
        source = tmp_path / "frames"
        source.mkdir()
        expect = "frames"
    elif case in ("bad_backend", "bad_model", "bad_out"):
        source = tmp_path / "one.png"
        cv2.imwrite(str(source), np.zeros((32, 32, 3), np.uint8))
        extra, expect = {"bad_backend": (["--backend", "gpu"], "unknown backend 'gpu'"),
                         "bad_model": (["--model", "ipem-huge"], "ipem-huge"),
                         "bad_out": (["--out", str(tmp_path / "x.txt")], "x.txt")}[case]
    args = ["infer", str(source), "--out", str(tmp_path / "o.npz"), "--model", ipem, "--prm", prm,
            "--backend", "torch", "--no-progress", *extra]
    r = _cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "mobpose: error:" in r.stderr and expect in r.stderr and "Traceback" not in r.stderr
