"""Exported TFLite models against PyTorch eager, measured in the same run.

For the IPEM (ConvNeXtPose-XS), the PRM (small, causal, one streaming step over the window), the
full step as one graph (IPEM + decoding + PRM, export_step) and the two files back to back: TFLite
CPU latency (XNNPACK) at each thread count, median and p90, next to PyTorch eager on the same inputs
and thread count; file sizes (fp32, and fp16 weights); and the GPU
engine's status (fully accelerated or not; timings of the software Vulkan device say nothing about a
phone and are not reported). Latency does not depend on the weights: without --ipem/--prm the
registry models with random weights are exported. One JSON line per case.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .timing import time_call


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ipem", default="convnextpose_xs", help="registry name, shipped name or checkpoint")
    p.add_argument("--prm", default="prm_small", help="registry name, shipped name or checkpoint")
    p.add_argument("--threads", default="1,2", help="comma list of thread counts")
    p.add_argument("--max-seconds", type=float, default=3.0, help="time budget per measurement")
    p.add_argument("--keep", default=None, help="folder for the exported files (reused when present)")
    p.add_argument("--quick", action="store_true", help="the test-size models, short budgets (smoke run)")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")


def _model(name: str, **kwargs):
    from ..models import create_model, list_models
    from ..pretrained import load_model

    if name in list_models():
        return create_model(name, **kwargs).eval()
    return load_model(name)


def run(args: argparse.Namespace, emit: Callable[[str], None]) -> int:
    import torch

    from ..export.runtime import gpu_engine_problem, run_gpu
    from ..export.tflite import export_step, export_tflite
    from ..models.convnextpose import normalize_images

    quick = args.quick
    ipem = _model("convnextpose_test" if quick else args.ipem)
    prm = _model("prm_test" if quick else args.prm, **({"causal": True} if (quick or args.prm == "prm_small") else {}))
    folder = Path(args.keep or tempfile.mkdtemp(prefix="mobpose_bench_export_"))
    folder.mkdir(parents=True, exist_ok=True)
    sink = open(args.out, "a") if args.out else None  # noqa: SIM115
    budget = 0.3 if quick else args.max_seconds

    def put(record: dict) -> None:
        record.update(bench="export", machine=platform.machine(), cpu_count=os.cpu_count())
        line = json.dumps(record)
        emit(line)
        if sink is not None:
            sink.write(line + "\n")

    files = {}
    for kind, model in (("ipem", ipem), ("prm", prm)):
        for fp16 in (False, True):
            path = folder / f"{kind}{'_fp16' if fp16 else ''}.tflite"
            if not path.exists():
                start = time.perf_counter()
                export_tflite(model, path, fp16=fp16)
                put({"case": "convert", "model": kind, "fp16": fp16, "seconds": round(time.perf_counter() - start, 1)})
            files[(kind, fp16)] = path
    for fp16 in (False, True):
        path = folder / f"step{'_fp16' if fp16 else ''}.tflite"
        if not path.exists():
            start = time.perf_counter()
            export_step(ipem, prm, path, fp16=fp16)
            put({"case": "convert", "model": "step", "fp16": fp16, "seconds": round(time.perf_counter() - start, 1)})
        files[("step", fp16)] = path
    s = ipem.config.input_size
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (1, s, s, 3)).astype(np.float32)
    c = prm.config
    poses = rng.normal(0, 300, (1, c.num_frames, c.num_joints, 3)).astype(np.float32)
    frame = np.array([[0, 0, s, s, 1000, 1000, s / 2, s / 2, 4000]], np.float32)
    feeds = {"ipem": {"image": image}, "prm": {"poses": poses},
             "step": {"image": image, "frame": frame, "past": poses[:, 1:]}}
    for kind in ("ipem", "prm", "step"):
        put({"case": "size", "model": kind, "bytes_fp32": files[(kind, False)].stat().st_size,
             "bytes_fp16": files[(kind, True)].stat().st_size})
        problem = gpu_engine_problem()
        status = {"case": "gpu_engine", "model": kind}
        if problem:
            status["status"] = f"unavailable: {problem}"
        else:
            try:
                status["fully_accelerated"] = run_gpu(files[(kind, False)], feeds[kind]).fully_accelerated
                status["status"] = "ran (lavapipe software Vulkan: no phone timing)"
            except RuntimeError as exc:
                status["status"] = f"failed: {exc}"
        put(status)

    from ai_edge_litert.interpreter import Interpreter

    from ..export.runtime import native_output
    from ..models.decode import decode_pose

    x_torch = normalize_images(torch.from_numpy(image.astype(np.uint8)))
    p_torch = torch.from_numpy(poses)
    box, depth = torch.from_numpy(frame[:, :4]), torch.from_numpy(frame[:, 8])
    k = torch.tensor([[1000.0, 1000.0, s / 2, s / 2, 0, 0, 0, 0, 1]])

    def torch_step():  # the same work as the one-graph step: IPEM, decoding, PRM over the window
        rel = decode_pose(ipem(x_torch), box, depth, k, ipem.heatmap_size)["root_relative_mm"][:, : c.num_joints]
        return prm(torch.cat([p_torch[:, 1:], rel[:, None]], 1))
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        with native_output():
            runners = {k: Interpreter(model_path=str(files[(k, False)]), num_threads=threads)
                       .get_signature_runner(k) for k in ("ipem", "prm", "step")}
        torch_fns = {"ipem": lambda: ipem(x_torch), "prm": lambda: prm(p_torch), "step": torch_step}
        tfl_fns = {k: (lambda r=r, k=k: r(**feeds[k])) for k, r in runners.items()}
        torch_fns["ipem+prm"] = lambda f=torch_fns: (f["ipem"](), f["prm"]())
        tfl_fns["ipem+prm"] = lambda f=tfl_fns: (f["ipem"](), f["prm"]())
        with torch.inference_mode():
            for kind in ("ipem", "prm", "step", "ipem+prm"):
                tt = time_call(torch_fns[kind], warmup=2, min_runs=5, max_seconds=budget)
                tf = time_call(tfl_fns[kind], warmup=2, min_runs=5, max_seconds=budget)
                put({"case": "latency", "model": kind, "threads": threads,
                     **tf.as_dict("tflite_cpu"), **tt.as_dict("torch"),
                     "speedup_median": round(tt.median_ms / tf.median_ms, 2)})
    if sink is not None:
        sink.close()
    return 0
