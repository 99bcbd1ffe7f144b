"""The parity chain of every exported family: PyTorch training form -> its GPU form (PyTorch) -> the C++
core -> TFLite on the CPU (XNNPACK, 1 and 2 threads) -> LiteRT's GPU engine with f32 enforced -> the
GPU engine in its default fp16; and the files written with fp16 weights on the CPU and the GPU.

Every stage is compared with the float32 PyTorch training form on the same input, with one tolerance
table (tests/tolerances.py, CHAIN, a reason per entry); NaN or Inf anywhere fails. The families: the
IPEM (ConvNeXtPose test size, and the MobileNetV2 IPEM at a 64-pixel input; Taylor soft-argmax inside the
graph, joints and confidence), the PRM
(causal and centred), the VideoPose3D lifter (no C++ path: the C++ core has no lifter) and the
streaming step in one graph (IPEM + decoding + causal PRM; its C++ parts are the IPEM's and PRM's), and RTMO's
dense graph (the CSPDarknet test variant and the MobileNetV2 backbone at a 64-pixel input; no C++ path: its
post-processing is numpy, checked against PyTorch in tests/test_rtmo.py), and PoseResNet's heatmaps (the test
variant: transposed convolutions on the GPU).

The GPU stages need a Vulkan device (scripts/install_lavapipe.sh); they skip without one unless
MOBPOSE_REQUIRE_GPU=1 (CI), which turns a missing engine into a failure.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from mobpose.export.golden import seeded_test_model
from tolerances import CHAIN, MEASURED, assert_chain

pytest.importorskip("litert_torch")

from mobpose.export.check import check_gpu_compat  # noqa: E402
from mobpose.export.forms import IPEMGpu, LifterGpu, PoseResNetGpu, PRMGpu, RTMOGpu, StepGpu  # noqa: E402
from mobpose.export.runtime import gpu_engine_problem, run_cpu, run_gpu  # noqa: E402
from mobpose.export.tflite import convert_module  # noqa: E402

FAMILIES = ("ipem", "ipem_mnv2", "prm_causal", "prm_centred", "lifter", "step", "rtmo", "rtmo_mnv2", "poseresnet")


def _ipem_model(family: str = "ipem"):
    return seeded_test_model("ipem_mnv2_test" if family == "ipem_mnv2" else "ipem_test")


def _prm_model(causal: bool):
    return seeded_test_model("prm_test_causal" if causal else "prm_test_centred")


def _lifter_model():
    return seeded_test_model("lifter_test")


def _build(family: str, rng: np.random.Generator):
    """(model, GPU form, inputs of the form, reference outputs of the training form as numpy)."""
    if family.startswith("ipem"):
        from mobpose.functional import soft_argmax_3d
        from mobpose.models.convnextpose import normalize_images

        m = _ipem_model(family)
        img = rng.integers(0, 256, (1, 64, 64, 3)).astype(np.float32)
        x = normalize_images(torch.from_numpy(img).to(torch.uint8))
        with torch.no_grad():
            hm = m.forward_heatmaps(x)
            joints, peak = soft_argmax_3d(hm, m.softargmax_mode, return_peak=True)
        ref = {"joints": joints.numpy(), "confidence": peak.numpy(), "heatmaps": hm.numpy()}
        return m, IPEMGpu(m, max_logit=500.0), {"image": img}, ref
    if family.startswith("prm"):
        m = _prm_model(family == "prm_causal")
        poses = rng.normal(0, 300, (1, 9, 17, 3)).astype(np.float32)
        form = PRMGpu(m)
        with torch.no_grad():
            out = m(torch.from_numpy(poses))[0, form.anchor]
        return m, form, {"poses": poses}, {"output_0": out.numpy()}
    if family == "step":
        from mobpose.models.convnextpose import normalize_images
        from mobpose.models.decode import decode_pose

        ipem, prm = _ipem_model(), _prm_model(True)
        img = rng.integers(0, 256, (1, 64, 64, 3)).astype(np.float32)
        frame = np.array([[100, 50, 300, 300, 1000, 1000, 320, 240, 4000]], np.float32)
        past = rng.normal(0, 300, (1, 8, 17, 3)).astype(np.float32)
        with torch.no_grad():
            xyz = ipem(normalize_images(torch.from_numpy(img).to(torch.uint8)))
            k = torch.tensor([[1000, 1000, 320, 240, 0, 0, 0, 0, 1.0]])
            rel = decode_pose(xyz, torch.from_numpy(frame[:, :4]), torch.from_numpy(frame[:, 8]), k,
                              ipem.heatmap_size)["root_relative_mm"][:, :17]
            refined = prm(torch.cat([torch.from_numpy(past), rel[:, None]], 1))[0, -1]
        ref = {"refined": refined.numpy(), "pose": rel.numpy()}
        return (ipem, prm), StepGpu(ipem, prm, max_logit=500.0), {"image": img, "frame": frame, "past": past}, ref
    if family == "poseresnet":
        from mobpose.models.convnextpose import normalize_images

        m = seeded_test_model("poseresnet_test")
        img = rng.integers(0, 256, (1, 96, 64, 3)).astype(np.float32)
        with torch.no_grad():
            out = m(normalize_images(torch.from_numpy(img).to(torch.uint8)))
        return m, PoseResNetGpu(m), {"image": img}, {"output_0": out.numpy()}
    if family.startswith("rtmo"):
        from mobpose.models.convnextpose import normalize_images

        m = seeded_test_model(f"{family}_test")
        img = rng.integers(0, 256, (1, 64, 64, 3)).astype(np.float32)
        with torch.no_grad():
            out = m(normalize_images(torch.from_numpy(img).to(torch.uint8)))
        return m, RTMOGpu(m), {"image": img}, {"output_0": out.numpy()}
    m = _lifter_model()
    kp = rng.normal(0, 0.3, (1, m.receptive_field, 17, 2)).astype(np.float32)
    with torch.no_grad():
        out = m(torch.from_numpy(kp))[0, 0] * 1000.0
    return m, LifterGpu(m), {"keypoints": kp}, {"output_0": out.numpy()}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chain")
    rng = np.random.default_rng(0)
    out = {}
    for family in FAMILIES:
        model, form, inputs, ref = _build(family, rng)
        tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}
        files = {w: convert_module(form, tensors, folder / f"{family}_{w}.tflite", family.split("_")[0],
                                   fp16=(w == "w16"))
                 for w in ("w32", "w16")}
        out[family] = {"model": model, "form": form, "inputs": inputs, "ref": ref, "files": files,
                       "dir": folder}
    yield out
    if MEASURED:
        print("\nlargest errors of the parity chain (family, stage): error / tolerance atol")
        for key, err in sorted(MEASURED.items()):
            print(f"  {key}: {err:.3g} / {CHAIN[key].atol:g}")


def _compare(family: str, stage: str, got: dict, ref: dict) -> None:
    if family.startswith("ipem"):
        assert_chain(got["joints"], ref["joints"], "ipem", stage)
        assert_chain(got["confidence"], ref["confidence"], "ipem_conf", stage)
    elif family == "step":
        assert_chain(got["pose"], ref["pose"], "step", stage)
        assert_chain(got["refined"], ref["refined"], "step", stage)
    else:
        assert_chain(got["output_0"], ref["output_0"], "rtmo" if family.startswith("rtmo") else family.split("_")[0],
                     stage)


def _gpu_or_skip() -> None:
    problem = gpu_engine_problem()
    if problem:
        if os.environ.get("MOBPOSE_REQUIRE_GPU") == "1":
            pytest.fail(f"MOBPOSE_REQUIRE_GPU=1 but {problem}")
        pytest.skip(problem)


@pytest.mark.parametrize("family", FAMILIES)
def test_gpu_form_matches_training_form(chain, family):
    c = chain[family]
    with torch.no_grad():
        out = c["form"](**{k: torch.from_numpy(v) for k, v in c["inputs"].items()})
    out = {k: v.numpy() for k, v in out.items()} if isinstance(out, dict) else {"output_0": out.numpy()}
    _compare(family, "gpu_form", out, c["ref"])


@pytest.mark.parametrize("family", ["ipem", "ipem_mnv2", "prm_causal", "prm_centred"])
def test_cpp_core_matches_training_form(chain, family):
    c = chain[family]
    if family.startswith("ipem"):
        from mobpose import _core

        xyz, peak = _core.soft_argmax_3d(c["ref"]["heatmaps"], c["model"].softargmax_mode)
        _compare(family, "core", {"joints": xyz, "confidence": peak}, c["ref"])
        return
    from mobpose import checkpoint as ck
    from mobpose.models.prm import config_dict
    from mobpose.runtime.native_prm import NativePRM

    model = c["model"]
    path = c["dir"] / f"{family}.safetensors"
    ck.save(path, {f"model.{k}": v for k, v in model.state_dict().items()}, model="prm_test",
            config=config_dict(model.config), kind="training")
    out = NativePRM.from_file(str(path)).forward(c["inputs"]["poses"][0])
    _compare(family, "core", {"output_0": out[c["form"].anchor]}, c["ref"])


@pytest.mark.parametrize("family", FAMILIES)
def test_files_pass_the_gpu_check(chain, family):
    for path in chain[family]["files"].values():
        report = check_gpu_compat(path)
        assert report.ok, report.summary()
        assert report.max_rank <= 4


@pytest.mark.parametrize("weights", ["w32", "w16"])
@pytest.mark.parametrize("family", FAMILIES)
def test_tflite_cpu_matches_training_form(chain, family, weights):
    c = chain[family]
    stage = "tflite_cpu" if weights == "w32" else "tflite_cpu_w16"
    for threads in (1, 2):
        _compare(family, stage, run_cpu(c["files"][weights], c["inputs"], threads=threads), c["ref"])


@pytest.mark.parametrize("family", FAMILIES)
def test_gpu_engine_fully_accelerated_and_matches(chain, family):
    _gpu_or_skip()
    c = chain[family]
    for weights, enforce_f32, stage in (("w32", True, "gpu_f32"), ("w32", False, "gpu_fp16"),
                                        ("w16", False, "gpu_w16")):
        run = run_gpu(c["files"][weights], c["inputs"], enforce_f32=enforce_f32)
        assert run.fully_accelerated, f"{family} {stage}: not every op ran on the GPU"
        _compare(family, stage, run.outputs, c["ref"])


def test_fp16_weight_files_are_smaller(chain):
    for family in FAMILIES:
        files = chain[family]["files"]
        w16, w32 = files["w16"].stat().st_size, files["w32"].stat().st_size
        assert w16 < w32, family
        if not family.startswith("prm"):  # weight-dominated; the tiny test PRM is mostly float32 constants
            assert w16 < 0.75 * w32, family


def test_tolerance_table_has_a_reason_for_every_entry():
    for key, tol in CHAIN.items():
        assert tol.why and tol.atol >= 0 and tol.rtol >= 0, key
