"""The golden fixtures of tests/fixtures/golden/ (written by scripts/make_golden.py): today's PyTorch models, the
C++ core, the exported TFLite files and the fp16 Taylor soft-argmax still give the stored outputs.

A failure after a deliberate numerical change means: regenerate with `python scripts/make_golden.py`
and commit the fixtures with the change.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mobpose.export.golden import TEST_CASES, reference_outputs, seeded_test_model
from tolerances import MEASURED, assert_chain

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.npz"))


def _load(case: str):
    data = np.load(GOLDEN / f"{case}.npz")
    inputs = {k[3:]: data[k] for k in data.files if k.startswith("in_")}
    outputs = {k[4:]: data[k] for k in data.files if k.startswith("out_")}
    if case in TEST_CASES:
        model = seeded_test_model(case)
    else:
        from mobpose import load_model

        model = load_model(case).eval()
    return model, inputs, outputs


def _family(model) -> str:
    from mobpose.models.convnextpose import ConvNeXtPose
    from mobpose.models.prm import PRM
    from mobpose.models.rtmo import RTMO

    if isinstance(model, RTMO):
        return "rtmo"
    return "ipem" if isinstance(model, ConvNeXtPose) else "prm" if isinstance(model, PRM) else "lifter"


def _compare(model, got: dict, want: dict, stage: str, shipped: bool = False) -> None:
    fam = _family(model)
    if fam == "ipem":
        ipem = "ipem_shipped" if shipped else "ipem"  # trained Taylor heatmaps: own tolerances
        assert_chain(got["joints"], want["joints"], ipem, stage)
        assert_chain(got["confidence"], want["confidence"], f"{ipem}_conf", stage)
    elif fam == "rtmo":
        assert_chain(got["output_0"], want["output_0"], "rtmo_shipped" if shipped else "rtmo", stage)
    else:
        assert_chain(got["output_0"], want["output_0"], fam, stage)


def test_every_test_variant_and_shipped_model_has_a_fixture():
    from mobpose import list_pretrained

    assert set(TEST_CASES) | set(list_pretrained()) <= set(CASES), "run scripts/make_golden.py"
    for case in CASES:
        assert (GOLDEN / f"{case}.npz").stat().st_size < 256 * 1024, f"{case}: fixtures must stay small"


@pytest.mark.parametrize("case", CASES)
def test_pytorch_reproduces_the_fixture(case):
    model, inputs, outputs = _load(case)
    got = reference_outputs(model, inputs)
    _compare(model, got, outputs, "golden", shipped=case not in TEST_CASES)


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith("prm")])
def test_native_prm_reproduces_the_fixture(case, tmp_path):
    from mobpose import checkpoint as ck
    from mobpose.models.prm import config_dict
    from mobpose.runtime.native_prm import NativePRM

    model, inputs, outputs = _load(case)
    if case in TEST_CASES:
        path = tmp_path / "prm.safetensors"
        ck.save(path, {f"model.{k}": v for k, v in model.state_dict().items()}, model="prm_test",
                config=config_dict(model.config), kind="training")
        native = NativePRM.from_file(str(path))
    else:
        native = NativePRM.from_file(case)
    c = model.config
    anchor = c.num_frames - 1 if c.causal else c.num_frames // 2
    out = native.forward(inputs["poses"][0])[anchor]
    assert_chain(out, outputs["output_0"], "prm", "core")


@pytest.mark.parametrize("case", [c for c in CASES if c not in TEST_CASES])
def test_shipped_model_exports_and_reproduces_the_fixture(case, tmp_path):
    pytest.importorskip("litert_torch")
    from mobpose.export import export_tflite
    from mobpose.export.runtime import run_cpu

    model, inputs, outputs = _load(case)
    lo, hi = (1.5 * float(v) for v in outputs["logit_range"]) if "logit_range" in outputs else (-1.0, 1000.0)
    info = export_tflite(case, tmp_path / f"{case}.tflite", max_logit=hi, min_logit=lo,
                         input_size=inputs["image"].shape[1] if "image" in inputs else None)
    assert info["check"]["ok"]
    _compare(model, run_cpu(info["path"], inputs, threads=2), outputs, "tflite_cpu", shipped=True)
    # the real GPU engine in its default fp16: the shipped model's own logits through the Taylor sums
    from mobpose.export.runtime import gpu_engine_problem, run_gpu

    problem = gpu_engine_problem()
    if problem:
        if os.environ.get("MOBPOSE_REQUIRE_GPU") == "1":
            pytest.fail(f"MOBPOSE_REQUIRE_GPU=1 but {problem}")
        pytest.skip(problem)
    run = run_gpu(info["path"], inputs, enforce_f32=False)
    assert run.fully_accelerated, f"{case}: not every op ran on the GPU"
    _compare(model, run.outputs, outputs, "gpu_fp16", shipped=True)


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith("ipem")])
def test_taylor_soft_argmax_in_fp16_has_headroom_for_the_measured_logits(case):
    """The Taylor sums in fp16, with the prescale export uses for 1.5x the logit range measured on the
    fixture, on the model's own heatmaps and on a worst case (64 bins at the largest logit, the rest at
    the smallest: the Taylor weight grows again below -1): finite and within the fp16 tolerance of the
    float32 result."""
    from mobpose.export.forms import IPEMGpu, soft_argmax_gpu, taylor_prescale

    model, inputs, outputs = _load(case)
    lo, hi = (float(v) for v in outputs["logit_range"])
    form = IPEMGpu(model, max_logit=1.5 * hi, min_logit=1.5 * lo).eval()
    with torch.no_grad():
        flat = form.heatmaps_flat(torch.from_numpy(inputs["image"]))
    assert float(flat.max()) <= 1.5 * hi
    half, conf = soft_argmax_gpu(flat.half(), form.grid.half(), form.extent.half(), form.mode, form.prescale.half())
    assert torch.isfinite(half).all() and torch.isfinite(conf).all(), "fp16 overflow in the Taylor sums"
    j = model.config.num_joints
    family = "ipem" if case in TEST_CASES else "ipem_shipped"
    assert_chain(half.float().permute(0, 2, 1).reshape(1, j * 3), outputs["joints"], family, "gpu_fp16")
    v = flat.shape[1]
    worst = torch.full((1, v, 1), min(1.5 * lo, -1.0))
    worst[0, :64, 0] = 1.5 * hi
    s = torch.full((1, 1, 1), taylor_prescale(1.5 * hi, v, 1.5 * lo))
    xyz, _ = soft_argmax_gpu(worst.half(), form.grid.half(), form.extent.half(), form.mode, s.half())
    assert torch.isfinite(xyz).all()


def teardown_module(module) -> None:
    """With -s, the largest golden errors measured (to set tests/tolerances.py from)."""
    for key, err in sorted(MEASURED.items()):
        print(f"golden: {key}: {err:.3g}")
