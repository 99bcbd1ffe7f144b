"""Checkpoint files: round trip, atomic writes, clear errors for missing, truncated and corrupt files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mobpose import checkpoint as ck


def _tensors() -> dict[str, torch.Tensor]:
    return {"w": torch.arange(12, dtype=torch.float32).reshape(3, 4), "b": torch.ones(4), "s": torch.tensor(2.5)}


def test_round_trip(tmp_path: Path) -> None:
    path = ck.save(tmp_path / "m.safetensors", _tensors(), model="prm_test", config={"dim": 16},
                   kind="training", training={"epoch": 3})
    tensors, meta = ck.load(path, kind="training")
    assert set(tensors) == {"w", "b", "s"}
    torch.testing.assert_close(tensors["w"], _tensors()["w"])
    assert meta["model"] == "prm_test" and meta["config"] == {"dim": 16} and meta["training"] == {"epoch": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary file left
    assert path.stat().st_mode & 0o044  # readable by others as a normally written file (umask permitting)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        ck.load(tmp_path / "nope.safetensors")


def test_truncated_file_names_the_file(tmp_path: Path) -> None:
    path = ck.save(tmp_path / "m.safetensors", _tensors(), model="x", config={})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ck.CheckpointError, match=r"m\.safetensors is not a readable safetensors file"):
        ck.load(path)


def test_flipped_byte_fails_the_checksum(tmp_path: Path) -> None:
    path = ck.save(tmp_path / "m.safetensors", _tensors(), model="x", config={})
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # inside the tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(ck.CheckpointError, match="checksum mismatch"):
        ck.load(path)


def test_wrong_kind_and_foreign_file(tmp_path: Path) -> None:
    path = ck.save(tmp_path / "m.safetensors", _tensors(), model="x", config={})
    with pytest.raises(ck.CheckpointError, match="expected 'training'"):
        ck.load(path, kind="training")
    from safetensors.torch import save_file

    save_file(_tensors(), str(tmp_path / "plain.safetensors"))
    with pytest.raises(ck.CheckpointError, match="not a mobpose checkpoint"):
        ck.load(tmp_path / "plain.safetensors")


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = ck.save(tmp_path / "m.safetensors", _tensors(), model="x", config={"v": 1})
    with pytest.raises(TypeError):
        ck.save(path, {"bad": "not a tensor"}, model="x", config={"v": 2})  # type: ignore[dict-item]
    _, meta = ck.load(path)
    assert meta["config"] == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_digest_sees_names_shapes_and_values() -> None:
    base = ck.tensor_digest(_tensors())
    renamed = {("W" if k == "w" else k): v for k, v in _tensors().items()}
    reshaped = dict(_tensors(), w=_tensors()["w"].reshape(4, 3))
    changed = dict(_tensors(), b=torch.ones(4) * 2)
    assert len({base, ck.tensor_digest(renamed), ck.tensor_digest(reshaped), ck.tensor_digest(changed)}) == 4
