"""GPU delegate compatibility check (mobpose.export.check) on files written by litert-torch.

Small PyTorch models that break one rule each are converted once per session (module-scoped fixture)
and the checker must name the rule. Where the converter never emits the bad construction (it expands a
rank-1 constant to full rank; it always writes SOFTMAX beta=1, static shapes and builtin ops), the
violation is made by editing the converted flatbuffer with flatbuffer_utils.

What litert-torch 0.10.0 emits (asserted below, so a converter change shows up here):
- reshape to rank 5: RESHAPE to [1, 2, 3, 4, 5], SUM over it;
- torch.argmax: ARG_MAX with an INT32 output (64-bit I/O is downcast unless enable_x64=True);
- torch.matmul((2, 3, 4), (1, 4, 5)): one BATCH_MATMUL with the broadcast batch dims kept;
- torch.bmm(a, b.transpose(1, 2)) / torch.bmm(a.transpose(1, 2), c): BATCH_MATMUL adj_y=True / adj_x=True;
- x + rank-1 constant: ADD with the constant expanded to [1, 1, 4]; x * 0.5: MUL with a rank-0 constant;
- .long() with enable_x64=True: CAST to INT64 and INT64 ADD (without enable_x64: INT32);
- F.gelu: GELU approximate=False (erf), F.gelu(approximate='tanh'): approximate=True; GELU (code 150)
  keeps 127 in deprecated_builtin_code.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mobpose.export import GpuCheckReport, GpuCompatError, Violation, assert_gpu_compat, check_gpu_compat
from mobpose.export.check import BANNED_OPS, GPU_ALLOWED_OPS


class Fn(nn.Module):
    """Wraps a function of tensors as a module for the converter."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


class Good(nn.Module):
    """conv + relu + linear: everything the GPU delegate takes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).reshape(1, -1))


def _gelu(x, approximate="none"):
    return nn.functional.gelu(x, approximate=approximate)


def _bmm_adj(a, b):
    c = torch.bmm(a, b.transpose(1, 2))  # (2, 3, 5)
    return torch.bmm(a.transpose(1, 2), c)  # (2, 4, 5)


CASES = {
    "good": (Good(), (torch.randn(1, 3, 8, 8),), {}),
    "rank5": (Fn(lambda x: torch.relu(x.reshape(1, 2, 3, 4, 5)).sum(1)), (torch.randn(1, 120),), {}),
    "argmax": (Fn(lambda x: torch.argmax(x, dim=-1)), (torch.randn(2, 8),), {}),
    "bmm_broadcast": (Fn(torch.matmul), (torch.randn(2, 3, 4), torch.randn(1, 4, 5)), {}),
    "bmm_adj": (Fn(_bmm_adj), (torch.randn(2, 3, 4), torch.randn(2, 5, 4)), {}),
    "add_rank1": (Fn(lambda x: x + torch.arange(4, dtype=torch.float32)), (torch.randn(2, 3, 4),), {}),
    "mul_scalar": (Fn(lambda x: x * 0.5), (torch.randn(2, 3, 4),), {}),
    "int64": (Fn(lambda x: (x * 3).long() + 1), (torch.randn(2, 8),), {"enable_x64": True}),
    "gelu": (Fn(lambda x: _gelu(x) + _gelu(x, approximate="tanh")), (torch.randn(2, 4),), {}),
    "softmax": (Fn(lambda x: torch.softmax(x, -1)), (torch.randn(2, 4),), {}),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Every case of CASES converted once: name -> .tflite path."""
    folder = tmp_path_factory.mktemp("gpu_check")
    paths = {}
    with warnings.catch_warnings():
        # Third-party deprecation noise from torch.export / litert-torch internals, during conversion only.
        warnings.simplefilter("ignore")
        litert_torch = pytest.importorskip("litert_torch")
        litert_torch.config.show_progress = False
        for name, (module, args, kwargs) in CASES.items():
            path = folder / f"{name}.tflite"
            litert_torch.convert(module.eval(), args, **kwargs).export(str(path))
            paths[name] = path
    return paths


def _edit(path: Path, change) -> bytes:
    """The model at path with change(model_object) applied, as bytes."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(path.read_bytes())
    change(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _op(model, name: str):
    """(subgraph, operator) of the first operator named name in a ModelT."""
    from ai_edge_litert import schema_py_generated as schema

    code = getattr(schema.BuiltinOperator, name)
    sg = model.subgraphs[0]
    for op in sg.operators:
        oc = model.operatorCodes[op.opcodeIndex]
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == code:
            return sg, op
    raise AssertionError(f"no {name} in the model")


def _only(report: GpuCheckReport, rule: str) -> list[Violation]:
    assert not report.ok
    assert report.rules == {rule}, report.summary()
    return report.violations


def test_good_model_passes(models):
    report = check_gpu_compat(models["good"])
    assert report.ok, report.summary()
    assert report.ops.get("CONV_2D") == 1 and report.ops.get("FULLY_CONNECTED") == 1
    assert report.max_rank == 4
    assert report.signatures == ["serving_default"]
    assert [(s.shape, s.dtype) for s in report.inputs] == [((1, 3, 8, 8), "FLOAT32")]
    assert [(s.shape, s.dtype) for s in report.outputs] == [((1, 10), "FLOAT32")]
    assert assert_gpu_compat(models["good"]).ok
    assert check_gpu_compat(models["good"].read_bytes()).ok  # bytes in
    lines = report.summary().splitlines()
    assert len(lines) == 1 and "GPU-compatible" in lines[0]
    d = json.loads(json.dumps(report.to_dict()))
    assert d["ok"] is True and d["violations"] == [] and d["inputs"][0]["shape"] == [1, 3, 8, 8]


def test_rank5(models):
    (v,) = _only(check_gpu_compat(models["rank5"]), "rank")
    assert v.op_name == "RESHAPE" and "[1, 2, 3, 4, 5]" in v.detail
    assert check_gpu_compat(models["rank5"]).max_rank == 5


def test_argmax(models):
    report = check_gpu_compat(models["argmax"])
    (v,) = _only(report, "banned_op")
    assert v.op_name == "ARG_MAX" and v.op_index == 0
    assert report.outputs[0].dtype == "INT32"  # downcast by the converter (enable_x64=False)
    # a custom allowlist decides: with ARG_MAX added, nothing is left
    assert check_gpu_compat(models["argmax"], allowlist=GPU_ALLOWED_OPS | {"ARG_MAX"}).ok
    assert set(BANNED_OPS) >= {"ARG_MAX", "ARG_MIN", "GATHER_ND", "TOPK_V2"}
    assert not set(BANNED_OPS) & GPU_ALLOWED_OPS


def test_batch_matmul_broadcast(models):
    report = check_gpu_compat(models["bmm_broadcast"])
    (v,) = _only(report, "batch_matmul_broadcast")
    assert report.ops == {"BATCH_MATMUL": 1}
    assert "[2, 3, 4] @ [1, 4, 5]" in v.detail


def test_batch_matmul_adj_flags(models):
    report = check_gpu_compat(models["bmm_adj"])
    violations = _only(report, "batch_matmul_adj")
    assert report.ops == {"BATCH_MATMUL": 2}  # both transposes fused into flags, no TRANSPOSE op
    assert [v.detail.split(":")[0] for v in violations] == ["adj_x=False adj_y=True", "adj_x=True adj_y=False"]


def test_elementwise_rank(models):
    # The converter expands a rank-1 constant to full rank ([4] -> [1, 1, 4]): compatible as written.
    report = check_gpu_compat(models["add_rank1"])
    assert report.ok, report.summary()

    def rank1(model):
        sg, op = _op(model, "ADD")
        const = sg.tensors[op.inputs[1]]
        assert list(const.shape) == [1, 1, 4]
        const.shape = [4]
        const.shapeSignature = None

    (v,) = _only(check_gpu_compat(_edit(models["add_rank1"], rank1)), "elementwise_rank")
    assert v.op_name == "ADD" and "rank 3 (runtime) and 1 (constant)" in v.detail


def test_scalar_constant(models):
    # x * 0.5 is a MUL with a rank-0 constant: accepted by default, a violation of the strict rule.
    (v,) = _only(check_gpu_compat(models["mul_scalar"], allow_scalar_constants=False), "elementwise_rank")
    assert v.op_name == "MUL" and "[2, 3, 4] vs []" in v.detail
    assert check_gpu_compat(models["mul_scalar"]).ok


def test_int64(models):
    report = check_gpu_compat(models["int64"])
    assert report.rules == {"int64", "op_not_allowed"}, report.summary()  # the "+ 1" scalar is allowed by default
    int64 = [v for v in report.violations if v.rule == "int64"]
    assert {v.op_name for v in int64} == {"CAST", "ADD"} and len(int64) == 3  # cast out, constant, sum
    assert all(v.tensor for v in int64)
    assert [v.op_name for v in report.violations if v.rule == "op_not_allowed"] == ["CAST"]
    assert report.outputs[0].dtype == "INT64"


def test_gelu(models):
    report = check_gpu_compat(models["gelu"])
    (v,) = _only(report, "gelu_approximate")
    assert v.op_index == 0 and report.ops == {"ADD": 1, "GELU": 2}

    def codes(model):
        _, op = _op(model, "GELU")
        oc = model.operatorCodes[op.opcodeIndex]
        assert (oc.deprecatedBuiltinCode, oc.builtinCode) == (127, 150)  # the real code is the max

    _edit(models["gelu"], codes)


def test_softmax_beta(models):
    assert check_gpu_compat(models["softmax"]).ok

    def beta(model):
        _, op = _op(model, "SOFTMAX")
        assert op.builtinOptions.beta == 1.0
        op.builtinOptions.beta = 2.0

    (v,) = _only(check_gpu_compat(_edit(models["softmax"], beta)), "softmax_beta")
    assert v.op_name == "SOFTMAX" and "beta=2" in v.detail


def test_dynamic_shape(models):
    def dynamic(model):
        sg = model.subgraphs[0]
        sg.tensors[sg.inputs[0]].shapeSignature = [-1, 4]

    (v,) = _only(check_gpu_compat(_edit(models["softmax"], dynamic)), "dynamic_shape")
    assert "[-1, 4]" in v.detail


def test_custom_and_flex_ops(models):
    from ai_edge_litert import schema_py_generated as schema

    def custom(code: bytes):
        def change(model):
            _, op = _op(model, "SOFTMAX")
            oc = model.operatorCodes[op.opcodeIndex]
            oc.builtinCode = oc.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
            oc.customCode = code

        return change

    flex = check_gpu_compat(_edit(models["softmax"], custom(b"FlexSoftmax")))
    (v,) = _only(flex, "flex_op")
    assert v.op_name == "FlexSoftmax" and flex.ops == {"FlexSoftmax": 1}
    assert check_gpu_compat(
        _edit(models["softmax"], custom(b"FlexSoftmax")), GPU_ALLOWED_OPS | {"FlexSoftmax"}
    ).rules == {"flex_op"}
    mine = _edit(models["softmax"], custom(b"MyOp"))
    _only(check_gpu_compat(mine), "custom_op")
    assert check_gpu_compat(mine, allowlist=GPU_ALLOWED_OPS | {"MyOp"}).ok


def test_custom_allowlist(models):
    report = check_gpu_compat(models["good"], allowlist=GPU_ALLOWED_OPS - {"CONV_2D"})
    (v,) = _only(report, "op_not_allowed")
    assert v.op_name == "CONV_2D"


def test_assert_lists_every_violation(models):
    with pytest.raises(GpuCompatError) as info:
        assert_gpu_compat(models["bmm_adj"])
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert message.count("[batch_matmul_adj]") == 2 and "bmm_adj.tflite" in message
    assert info.value.report.rules == {"batch_matmul_adj"}
    assert len(message.splitlines()) == 1 + len(info.value.report.violations)


def test_bad_files(models, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.tflite"):
        check_gpu_compat(tmp_path / "missing.tflite")
    data = models["good"].read_bytes()
    truncated = tmp_path / "truncated.tflite"
    for size in (len(data) // 2, 200, 9):
        truncated.write_bytes(data[:size])
        with pytest.raises(ValueError, match="truncated.tflite"):
            check_gpu_compat(truncated)
    text = tmp_path / "notes.tflite"
    text.write_text("this is not a flatbuffer\n" * 4)
    with pytest.raises(ValueError, match="notes.tflite: not a TFLite flatbuffer"):
        check_gpu_compat(text)
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.tflite"):
        check_gpu_compat(empty)
    rng = np.random.default_rng(0)
    noise = bytearray(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    noise[4:8] = b"TFL3"
    with pytest.raises(ValueError, match="<bytes>"):
        check_gpu_compat(bytes(noise))
