"""Mobile GPU delegate compatibility check over a written .tflite flatbuffer.

TF's own analyzer (`tf.lite.experimental.Analyzer(gpu_compatibility=True)`) reports "compatible" for
anything in TF >= 2.18 and LiteRT 2.3, so the rules of DESIGN.md section 7 are checked here directly on
the flatbuffer (`ai_edge_litert.schema_py_generated`), without TensorFlow and without running the model:

- `rank`: every tensor of every subgraph has rank <= 4 (a 5D heatmap fails outright on the GPU);
- `op_not_allowed` / `banned_op` / `custom_op` / `flex_op`: builtin ops outside the allowlist
  (`GPU_ALLOWED_OPS` by default; `BANNED_OPS` explains the ones that are known traps), any custom op
  whose custom_code is not in the allowlist, and every Flex (TF select) op;
- `batch_matmul_adj`, `batch_matmul_broadcast`, `batch_matmul_rank`: BATCH_MATMUL with adj_x / adj_y
  (ignored by the Android GPU delegate), with batch dimensions that differ or broadcast (ran "fully
  accelerated" and gave wrong numbers), or with an input of rank > 4;
- `elementwise_rank`: both operands of ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM, SQUARED_DIFFERENCE and POW
  have the same rank, constants included, except that a rank-0 constant is accepted by default
  (`allow_scalar_constants=False` makes it a violation too): litert-torch folds every splat constant
  (all elements equal, whatever its shape: an epsilon, `x * 0.5`) into a rank-0 scalar, so it cannot
  be written at full rank at all; the delegate reads a one-element constant as a scalar attribute, and
  the PRM and IPEM forms with such constants ran fully accelerated and exact (f32) on the real LiteRT
  GPU engine. Operands of different ranks that are both runtime tensors, or a lower-rank constant
  that is not a scalar, stay violations (DESIGN.md section 7);
- `softmax_beta`: SOFTMAX beta == 1;
- `dynamic_shape`: no -1 in any shape or shape_signature, and shape_signature equal to shape;
- `int64`, `float64`: no INT64 / FLOAT64 tensor anywhere;
- `gelu_approximate`: GELU, if present, is the tanh approximation (`approximate=True`);
- `gather_indices`: GATHER (which the delegate does support) takes rank-1 INT32 indices and non-INT32 data.

Op names come from the `BuiltinOperator` enum; an operator code's real builtin code is
max(deprecated_builtin_code, builtin_code) (codes >= 127 keep 127, PLACEHOLDER_FOR_GREATER_OP_CODES, in the
deprecated int8 field; files older than the int32 field have builtin_code 0).

    report = check_gpu_compat("model.tflite")
    if not report.ok:
        logger.warning("%s", report.summary())
    assert_gpu_compat("model.tflite")  # raises GpuCompatError listing every violation
"""

from __future__ import annotations

import logging
import os
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ai_edge_litert import schema_py_generated as schema

__all__ = [
    "BANNED_OPS",
    "ELEMENTWISE_BINARY_OPS",
    "GPU_ALLOWED_OPS",
    "MAX_RANK",
    "GpuCheckReport",
    "GpuCompatError",
    "TensorSpec",
    "Violation",
    "assert_gpu_compat",
    "check_gpu_compat",
]

logger = logging.getLogger(__name__)

MAX_RANK = 4

# Builtin ops the mobile GPU delegate takes on float tensors. The list follows the delegate's own
# per-op checks (tensorflow/lite/tools/versioning/gpu_compatibility.cc, which replaced
# TFLiteOperationParser::IsSupported of delegates/gpu/common/model_builder.cc), minus ops whose runtime
# tensors are bool or int (CAST, comparisons, LOGICAL_*, SELECT*, ONE_HOT, FLOOR_DIV/MOD: the delegate
# drops nodes with non-float runtime tensors), the quantization path (QUANTIZE) and LSTM / DENSIFY.
# Notes:
# - DEQUANTIZE is here for fp16 weights (an FLOAT16 constant dequantized to FLOAT32 is folded away).
# - GATHER is supported by the delegate (1 runtime + 1 constant or 2 runtime inputs, rank-1 INT32
#   indices, non-INT32 data); the checker enforces those conditions (rule `gather_indices`). GATHER_ND is
#   not supported, and litert-torch lowers `x[:, idx]` and `index_select` to GATHER_ND.
# - SQUEEZE and EXPAND_DIMS are absent from the delegate's list: use RESHAPE (litert-torch does).
# - SLICE / STRIDED_SLICE are checked by the delegate on 3D/4D inputs only; that is not enforced here.
GPU_ALLOWED_OPS: frozenset[str] = frozenset(
    {
        "ABS",
        "ADD",
        "ADD_N",
        "AVERAGE_POOL_2D",
        "BATCH_MATMUL",
        "CONCATENATION",
        "CONV_2D",
        "COS",
        "DEPTHWISE_CONV_2D",
        "DEPTH_TO_SPACE",
        "DEQUANTIZE",
        "DIV",
        "ELU",
        "EXP",
        "FLOOR",
        "FULLY_CONNECTED",
        "GATHER",
        "GELU",
        "HARD_SWISH",
        "LEAKY_RELU",
        "LOG",
        "LOGISTIC",
        "MAXIMUM",
        "MAX_POOL_2D",
        "MEAN",
        "MINIMUM",
        "MIRROR_PAD",
        "MUL",
        "NEG",
        "PACK",
        "PAD",
        "PADV2",
        "POW",
        "PRELU",
        "REDUCE_MAX",
        "REDUCE_MIN",
        "REDUCE_PROD",
        "RELU",
        "RELU6",
        "RELU_N1_TO_1",
        "RESHAPE",
        "RESIZE_BILINEAR",
        "RESIZE_NEAREST_NEIGHBOR",
        "RSQRT",
        "SIN",
        "SLICE",
        "SOFTMAX",
        "SPACE_TO_DEPTH",
        "SPLIT",
        "SPLIT_V",
        "SQRT",
        "SQUARE",
        "SQUARED_DIFFERENCE",
        "STRIDED_SLICE",
        "SUB",
        "SUM",
        "TANH",
        "TILE",
        "TRANSPOSE",
        "TRANSPOSE_CONV",
    }
)

# Ops that are easy to emit by accident and never run on the GPU, with the replacement to use.
BANNED_OPS: dict[str, str] = {
    "ARG_MAX": "not supported by the GPU delegate; use a soft-argmax (SUM of p * grid)",
    "ARG_MIN": "not supported by the GPU delegate; use a soft-argmax (SUM of p * grid)",
    "GATHER_ND": "not supported by the GPU delegate (x[:, idx] and index_select lower to it)",
    "TOPK_V2": "not supported by the GPU delegate",
}

# Binary elementwise ops whose two operands must have the same rank.
ELEMENTWISE_BINARY_OPS: frozenset[str] = frozenset(
    {"ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "POW"}
)

_OP_NAMES: dict[int, str] = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES: dict[int, str] = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_CUSTOM = schema.BuiltinOperator.CUSTOM
_IDENTIFIER = b"TFL3"


class TensorSpec(NamedTuple):
    """A model input or output: signature (or tensor) name, static shape, TensorType name."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class Violation:
    """One broken rule.

    Attributes:
        rule: short rule id (`rank`, `op_not_allowed`, `batch_matmul_adj`, ... see the module docstring).
        op_index: index of the operator in its subgraph; for a tensor rule, the op producing the tensor
            (else its first consumer), None when no op touches it.
        op_name: builtin op name (or custom code) of that operator, "" when op_index is None.
        detail: human-readable explanation with the shapes / values involved.
        subgraph: subgraph index.
        tensor: tensor name for tensor rules, else None.
    """

    rule: str
    op_index: int | None
    op_name: str
    detail: str
    subgraph: int = 0
    tensor: str | None = None

    def __str__(self) -> str:
        where = f"op #{self.op_index} {self.op_name}" if self.op_index is not None else "no op"
        if self.subgraph:
            where = f"subgraph {self.subgraph} {where}"
        return f"[{self.rule}] {where}: {self.detail}"


@dataclass
class GpuCheckReport:
    """Result of `check_gpu_compat`.

    Attributes:
        source: file name, or "<bytes>".
        violations: every broken rule, in subgraph / operator order (tensor rules first).
        ops: histogram of op names over all subgraphs (custom ops by custom code).
        max_rank: largest tensor rank in the model.
        signatures: signature keys.
        inputs, outputs: model inputs / outputs (of every signature, else of subgraph 0).
        num_subgraphs: number of subgraphs.
    """

    source: str
    violations: list[Violation] = field(default_factory=list)
    ops: dict[str, int] = field(default_factory=dict)
    max_rank: int = 0
    signatures: list[str] = field(default_factory=list)
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    num_subgraphs: int = 0

    @property
    def ok(self) -> bool:
        """True when no rule is broken."""
        return not self.violations

    @property
    def rules(self) -> set[str]:
        """The ids of the broken rules."""
        return {v.rule for v in self.violations}

    def summary(self) -> str:
        """A header line (verdict, op count, max rank, I/O) and one line per violation."""
        n_ops = sum(self.ops.values())
        verdict = "GPU-compatible" if self.ok else f"{len(self.violations)} GPU violation(s)"
        io = ", ".join(f"{s.name}{list(s.shape)}:{s.dtype}" for s in self.inputs)
        io += " -> " + ", ".join(f"{s.name}{list(s.shape)}:{s.dtype}" for s in self.outputs)
        lines = [f"{self.source}: {verdict}; {n_ops} ops ({len(self.ops)} kinds), max rank {self.max_rank}; {io}"]
        lines += [f"  {v}" for v in self.violations]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (shapes as lists)."""
        return {
            "source": self.source,
            "ok": self.ok,
            "violations": [asdict(v) for v in self.violations],
            "ops": dict(self.ops),
            "max_rank": self.max_rank,
            "signatures": list(self.signatures),
            "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in self.inputs],
            "outputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in self.outputs],
            "num_subgraphs": self.num_subgraphs,
        }


class GpuCompatError(ValueError):
    """A model that breaks GPU delegate rules; `report` holds the full `GpuCheckReport`."""

    def __init__(self, report: GpuCheckReport):
        super().__init__(report.summary())
        self.report = report


def _load(path_or_bytes: str | os.PathLike[str] | bytes | bytearray | memoryview) -> tuple[bytes, str]:
    if isinstance(path_or_bytes, bytes | bytearray | memoryview):
        return bytes(path_or_bytes), "<bytes>"
    path = Path(path_or_bytes)
    if not path.is_file():
        raise FileNotFoundError(f"no such .tflite file: {path}")
    return path.read_bytes(), str(path)


def _shape(tensor: schema.Tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()


def _shape_signature(tensor: schema.Tensor) -> tuple[int, ...] | None:
    return tuple(int(d) for d in tensor.ShapeSignatureAsNumpy()) if tensor.ShapeSignatureLength() else None


def _options(op: schema.Operator, expected_type: int, cls: type) -> Any:
    """The op's builtin options table as `cls`, or None when absent or of another type."""
    if op.BuiltinOptionsType() != expected_type:
        return None
    table = op.BuiltinOptions()
    if table is None:
        return None
    options = cls()
    options.Init(table.Bytes, table.Pos)
    return options


def _op_name(code: schema.OperatorCode) -> tuple[str, str | None]:
    """(name, custom_code): builtin name, or the custom code for CUSTOM ops."""
    builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
    if builtin == _CUSTOM:
        custom = (code.CustomCode() or b"").decode("utf-8", "replace")
        return custom or "CUSTOM", custom
    return _OP_NAMES.get(builtin, f"BUILTIN_{builtin}"), None


def _check_buffers(model: schema.Model, buf: bytes, source: str) -> None:
    """Raises ValueError when a buffer's data lies beyond the end of the file (a truncated file)."""
    for b in range(model.BuffersLength()):
        buffer = model.Buffers(b)
        offset, size = int(buffer.Offset()), int(buffer.Size())
        if offset > 1 and offset + size > len(buf):
            raise ValueError(f"{source}: truncated .tflite file (buffer {b} ends at {offset + size} > {len(buf)})")
        field_offset = buffer._tab.Offset(4)  # Buffer.data
        if field_offset:
            start = buffer._tab.Vector(field_offset)
            end = start + buffer._tab.VectorLen(field_offset)
            if end > len(buf):
                raise ValueError(f"{source}: truncated .tflite file (buffer {b} ends at {end} > {len(buf)})")


def _io_specs(model: schema.Model, report: GpuCheckReport) -> None:
    def spec(sg: schema.SubGraph, index: int, name: str | None) -> TensorSpec:
        t = sg.Tensors(index)
        return TensorSpec(name or (t.Name() or b"").decode(), _shape(t), _TYPE_NAMES.get(t.Type(), str(t.Type())))

    n_sig = model.SignatureDefsLength()
    for s in range(n_sig):
        sig = model.SignatureDefs(s)
        key = (sig.SignatureKey() or b"").decode()
        report.signatures.append(key)
        sg = model.Subgraphs(sig.SubgraphIndex())
        prefix = f"{key}:" if n_sig > 1 else ""
        for i in range(sig.InputsLength()):
            m = sig.Inputs(i)
            report.inputs.append(spec(sg, m.TensorIndex(), prefix + m.Name().decode()))
        for i in range(sig.OutputsLength()):
            m = sig.Outputs(i)
            report.outputs.append(spec(sg, m.TensorIndex(), prefix + m.Name().decode()))
    if not n_sig:
        sg = model.Subgraphs(0)
        report.inputs = [spec(sg, int(i), None) for i in (sg.InputsAsNumpy() if sg.InputsLength() else ())]
        report.outputs = [spec(sg, int(i), None) for i in (sg.OutputsAsNumpy() if sg.OutputsLength() else ())]


def _check_subgraph(
    model: schema.Model,
    si: int,
    names: list[tuple[str, str | None]],
    allowed: frozenset[str],
    allow_scalar_constants: bool,
    report: GpuCheckReport,
    histogram: Counter[str],
) -> None:
    sg = model.Subgraphs(si)
    ops = [sg.Operators(o) for o in range(sg.OperatorsLength())]
    op_names = [names[op.OpcodeIndex()] for op in ops]
    op_inputs = [[int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else [] for op in ops]
    op_outputs = [[int(i) for i in op.OutputsAsNumpy()] if op.OutputsLength() else [] for op in ops]
    n_tensors = sg.TensorsLength()
    tensors = [sg.Tensors(t) for t in range(n_tensors)]
    shapes = [_shape(t) for t in tensors]
    tensor_names = [(t.Name() or b"").decode("utf-8", "replace") for t in tensors]

    def is_constant(t: int) -> bool:
        b = tensors[t].Buffer()
        if b <= 0 or b >= model.BuffersLength():
            return False
        buffer = model.Buffers(b)
        return buffer.DataLength() > 0 or int(buffer.Offset()) > 1

    owner: dict[int, int] = {}  # tensor -> producing op, else first consumer
    for o in range(len(ops)):
        for t in op_outputs[o]:
            owner.setdefault(t, o)
    for o in range(len(ops)):
        for t in op_inputs[o]:
            if t >= 0:
                owner.setdefault(t, o)

    def add(rule: str, op_index: int | None, detail: str, tensor: str | None = None) -> None:
        name = op_names[op_index][0] if op_index is not None else ""
        report.violations.append(Violation(rule, op_index, name, detail, si, tensor))

    # Tensor rules.
    for t, tensor in enumerate(tensors):
        shape, name, o = shapes[t], tensor_names[t], owner.get(t)
        report.max_rank = max(report.max_rank, len(shape))
        if len(shape) > MAX_RANK:
            add("rank", o, f"tensor '{name}' has rank {len(shape)} > {MAX_RANK}: shape {list(shape)}", name)
        dtype = _TYPE_NAMES.get(tensor.Type(), str(tensor.Type()))
        if dtype in ("INT64", "FLOAT64"):
            add(dtype.lower(), o, f"tensor '{name}' is {dtype}, shape {list(shape)}", name)
        signature = _shape_signature(tensor)
        if -1 in shape or (signature is not None and (-1 in signature or signature != shape)):
            sig = list(signature) if signature is not None else None
            add("dynamic_shape", o, f"tensor '{name}' has shape {list(shape)}, shape_signature {sig}", name)

    # Operator rules.
    for o, op in enumerate(ops):
        name, custom = op_names[o]
        histogram[name] += 1
        inputs = op_inputs[o]
        if custom is not None:
            if custom.startswith("Flex"):
                add("flex_op", o, f"Flex (TF select) op '{custom}' needs the TF runtime")
            elif custom not in allowed:
                add("custom_op", o, f"custom op '{custom}' is not in the allowlist")
            continue
        if name not in allowed:
            if name in BANNED_OPS:
                add("banned_op", o, f"{name}: {BANNED_OPS[name]}")
            else:
                add("op_not_allowed", o, f"{name} is not in the GPU allowlist")

        if name == "BATCH_MATMUL" and len(inputs) >= 2:
            opts = _options(op, schema.BuiltinOptions.BatchMatMulOptions, schema.BatchMatMulOptions)
            adj_x, adj_y = (bool(opts.AdjX()), bool(opts.AdjY())) if opts is not None else (False, False)
            if adj_x or adj_y:
                add("batch_matmul_adj", o, f"adj_x={adj_x} adj_y={adj_y}: the Android GPU delegate ignores them")
            a, b = shapes[inputs[0]], shapes[inputs[1]]
            if max(len(a), len(b)) > MAX_RANK:
                add("batch_matmul_rank", o, f"inputs of rank {len(a)} and {len(b)} > {MAX_RANK}: {list(a)} @ {list(b)}")
            if a[:-2] != b[:-2]:
                add("batch_matmul_broadcast", o, f"batch dims differ (broadcast): {list(a)} @ {list(b)}")
        elif name in ELEMENTWISE_BINARY_OPS and len(inputs) >= 2 and min(inputs[:2]) >= 0:
            x, y = inputs[0], inputs[1]
            if len(shapes[x]) != len(shapes[y]):

                def scalar_constant(t: int) -> bool:
                    return len(shapes[t]) == 0 and is_constant(t)

                if not (allow_scalar_constants and (scalar_constant(x) or scalar_constant(y))):
                    kinds = ["constant" if is_constant(t) else "runtime" for t in (x, y)]
                    add(
                        "elementwise_rank",
                        o,
                        f"operands of rank {len(shapes[x])} ({kinds[0]}) and {len(shapes[y])} ({kinds[1]}): "
                        f"{list(shapes[x])} vs {list(shapes[y])}",
                    )
        elif name == "SOFTMAX":
            opts = _options(op, schema.BuiltinOptions.SoftmaxOptions, schema.SoftmaxOptions)
            beta = float(opts.Beta()) if opts is not None else 0.0  # TFLite defaults a missing beta to 0
            if beta != 1.0:
                add("softmax_beta", o, f"beta={beta:g}, only beta=1 is supported")
        elif name == "GELU":
            opts = _options(op, schema.BuiltinOptions.GeluOptions, schema.GeluOptions)
            approximate = bool(opts.Approximate()) if opts is not None else False
            if not approximate:
                add("gelu_approximate", o, "GELU is the erf form (approximate=False); use approximate='tanh'")
        elif name == "GATHER" and len(inputs) >= 2:
            data, indices = tensors[inputs[0]], tensors[inputs[1]]
            problems = []
            if len(shapes[inputs[1]]) != 1:
                problems.append(f"indices of rank {len(shapes[inputs[1]])} (need 1)")
            if indices.Type() != schema.TensorType.INT32:
                problems.append(f"indices of type {_TYPE_NAMES.get(indices.Type())} (need INT32)")
            if data.Type() == schema.TensorType.INT32:
                problems.append("INT32 data")
            if problems:
                add("gather_indices", o, "GATHER with " + ", ".join(problems))


def check_gpu_compat(
    path_or_bytes: str | os.PathLike[str] | bytes | bytearray | memoryview,
    allowlist: Iterable[str] | None = None,
    *,
    allow_scalar_constants: bool = True,
) -> GpuCheckReport:
    """Checks a .tflite flatbuffer against the mobile GPU delegate rules (module docstring).

    Args:
        path_or_bytes: path of the .tflite file, or its bytes.
        allowlist: builtin op names (and custom codes) allowed; default `GPU_ALLOWED_OPS`. Flex ops are
            never allowed.
        allow_scalar_constants: accept a rank-0 constant as an elementwise operand of a higher-rank
            tensor (rule `elementwise_rank`); on by default (see the module docstring).

    Returns:
        The report; `report.ok` is True when no rule is broken.

    Raises:
        FileNotFoundError: no file at that path.
        ValueError: not a TFLite flatbuffer, or a truncated / corrupt one (the message names the file).
    """
    buf, source = _load(path_or_bytes)
    allowed = GPU_ALLOWED_OPS if allowlist is None else frozenset(allowlist)
    if len(buf) < 8 or buf[4:8] != _IDENTIFIER:
        raise ValueError(f"{source}: not a TFLite flatbuffer (no 'TFL3' identifier; {len(buf)} bytes)")
    report = GpuCheckReport(source=source)
    histogram: Counter[str] = Counter()
    try:
        model = schema.Model.GetRootAs(buf, 0)
        _check_buffers(model, buf, source)
        report.num_subgraphs = model.SubgraphsLength()
        if report.num_subgraphs == 0:
            raise ValueError(f"{source}: TFLite model without subgraphs")
        names = [_op_name(model.OperatorCodes(c)) for c in range(model.OperatorCodesLength())]
        for si in range(report.num_subgraphs):
            _check_subgraph(model, si, names, allowed, allow_scalar_constants, report, histogram)
        _io_specs(model, report)
    except (struct.error, IndexError, TypeError, UnicodeDecodeError, AttributeError) as e:
        raise ValueError(f"{source}: corrupt or truncated .tflite file ({e})") from e
    except ValueError as e:
        if str(e).startswith(source):
            raise
        raise ValueError(f"{source}: corrupt or truncated .tflite file ({e})") from e
    report.ops = dict(sorted(histogram.items()))
    logger.debug("%s", report.summary())
    return report


def assert_gpu_compat(
    path_or_bytes: str | os.PathLike[str] | bytes | bytearray | memoryview,
    allowlist: Iterable[str] | None = None,
    *,
    allow_scalar_constants: bool = True,
) -> GpuCheckReport:
    """Like `check_gpu_compat`, but raises `GpuCompatError` (a ValueError) listing every violation.

    Returns:
        The report of a compatible model.
    """
    report = check_gpu_compat(path_or_bytes, allowlist, allow_scalar_constants=allow_scalar_constants)
    if not report.ok:
        raise GpuCompatError(report)
    logger.info("%s", report.summary())
    return report
