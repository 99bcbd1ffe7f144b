"""android_bench on the host, against the real TfLite C API (litert-lm-api's liblitert-lm.so, with XNNPACK): the
shipped IPEM and PRM files timed at 30 fps and back to back, their output tensors checked against the Python
interpreter (ai_edge_litert) on the same input. The harness's own logic (flags, statistics, pacing) is tested in
C++ (android_bench/tests, run by ctest)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mobpose.pretrained import WEIGHTS_DIR

ROOT = Path(__file__).resolve().parents[1]


def _library() -> Path:
    spec = importlib.util.find_spec("litert_lm")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("litert-lm-api is not installed (it is in the dev extra: pip install -e '.[dev]')")
    lib = Path(next(iter(spec.submodule_search_locations))) / "liblitert-lm.so"
    assert lib.is_file(), f"{lib} missing from the litert-lm-api wheel"
    return lib


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> Path:
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.fail("cmake is needed to build android_bench (it is in the dev extra)")
    build = ROOT / "build" / "android_bench-pytest"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run([cmake, "-S", str(ROOT / "android_bench"), "-B", str(build), *gen, "-DCMAKE_BUILD_TYPE=Release"],
                   check=True, capture_output=True)
    subprocess.run([cmake, "--build", str(build)], check=True, capture_output=True)
    exe = build / "android_bench"
    assert exe.is_file()
    return exe


def _run(exe: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), f"--tflite_lib={_library()}", *flags], capture_output=True, text=True,
                          timeout=300)


def _reference(model: Path, seed: int):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model), num_threads=1)
    it.allocate_tensors()
    rng = np.random.default_rng(seed)
    inputs = []
    for d in it.get_input_details():
        x = rng.random(tuple(d["shape"]), dtype=np.float32).astype(d["dtype"])
        it.set_tensor(d["index"], x)
        inputs.append(x)
    it.invoke()
    return inputs, [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


@pytest.mark.parametrize("names", [["ipem-mnv2"], ["prm-causal"], ["ipem-mnv2", "prm-causal"]])
def test_paced_run_and_outputs_match_the_python_interpreter(harness, tmp_path, names):
    """One model, or the pipeline's two in turn per frame (--graph=IPEM,PRM): inputs and outputs in order."""
    models = [WEIGHTS_DIR / f"{n}.tflite" for n in names]
    inputs, expected = [], []
    for k, m in enumerate(models):
        i, e = _reference(m, seed=3 + k)
        inputs += i
        expected += e
    (tmp_path / "in.bin").write_bytes(b"".join(x.tobytes() for x in inputs))
    graph = ",".join(str(m) for m in models)
    r = _run(harness, f"--graph={graph}", "--num_runs=30", "--warmup_runs=3", "--input_fps=30",
             f"--input_file={tmp_path / 'in.bin'}", f"--output_file={tmp_path / 'out.bin'}",
             f"--result_file={tmp_path / 'r.json'}")
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip().splitlines()[-1]
    assert re.match(r"count=30 mean=[\d.]+ std=[\d.]+ min=[\d.]+ p50=[\d.]+ p90=[\d.]+ p99=[\d.]+ max=[\d.]+ \(ms\) "
                    r"init=[\d.]+ first=[\d.]+ input_fps=30 deadlines_missed=\d+ late_starts=\d+ dropped_frames=\d+",
                    line), line
    rec = json.loads((tmp_path / "r.json").read_text())
    assert rec["latency_ms"]["count"] == 30 and rec["input_fps"] == 30
    lat = rec["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert rec["wall_s"] >= 29 / 30  # paced: the 30th frame arrives 29/30 s after the first
    assert rec["params"]["graph"] == graph and "xnnpack" in rec["backend"]
    raw = (tmp_path / "out.bin").read_bytes()
    assert len(raw) == sum(e.nbytes for e in expected)
    offset = 0
    for e in expected:  # XNNPACK in both, same input: the same numbers
        got = np.frombuffer(raw[offset:offset + e.nbytes], dtype=e.dtype).reshape(e.shape)
        offset += e.nbytes
        np.testing.assert_allclose(got, e, rtol=0, atol=1e-6)


def test_back_to_back_and_the_built_in_kernels(harness):
    model = WEIGHTS_DIR / "ipem-mnv2.tflite"
    for delegate in ("xnnpack", "none"):
        r = _run(harness, f"--graph={model}", "--num_runs=20", "--warmup_runs=2", "--input_fps=0",
                 f"--delegate={delegate}")
        assert r.returncode == 0, r.stderr
        assert "count=20 " in r.stdout and "deadlines_missed=0 late_starts=0 dropped_frames=0" in r.stdout
        assert f"tflite {delegate}," in r.stdout


def test_bad_input_is_named(harness, tmp_path):
    model = WEIGHTS_DIR / "ipem-mnv2.tflite"
    (tmp_path / "short.bin").write_bytes(b"\0" * 100)
    r = _run(harness, f"--graph={model}", f"--input_file={tmp_path / 'short.bin'}", "--num_runs=1")
    assert r.returncode == 1 and "100 bytes" in r.stderr and "196608" in r.stderr  # 128 x 128 x 3 x 4
    (tmp_path / "junk.tflite").write_bytes(b"not a model")
    r = _run(harness, f"--graph={tmp_path / 'junk.tflite'}", "--num_runs=1")
    assert r.returncode == 1 and "junk.tflite" in r.stderr
    r = _run(harness, f"--graph={model}", "--delegate=gpu", "--dry_run")
    assert r.returncode == 1 and "TfLiteGpuDelegate" in r.stderr  # the host library has no GPU delegate
    r = _run(harness, f"--graph={model}", "--num_threads=0")
    assert r.returncode == 1 and "--num_threads" in r.stderr
    r = _run(harness, f"--graph={model},", "--num_runs=1")
    assert r.returncode == 1 and "empty entry" in r.stderr


def test_dry_run_times_nothing(harness):
    r = _run(harness, f"--graph={WEIGHTS_DIR / 'prm-causal.tflite'}", "--dry_run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("count=0 ")


@pytest.mark.parametrize("core", ["softargmax", "mqa"])
def test_the_cpp_core_kernels_are_timed(harness, core):
    r = _run(harness, "--backend=core", f"--core={core}", "--num_runs=50", "--input_fps=0")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("count=50 ") and f'backend="core {core} [' in r.stdout


def test_the_native_prm_step_matches_python(harness, tmp_path):
    """The harness's core prm backend is the native PRM's streaming step: the same frames through the Python
    binding give the same refined pose (first inference + 2 warm-ups + 3 timed runs = 6 steps of one pose)."""
    from mobpose.runtime.native_prm import NativePRM

    pose = np.random.default_rng(5).normal(0, 300, (17, 3)).astype(np.float32)
    (tmp_path / "pose.bin").write_bytes(pose.tobytes())
    path = WEIGHTS_DIR / "prm-causal.safetensors"
    r = _run(harness, "--backend=core", "--core=prm", f"--graph={path}", f"--input_file={tmp_path / 'pose.bin'}",
             "--num_runs=3", "--warmup_runs=2", "--input_fps=0", f"--output_file={tmp_path / 'out.bin'}")
    assert r.returncode == 0, r.stderr
    got = np.frombuffer((tmp_path / "out.bin").read_bytes(), np.float32).reshape(17, 3)
    prm = NativePRM.from_file("prm-causal", num_threads=1)
    for _ in range(6):
        want = prm.step(pose)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    r = _run(harness, "--backend=core", "--core=prm", f"--graph={WEIGHTS_DIR / 'ipem-mnv2.safetensors'}",
             "--num_runs=1")
    assert r.returncode == 1 and "PRM config" in r.stderr
