"""The GPU-safe forms converted to TFLite: the GPU-delegate check, the CPU interpreter (XNNPACK) and
LiteRT's real GPU engine (lavapipe software Vulkan here) against PyTorch.

The GPU tests skip where no Vulkan device is set up, unless MOBPOSE_REQUIRE_GPU=1 (CI sets it after
scripts/install_lavapipe.sh), which turns a missing engine into a failure.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from mobpose.export import check_gpu_compat
from mobpose.export.forms import IPEMGpu, PRMGpu
from mobpose.export.runtime import gpu_engine_problem, run_cpu, run_gpu
from mobpose.export.tflite import convert_module
from mobpose.models import create_model

pytest.importorskip("litert_torch")


def _ipem():
    torch.manual_seed(0)
    m = create_model("convnextpose_test", logit_scale=4.0).eval()
    with torch.no_grad():  # spatially varied, peaked heatmaps, as a trained model's are
        for mod in m.modules():
            if isinstance(mod, torch.nn.Conv2d):
                mod.weight.normal_(0, 1.0 / mod.weight[0].numel() ** 0.5)
        m.final.weight.mul_(8.0)
    return IPEMGpu(m, max_logit=500.0)


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
    cases = {
        "ipem": (_ipem(), {"image": torch.from_numpy(rng.uniform(0, 255, (1, 64, 64, 3)).astype(np.float32))}),
        "prm": (_prm(), {"poses": torch.from_numpy(rng.normal(0, 300, (1, 9, 17, 3)).astype(np.float32))}),
    }
    out = {}
    for name, (form, inputs) in cases.items():
        with torch.no_grad():
            ref = form(**inputs)
        ref = {k: v.numpy() for k, v in ref.items()} if isinstance(ref, dict) else {"output_0": ref.numpy()}
        path = convert_module(form, inputs, folder / f"{name}.tflite", name)
        out[name] = (path, {k: v.numpy() for k, v in inputs.items()}, ref)
    return out


# (atol, rtol) per case and runtime: heatmap units for the IPEM joints, probability for its confidence,
# millimetres for the PRM. Reasons: XNNPACK and the GPU in f32 reorder float sums (1e-4 relative);
# the GPU default is fp16 (10-bit mantissa: about 1e-3 relative per op, accumulated over the network).
TOL = {
    ("ipem", "cpu"): (1e-3, 1e-4), ("ipem", "gpu_f32"): (1e-3, 1e-4), ("ipem", "gpu_fp16"): (0.05, 1e-2),
    ("prm", "cpu"): (1e-2, 1e-4), ("prm", "gpu_f32"): (1e-2, 1e-4), ("prm", "gpu_fp16"): (2.0, 1e-2),
}


def _close(got: dict, ref: dict, case: str, runtime: str) -> None:
    atol, rtol = TOL[(case, runtime)]
    assert set(got) == set(ref)
    for k in ref:
        assert np.isfinite(got[k]).all(), f"{case} {runtime} {k}: NaN or Inf"
        np.testing.assert_allclose(got[k].reshape(ref[k].shape), ref[k], atol=atol, rtol=rtol,
                                   err_msg=f"{case} {runtime} {k}")


@pytest.mark.parametrize("case", ["ipem", "prm"])
def test_forms_pass_the_gpu_check(exported, case):
    report = check_gpu_compat(exported[case][0])
    assert report.ok, report.summary()
    assert report.max_rank <= 4


@pytest.mark.parametrize("case", ["ipem", "prm"])
def test_cpu_interpreter_matches_pytorch(exported, case):
    path, inputs, ref = exported[case]
    for threads in (1, 2):
        _close(run_cpu(path, inputs, threads=threads), ref, case, "cpu")


@pytest.mark.parametrize("case", ["ipem", "prm"])
def test_gpu_engine_fully_accelerated_and_matches(exported, case):
    problem = gpu_engine_problem()
    if problem:
        if os.environ.get("MOBPOSE_REQUIRE_GPU") == "1":
            pytest.fail(f"MOBPOSE_REQUIRE_GPU=1 but {problem}")
        pytest.skip(problem)
    path, inputs, ref = exported[case]
    f32 = run_gpu(path, inputs, enforce_f32=True)
    assert f32.fully_accelerated
    _close(f32.outputs, ref, case, "gpu_f32")
    fp16 = run_gpu(path, inputs, enforce_f32=False)
    assert fp16.fully_accelerated
    _close(fp16.outputs, ref, case, "gpu_fp16")


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
    # a model without an export form: a clear error, no file
    r = subprocess.run([sys.executable, "-m", "mobpose.cli", "export", "videopose3d-27", "--out",
                        str(tmp_path / "l.tflite")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "export supports ConvNeXtPose (IPEM) and PRM" in r.stderr
    assert not (tmp_path / "l.tflite").exists()


def test_bench_export_quick(tmp_path):
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "mobpose.bench", "export", "--quick", "--threads", "1", "--keep",
                        str(tmp_path)], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    cases = [x["case"] for x in lines]
    assert cases.count("convert") == 4 and cases.count("size") == 2 and cases.count("latency") == 3
    sizes = {x["model"]: x for x in lines if x["case"] == "size"}
    assert sizes["ipem"]["bytes_fp16"] < sizes["ipem"]["bytes_fp32"]
    for x in lines:
        if x["case"] == "latency":
            assert x["tflite_cpu_ms_median"] > 0 and x["torch_ms_median"] > 0
        if x["case"] == "gpu_engine" and os.environ.get("MOBPOSE_REQUIRE_GPU") == "1":
            assert x["fully_accelerated"] is True, x
