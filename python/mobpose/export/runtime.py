"""Running exported .tflite files: the TFLite CPU interpreter (XNNPACK) and LiteRT's GPU engine.

The GPU engine is ai-edge-litert's ML Drift accelerator (WebGPU over Vulkan). Without a phone it runs on
Mesa's lavapipe software Vulkan device (Mesa >= 25; `scripts/install_lavapipe.sh` sets it up and prints
the VK_ICD_FILENAMES to export). Inputs and outputs are dicts keyed by the signature's tensor names.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["GpuRun", "gpu_engine_problem", "native_output", "run_cpu", "run_gpu"]

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def native_output(sink: list[str] | None = None):
    """Captures what native code writes to fds 1 and 2 (LiteRT logs INFO lines per accelerator there):
    appended to `sink` if given, else to this module's log at INFO (shown by `mobpose -v`)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            if sink is not None:
                sink.append(text)
            elif text.strip():
                logger.info("LiteRT (native output): %s", text.strip()[-4000:])


def _signature(path: Path):
    from .check import check_gpu_compat

    report = check_gpu_compat(path)
    if len(report.signatures) != 1:
        raise ValueError(f"{path}: expected one signature, found {report.signatures}")
    return report.signatures[0], report.inputs, report.outputs


def _inputs(path: Path, inputs: dict[str, np.ndarray], specs) -> dict[str, np.ndarray]:
    names = {s.name for s in specs}
    if set(inputs) != names:
        raise ValueError(f"{path}: inputs must be {sorted(names)}, got {sorted(inputs)}")
    out = {}
    for s in specs:
        a = np.ascontiguousarray(inputs[s.name], dtype=np.float32)
        if a.shape != tuple(s.shape):
            raise ValueError(f"{path}: input {s.name!r} must have shape {tuple(s.shape)}, got {a.shape}")
        out[s.name] = a
    return out


def run_cpu(path: str | os.PathLike, inputs: dict[str, np.ndarray], threads: int = 1) -> dict[str, np.ndarray]:
    """Runs the file's signature with the TFLite interpreter (XNNPACK) on `threads` threads."""
    from ai_edge_litert.interpreter import Interpreter

    path = Path(path)
    sig, in_specs, _ = _signature(path)
    feed = _inputs(path, inputs, in_specs)
    with native_output():
        runner = Interpreter(model_path=str(path), num_threads=threads).get_signature_runner(sig)
        out = runner(**feed)
    return {k: np.array(v) for k, v in out.items()}


def gpu_engine_problem() -> str | None:
    """None when LiteRT's GPU accelerator can start here, else why not (one line)."""
    if not os.environ.get("VK_ICD_FILENAMES") and not Path("/usr/share/vulkan/icd.d").is_dir():
        return "no Vulkan driver (run: out=$(bash scripts/install_lavapipe.sh) && eval \"$out\")"
    try:
        from ai_edge_litert.compiled_model import CompiledModel  # noqa: F401
    except ImportError as exc:
        return f"ai-edge-litert is not installed: {exc}"
    return None


class GpuRun:
    """One run on the GPU engine: outputs and whether every op ran on the GPU."""

    def __init__(self, outputs: dict[str, np.ndarray], fully_accelerated: bool) -> None:
        self.outputs = outputs
        self.fully_accelerated = fully_accelerated


def run_gpu(path: str | os.PathLike, inputs: dict[str, np.ndarray], enforce_f32: bool = True) -> GpuRun:
    """Runs the file's signature on LiteRT's GPU accelerator (f32 enforced, or the default fp16).

    Raises:
        RuntimeError: the GPU engine cannot start (no Vulkan device) or cannot compile the model.
    """
    from ai_edge_litert.compiled_model import CompiledModel, GpuOptions, HardwareAccelerator, Options

    path = Path(path)
    sig, in_specs, out_specs = _signature(path)
    feed = _inputs(path, inputs, in_specs)
    options = Options(hardware_accelerators=HardwareAccelerator.GPU, gpu_options=GpuOptions(enforce_f32=enforce_f32))
    try:
        with native_output():
            model = CompiledModel.from_file(str(path), options=options)
            full = bool(model.is_fully_accelerated())
            ins = {s.name: model.create_input_buffer_by_name(sig, s.name) for s in in_specs}
            outs = {s.name: model.create_output_buffer_by_name(sig, s.name) for s in out_specs}
            for name, buf in ins.items():
                buf.write(feed[name])
            model.run_by_name(sig, ins, outs)
            result = {s.name: outs[s.name].read(int(np.prod(s.shape)), np.float32).reshape(s.shape)
                      for s in out_specs}
    except RuntimeError as exc:
        raise RuntimeError(f"{path}: the LiteRT GPU engine failed ({gpu_engine_problem() or exc})") from exc
    return GpuRun(result, full)
