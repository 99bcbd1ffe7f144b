"""The native PRM (mobpose._core.PRMNative through mobpose.runtime.NativePRM) against the PyTorch PRM.

Parity of forward() with PRM.forward for test-size and small-size random models saved as checkpoints
(causal and centred; multiplicative, additive and no prior; with and without Adj2; weights files and
training checkpoints; every kernel variant of this CPU), step() over a clip against `refine_clip`,
reset(), shipped names, and the errors: wrong shapes and dtypes, NaN, a missing tensor, a truncated
file, a corrupted file, step() on a centred model.

Tolerance: tests/tolerances.py, CHAIN[("prm", "core")] = 1e-3 mm + 1e-5 * |output|. Outputs are float32
millimetres of up to ~1000 mm here (random models correct by up to ~900 mm), whose own spacing is
6e-5 to 1.2e-4 mm; the head's output is divided by input_scale = 1e-3, so a float32 rounding of ~1e-7
in the network's last layers is ~1e-4 mm in the output. Largest difference measured over this grid:
7.3e-4 mm (prm_small, avx2/avx512), 5.5e-4 mm with the double-accumulating reference kernels, so most
of it is PyTorch's own float32 rounding. On the trained checkpoint and realistic poses it is ~2e-4 mm.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from mobpose import checkpoint as ck
from mobpose import pretrained
from mobpose.models import create_model
from mobpose.models.prm import PRM, config_dict
from mobpose.train.prm_stage import refine_clip
from tolerances import assert_chain

_core = pytest.importorskip("mobpose._core", reason="the C++ extension is not built")

from mobpose.runtime import NativePRM  # noqa: E402


def _model(name: str = "prm_test", seed: int = 0, **kwargs) -> PRM:
    """A registry PRM away from its identity start: every parameter perturbed (head included)."""
    torch.manual_seed(seed)
    model = create_model(name, **kwargs).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def _save(model: PRM, path: Path, kind: str = "weights", name: str = "prm_test") -> Path:
    """The model as the project saves it: a weights file, or a training checkpoint (tensors under
    'model.', plus optimizer-like tensors the native loader must ignore)."""
    state = model.state_dict()
    if kind == "training":
        state = {f"model.{k}": v for k, v in state.items()} | {"optim.0.step": torch.tensor(3.0)}
    return ck.save(path, state, model=name, config=config_dict(model.config), kind=kind,
                   training={"epoch": 1} if kind == "training" else None)


def _poses(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 300.0, shape).astype(np.float32)


def _clip(frames: int, seed: int = 0) -> np.ndarray:
    """A smooth random clip (T, 17, 3) in mm: a random pose drifting by a few mm per frame."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 250, (1, 17, 3)) + np.cumsum(rng.normal(0, 6, (frames, 17, 3)), axis=0)).astype(np.float32)


def _torch_forward(model: PRM, window: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(window)).numpy()


GRID = [
    pytest.param(name, causal, prior, learn_adj, id=f"{name}-{'causal' if causal else 'centred'}-{prior}"
                 f"{'-adj2' if learn_adj else ''}")
    for name, causal, prior, learn_adj in itertools.product(
        ["prm_test", "prm_small"], [True, False], ["mul", "add", "none"], [True, False])
    if not (prior == "none" and learn_adj)  # no prior: no Adj2 either way
]


@pytest.mark.parametrize(("name", "causal", "prior", "learn_adj"), GRID)
def test_forward_matches_pytorch(tmp_path, name, causal, prior, learn_adj):
    model = _model(name, causal=causal, prior=prior, learn_adj=learn_adj)
    native = NativePRM.from_file(_save(model, tmp_path / "prm.safetensors", name=name))
    c = model.config
    windows = _poses((3, c.num_frames, c.num_joints, 3))
    want = _torch_forward(model, windows)
    assert np.abs(want - windows).max() > 50.0  # the models really correct (not the identity)
    assert_chain(native.forward(windows[0]), want[0], "prm", "core")
    batched = native.forward(windows)
    assert batched.shape == windows.shape and batched.dtype == np.float32
    assert_chain(batched, want, "prm", "core")


@pytest.mark.parametrize("variant", _core.available_kernel_variants())
def test_every_kernel_variant_matches_pytorch(tmp_path, variant):
    model = _model("prm_test", seed=2, causal=True)
    path = _save(model, tmp_path / "prm.safetensors", kind="training")
    try:
        _core.set_kernel_variant(variant)  # the native PRM keeps the variant active when it is built
        linear = _core.kernel_names()["linear"]
        native = NativePRM.from_file(path)
    finally:
        _core.set_kernel_variant("auto")
    assert native._core.kernel == linear
    window = _poses((9, 17, 3), seed=3)
    assert_chain(native.forward(window), _torch_forward(model, window[None])[0], "prm", "core")
    clip = _clip(20, seed=4)
    assert_chain(np.stack([native.step(p) for p in clip]), refine_clip(model, clip), "prm", "core")


@pytest.mark.parametrize("name", ["prm_test", "prm_small"])
def test_step_matches_refine_clip(tmp_path, name):
    model = _model(name, seed=1, causal=True)
    native = NativePRM.from_file(_save(model, tmp_path / "prm.safetensors", kind="training", name=name))
    clip = _clip(60)
    want = refine_clip(model, clip)  # every frame's causal window, the clip's first frame repeated
    got = np.stack([native.step(pose) for pose in clip])
    assert got.shape == clip.shape and got.dtype == np.float32
    assert np.abs(want - clip).max() > 20.0
    assert_chain(got, want, "prm", "core")
    assert native.frames_seen == 60
    # forward() does not disturb the stream; reset() starts a new one (its first frame is the second
    # clip's first window: that pose repeated T times).
    native.forward(_poses((model.config.num_frames, 17, 3)))
    other = _clip(5, seed=9)
    native.reset()
    assert native.frames_seen == 0
    assert_chain(np.stack([native.step(p) for p in other]), refine_clip(model, other), "prm", "core")


@pytest.mark.parametrize("blocks", ["ssss", "tttt", "tsst"])
def test_other_block_layouts(tmp_path, blocks):
    """The poster's ablations and a layout ending spatially: the step plan computes the newest frame
    only from the last temporal block on (with no temporal block: in every block)."""
    model = _model("prm_test", seed=5, causal=True, blocks=blocks)
    native = NativePRM.from_file(_save(model, tmp_path / "prm.safetensors"))
    window = _poses((9, 17, 3), seed=6)
    assert_chain(native.forward(window), _torch_forward(model, window[None])[0], "prm", "core")
    clip = _clip(15, seed=7)
    assert_chain(np.stack([native.step(p) for p in clip]), refine_clip(model, clip), "prm", "core")


@pytest.mark.parametrize("causal", [True, False])
def test_threads_give_the_same_result(tmp_path, causal):
    model = _model("prm_small", seed=6, causal=causal)
    path = _save(model, tmp_path / "prm.safetensors", name="prm_small")
    one, two = NativePRM.from_file(path), NativePRM.from_file(path, num_threads=2)
    windows = _poses((2, 27, 17, 3), seed=9)
    assert_chain(two.forward(windows), _torch_forward(model, windows), "prm", "core")
    np.testing.assert_allclose(two.forward(windows), one.forward(windows), rtol=0, atol=1e-4)
    if causal:
        clip = _clip(30, seed=8)
        got = np.stack([two.step(p) for p in clip])
        np.testing.assert_allclose(got, np.stack([one.step(p) for p in clip]), rtol=0, atol=1e-4)
        assert_chain(got, refine_clip(model, clip), "prm", "core")


def test_step_before_a_full_window_repeats_the_first_pose(tmp_path):
    model = _model("prm_test", causal=True)
    native = NativePRM.from_file(_save(model, tmp_path / "prm.safetensors"))
    clip = _clip(3, seed=5)
    for i, pose in enumerate(clip):
        window = np.concatenate([np.repeat(clip[:1], model.config.num_frames - 1 - i, axis=0), clip[: i + 1]])
        assert_chain(native.step(pose), _torch_forward(model, window[None])[0, -1], "prm", "core")


def test_trained_checkpoint_streams_like_pytorch():
    path = Path(__file__).resolve().parents[1] / "runs" / "prm_causal" / "best.safetensors"
    if not path.is_file():
        pytest.skip(f"{path} is not here (a training output, not part of the repository)")
    model = pretrained.model_from_file(path)
    native = NativePRM.from_file(path)
    clip = _clip(40, seed=6)
    assert_chain(np.stack([native.step(p) for p in clip]), refine_clip(model, clip), "prm", "core")


def test_shipped_name_is_resolved_and_verified(tmp_path):
    model = _model("prm_test", seed=3, causal=True)
    src = _save(model, tmp_path / "src.safetensors", kind="training")
    folder = tmp_path / "weights"
    folder.mkdir()
    pretrained.export_weights(src, "prm-tiny", description="test PRM", weights_dir=folder)
    native = NativePRM.from_file("prm-tiny", weights_dir=folder)
    window = _poses((9, 17, 3))
    assert_chain(native.forward(window), _torch_forward(model, window[None])[0], "prm", "core")
    # A byte flipped in the shipped file: the manifest checksum stops it before C++ reads it.
    path = folder / "prm-tiny.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ck.CheckpointError, match="checksum mismatch"):
        NativePRM.from_file("prm-tiny", weights_dir=folder)
    with pytest.raises(ValueError, match="unknown pretrained model 'nope'"):
        NativePRM.from_file("nope", weights_dir=folder)


def test_not_a_prm(tmp_path):
    model = create_model("convnextpose_test")
    path = ck.save(tmp_path / "ipem.safetensors", model.state_dict(), model="convnextpose_test",
                   config={"num_joints": 18})
    with pytest.raises(ValueError, match="not a PRM"):
        NativePRM.from_file(path)


@pytest.fixture
def causal_prm(tmp_path) -> NativePRM:
    return NativePRM.from_file(_save(_model("prm_test", causal=True), tmp_path / "prm.safetensors"))


@pytest.mark.parametrize(
    ("window", "error", "match"),
    [
        (np.zeros((8, 17, 3)), ValueError, r"window must have shape \(T, J, 3\) = \(9, 17, 3\), got \(8, 17, 3\)"),
        (np.zeros((9, 17, 2)), ValueError, r"window must have shape"),
        (np.zeros((9, 17)), ValueError, r"window must have 3 dimensions"),
        (np.zeros((2, 9, 16, 3)), ValueError, r"window must have shape \(B, T, J, 3\)"),
        (np.zeros((0, 9, 17, 3)), ValueError, "empty"),
        (np.zeros((9, 17, 3), dtype=complex), TypeError, "real numbers"),
        (np.array([["a"]]), TypeError, "real numbers"),
        ("poses", TypeError, "real numbers|numpy array"),
    ],
)
def test_forward_rejects_bad_windows(causal_prm, window, error, match):
    with pytest.raises(error, match=match):
        causal_prm.forward(window)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e39])  # 1e39 overflows float32
def test_non_finite_poses_are_rejected_and_leave_the_stream(causal_prm, bad):
    window = _poses((9, 17, 3))
    window64 = window.astype(np.float64)
    window64[4, 7, 2] = bad
    with pytest.raises(ValueError, match=r"window has a (non-finite value|finite value beyond the float32 range)"
                                         r" .* at \[4, 7, 2\]"):
        causal_prm.forward(window64)
    first = causal_prm.step(window[0])
    pose = window[1].astype(np.float64)
    pose[3, 1] = bad
    with pytest.raises(ValueError, match=r"pose has a (non-finite value|finite value beyond the float32 range)"
                                         r" .* at \[3, 1\]"):
        causal_prm.step(pose)
    assert causal_prm.frames_seen == 1  # the rejected pose did not enter the stream
    causal_prm.reset()
    np.testing.assert_array_equal(causal_prm.step(window[0]), first)


def test_step_rejects_bad_poses(causal_prm):
    with pytest.raises(ValueError, match=r"pose must have shape \(J, 3\) = \(17, 3\), got \(16, 3\)"):
        causal_prm.step(np.zeros((16, 3)))
    with pytest.raises(ValueError, match="pose must have 2 dimensions"):
        causal_prm.step(np.zeros((1, 17, 3)))
    out = causal_prm.step(np.zeros((17, 3), dtype=np.int64))  # integers are millimetres too
    assert out.dtype == np.float32 and out.shape == (17, 3)


def test_step_on_a_centred_model(tmp_path):
    native = NativePRM.from_file(_save(_model("prm_test", causal=False), tmp_path / "prm.safetensors"))
    assert not native.causal
    with pytest.raises(RuntimeError, match="causal PRM.*centred"):
        native.step(np.zeros((17, 3)))
    with pytest.raises(RuntimeError, match="causal PRM.*centred"):  # the C++ check, without the wrapper's
        native._core.step(np.zeros((17, 3), dtype=np.float32))


def test_missing_tensor_in_a_hand_edited_file(tmp_path):
    model = _model("prm_test", causal=True)
    state = model.state_dict()
    del state["blocks.1.attn.kv.weight"]
    # Saved by the project's writer (its checksum is valid): the C++ loader finds the gap.
    path = ck.save(tmp_path / "edited.safetensors", state, model="prm_test", config=config_dict(model.config))
    with pytest.raises(ck.CheckpointError, match=r"edited\.safetensors: no tensor 'blocks\.1\.attn\.kv\.weight'"):
        NativePRM.from_file(path)
    # Directly on the core too, on a file written by safetensors alone (no mobpose metadata).
    from safetensors.torch import save_file

    raw = tmp_path / "raw.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(raw))
    c = model.config
    args = (c.num_joints, c.num_frames, c.dim, c.heads, c.blocks, c.mlp_ratio, c.prior, c.lam, c.learn_adj, c.causal,
            c.input_scale)
    with pytest.raises(RuntimeError, match=r"raw\.safetensors: no tensor 'blocks\.1\.attn\.kv\.weight'"):
        _core.PRMNative(str(raw), *args)
    # A tensor of the wrong shape and one the config does not have.
    state = model.state_dict()
    state["head.weight"] = torch.zeros(3, 8)
    save_file({k: v.contiguous() for k, v in state.items()}, str(raw))
    with pytest.raises(RuntimeError, match=r"'head\.weight' has shape \(3, 8\), expected \(3, 16\)"):
        _core.PRMNative(str(raw), *args)
    state = model.state_dict() | {"blocks.5.attn.a": torch.ones(())}
    save_file({k: v.contiguous() for k, v in state.items()}, str(raw))
    with pytest.raises(RuntimeError, match=r"unexpected tensor 'blocks\.5\.attn\.a'"):
        _core.PRMNative(str(raw), *args)
    state = model.state_dict()
    state["blocks.0.attn.adj_fixed"] = state["blocks.0.attn.adj_fixed"].to(torch.int64)
    save_file({k: v.contiguous() for k, v in state.items()}, str(raw))
    with pytest.raises(RuntimeError, match=r"'blocks\.0\.attn\.adj_fixed' has dtype I64, expected a float tensor"):
        _core.PRMNative(str(raw), *args)
    with pytest.raises(ValueError, match="divisible by heads"):
        _core.PRMNative(str(raw), c.num_joints, c.num_frames, c.dim, 3, *args[4:])


def test_truncated_file(tmp_path):
    path = _save(_model("prm_test"), tmp_path / "prm.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    # The wrapper: the checkpoint reader refuses it before C++ sees it.
    with pytest.raises(ck.CheckpointError, match="prm.safetensors"):
        NativePRM.from_file(path)
    # The core's own reader: the message names the file and the problem.
    with pytest.raises(RuntimeError, match=r"prm\.safetensors: tensor '.*' data_offsets .*past.*truncated"):
        _core.read_safetensors_metadata(str(path))
    path.write_bytes(data[:100])
    with pytest.raises(RuntimeError, match=r"prm\.safetensors: header length \d+ exceeds"):
        _core.read_safetensors_metadata(str(path))
    path.write_bytes(data[:5])
    with pytest.raises(RuntimeError, match="shorter than the 8-byte header length"):
        _core.read_safetensors_metadata(str(path))
    with pytest.raises(RuntimeError, match="cannot open"):
        _core.read_safetensors_metadata(str(tmp_path / "missing.safetensors"))
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        NativePRM.from_file(tmp_path / "missing.safetensors")


def test_metadata_reader_matches_safetensors(tmp_path):
    from safetensors import safe_open

    path = _save(_model("prm_test"), tmp_path / "prm.safetensors", kind="training")
    with safe_open(str(path), framework="pt") as f:
        want = f.metadata()
    assert _core.read_safetensors_metadata(str(path)) == want


def test_fp16_weights_load(tmp_path):
    model = _model("prm_test", seed=4, causal=True)
    half = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    path = ck.save(tmp_path / "half.safetensors", half, model="prm_test", config=config_dict(model.config))
    native = NativePRM.from_file(path)
    model.load_state_dict({k: v.float() for k, v in half.items()})  # the weights as fp16 rounded them
    window = _poses((9, 17, 3), seed=8)
    assert_chain(native.forward(window), _torch_forward(model, window[None])[0], "prm", "core")


def test_bench_prm_step_smoke(tmp_path, capsys):
    import json

    from mobpose.bench.__main__ import main

    out = tmp_path / "bench.jsonl"
    assert main(["prm-step", "--frames", "6", "--warmup", "2", "--block", "4", "--out", str(out)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["case"] for r in lines] == ["setup", "torch", "native_step", "native_forward", "summary"]
    assert all(r["latency_runs"] == 6 for r in lines[1:4])
    summary = lines[-1]
    assert summary["speedup_step_vs_torch"] > 0 and summary["max_abs_diff_step_vs_torch_mm"] < 1e-3
    assert len(out.read_text().splitlines()) == 5
