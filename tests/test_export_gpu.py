"""Export around the converted files: input errors of the runtime, `mobpose export` through the CLI
(metadata, check, numbers) and the export benchmark. The numerical chain of every family (PyTorch,
C++, XNNPACK, GPU engine f32/fp16, fp16 weights) is tests/test_parity_chain.py.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from mobpose.export.forms import LifterGpu, PRMGpu
from mobpose.export.runtime import run_cpu
from mobpose.export.tflite import convert_module
from mobpose.models import create_model

pytest.importorskip("litert_torch")


def _prm():
    torch.manual_seed(1)
    prm = create_model("prm_test", causal=True).eval()
    with torch.no_grad():
        for p in prm.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return PRMGpu(prm)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpu_forms")
    rng = np.random.default_rng(0)
    inputs = {"poses": torch.from_numpy(rng.normal(0, 300, (1, 9, 17, 3)).astype(np.float32))}
    path = convert_module(_prm(), inputs, folder / "prm.tflite", "prm")
    return {"prm": (path, {k: v.numpy() for k, v in inputs.items()}, None)}


def test_bad_inputs_are_named(exported):
    path, inputs, _ = exported["prm"]
    with pytest.raises(ValueError, match="inputs must be"):
        run_cpu(path, {"x": inputs["poses"]})
    with pytest.raises(ValueError, match="must have shape"):
        run_cpu(path, {"poses": inputs["poses"][:, :3]})


def test_export_cli_writes_a_checked_file_with_metadata(tmp_path):
    import json
    import subprocess
    import sys

    from mobpose import checkpoint as ck
    from mobpose.export import read_metadata
    from mobpose.models.prm import config_dict
    from mobpose.pretrained import model_from_file

    torch.manual_seed(1)
    model = create_model("prm_test", causal=True)
    ckpt = tmp_path / "prm.safetensors"
    ck.save(ckpt, {f"model.{k}": v for k, v in model.state_dict().items()}, model="prm_test",
            config=config_dict(model.config), kind="training")
    out = tmp_path / "prm.tflite"
    r = subprocess.run([sys.executable, "-m", "mobpose.cli", "export", str(ckpt), "--out", str(out)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["gpu_check_ok"] and info["signature"] == "prm" and info["max_rank"] <= 4
    meta = read_metadata(out)
    assert meta["kind"] == "prm" and meta["window"] == 9 and meta["causal"] is True and meta["anchor"] == 8
    assert len(meta["joint_names"]) == 17
    x = np.random.default_rng(3).normal(0, 300, (1, 9, 17, 3)).astype(np.float32)
    with torch.no_grad():
        ref = PRMGpu(model_from_file(str(ckpt)))(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_cpu(out, {"poses": x})["output_0"], ref, atol=1e-2, rtol=1e-4)
    # the shipped lifter by name, with fp16 weights
    out = tmp_path / "lifter.tflite"
    r = subprocess.run([sys.executable, "-m", "mobpose.cli", "export", "videopose3d-27", "--out", str(out),
                        "--fp16"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    meta = read_metadata(out)
    assert meta["kind"] == "lifter" and meta["window"] == 27 and meta["fp16_weights"] is True
    kp = np.random.default_rng(4).normal(0, 0.3, (1, 27, 17, 2)).astype(np.float32)
    from mobpose import load_model

    with torch.no_grad():
        ref = LifterGpu(load_model("videopose3d-27"))(torch.from_numpy(kp)).numpy()
    np.testing.assert_allclose(run_cpu(out, {"keypoints": kp})["output_0"], ref, atol=1.0)
    # a missing checkpoint and a module without an export form: clear errors, no file
    r = subprocess.run([sys.executable, "-m", "mobpose.cli", "export", str(tmp_path / "nope.safetensors"), "--out",
                        str(tmp_path / "n.tflite")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "nope.safetensors" in r.stderr
    assert not (tmp_path / "n.tflite").exists()
    from mobpose.export import export_tflite

    with pytest.raises(ValueError, match="export supports ConvNeXtPose"):
        export_tflite(torch.nn.Linear(2, 2), tmp_path / "x.tflite")


def test_bench_export_quick(tmp_path):
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "mobpose.bench", "export", "--quick", "--threads", "1", "--keep",
                        str(tmp_path)], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    cases = [x["case"] for x in lines]
    assert cases.count("convert") == 6 and cases.count("size") == 3 and cases.count("latency") == 4
    sizes = {x["model"]: x for x in lines if x["case"] == "size"}
    assert sizes["ipem"]["bytes_fp16"] < sizes["ipem"]["bytes_fp32"]
    for x in lines:
        if x["case"] == "latency":
            assert x["tflite_cpu_ms_median"] > 0 and x["torch_ms_median"] > 0
        if x["case"] == "gpu_engine" and os.environ.get("MOBPOSE_REQUIRE_GPU") == "1":
            assert x["fully_accelerated"] is True, x
