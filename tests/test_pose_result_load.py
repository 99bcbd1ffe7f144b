"""PoseResult.load: what save wrote comes back; every bad file is a ValueError naming the file and the problem."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mobpose import H36M_17
from mobpose.runtime.infer import PoseResult

N, J = 4, 17


def _result() -> PoseResult:
    rng = np.random.default_rng(0)
    return PoseResult(
        joints_3d=rng.normal(0, 300, (N, J, 3)).astype(np.float32),
        joints_3d_ipem=rng.normal(0, 300, (N, J, 3)).astype(np.float32),
        joints_3d_camera=rng.normal(0, 300, (N, J, 3)).astype(np.float32),
        joints_2d=rng.uniform(0, 640, (N, J, 2)).astype(np.float32),
        confidence=rng.uniform(0, 1, (N, J)).astype(np.float32),
        boxes=np.tile(np.array([10, 20, 200, 400], np.float32), (N, 1)),
        timestamps=np.arange(N) / 30.0, frame_indices=np.arange(N), root_depths=np.full(N, 4000.0, np.float32),
        joint_names=tuple(H36M_17.joint_names), info={"frames": N, "backend": "torch"})


def _fails(path: Path, *problem: str) -> None:
    with pytest.raises(ValueError) as exc:
        PoseResult.load(path)
    msg = str(exc.value)
    assert str(path) in msg, msg
    for p in problem:
        assert re.search(p, msg), f"{p!r} not in {msg!r}"


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    res = _result()
    back = PoseResult.load(res.save(tmp_path / f"p{suffix}"))
    np.testing.assert_allclose(back.joints_3d, res.joints_3d)
    np.testing.assert_array_equal(back.frame_indices, res.frame_indices)
    assert back.joint_names == res.joint_names and back.info == res.info and len(back) == N


def test_truncated_npz(tmp_path: Path) -> None:
    path = _result().save(tmp_path / "p.npz")
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 10, 0):
        path.write_bytes(data[:cut])
        _fails(path, "npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    path.write_bytes((tmp_path / "one.npy").read_bytes())  # an .npy array named .npz
    _fails(path, "npy")
    path.write_bytes(b"\x80\x04garbage that is no zip")
    _fails(path, "npz")


def test_npz_member_corrupt_or_missing(tmp_path: Path) -> None:
    path = _result().save(tmp_path / "p.npz")
    arrays = dict(np.load(path))
    buf = io.BytesIO()
    np.savez(buf, **{k: v for k, v in arrays.items() if k != "confidence"})
    path.write_bytes(buf.getvalue())
    _fails(path, "confidence", "missing")
    np.savez(path, **{**arrays, "info": np.array("{not json")})
    _fails(path, "info")
    np.savez(path, **{**arrays, "joints_2d": np.zeros((N, J, 3), np.float32)})
    _fails(path, "joints_2d", r"\(4, 17, 3\)")
    np.savez(path, **{**arrays, "boxes": np.zeros((N + 1, 4), np.float32)})
    _fails(path, "boxes")
    np.savez(path, **{**arrays, "joints_3d": np.array(["a"] * 3)})
    _fails(path, "joints_3d")
    np.savez(path, **{**arrays, "joint_names": np.array(["pelvis"])})
    _fails(path, "joint_names")
    # an object array (would need pickle: refused, not executed)
    np.savez(path, **{**arrays, "timestamps": np.array([{"a": 1}] * N, dtype=object)})
    _fails(path, "timestamps")
    # a zip whose member is cut short
    full = tmp_path / "full.npz"
    _result().save(full)
    with zipfile.ZipFile(full) as z:
        members = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for n, b in members.items():
            z.writestr(n, b[: len(b) // 2] if n.startswith("joints_3d.") else b)
    _fails(path, "joints_3d")


def test_garbage_and_malformed_json(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text("{this is not json")
    _fails(path, "JSON")
    path.write_bytes(b"\xff\xfe\x00garbage")
    _fails(path, "JSON|UTF-8")
    text = _result().save(tmp_path / "whole.json").read_text()
    path.write_text(text[: len(text) // 2])  # truncated
    _fails(path, "JSON")
    path.write_text("[1, 2, 3]")
    _fails(path, "object")
    doc = json.loads(_result().save(tmp_path / "good.json").read_text())
    path.write_text(json.dumps({k: v for k, v in doc.items() if k != "joints_2d"}))
    _fails(path, "joints_2d", "missing")
    path.write_text(json.dumps({k: v for k, v in doc.items() if k != "info"}))
    _fails(path, "info", "missing")
    path.write_text(json.dumps({**doc, "joints_3d": doc["joints_3d"][:-1]}))
    _fails(path, "joints_3d")
    ragged = [row[:-1] if i == 0 else row for i, row in enumerate(doc["joints_2d"])]
    path.write_text(json.dumps({**doc, "joints_2d": ragged}))
    _fails(path, "joints_2d")
    path.write_text(json.dumps({**doc, "confidence": "high"}))
    _fails(path, "confidence")
    path.write_text(json.dumps({**doc, "info": [1]}))
    _fails(path, "info")
    path.write_text(json.dumps({**doc, "joint_names": [1, 2]}))
    _fails(path, "joint_names")


def test_other_suffix_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("a,b")
    _fails(path, r"\.npz or \.json")
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        PoseResult.load(tmp_path / "nothing.npz")
