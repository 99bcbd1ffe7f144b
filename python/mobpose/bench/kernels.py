"""C++ kernels against the PyTorch reference, measured in the same run.

One JSON line per case: median and p90 of the C++ op (through `mobpose._core`, binding included) and
of PyTorch eager (`mobpose.functional`, backend='torch', under inference_mode) at the same thread
count, and their ratio. Soft-argmax cases also give the kernel's time as a fraction of the memory
bandwidth bound: bound = bytes read / measured copy bandwidth (copy bandwidth counts the bytes read
plus the bytes written by a large np.copyto), fraction = bound / measured time. "hot" cases time the
same heatmap again and again (it may sit in cache); "cold" cases rotate through enough heatmaps to
exceed any cache, as a camera stream would.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import platform
import time
from collections.abc import Callable

import numpy as np

from .timing import time_call

logger = logging.getLogger(__name__)

SOFTARGMAX_SHAPES = ((1, 18, 32, 32, 32), (1, 18, 64, 64, 64))
# (batch, heads, tokens, head dim): the PRM's spatial attention (tokens = joints of each of T frames)
# and temporal attention (tokens = frames of each joint), and a one-frame streaming step.
MQA_SHAPES = (
    (1, 8, 18, 16),
    (81, 8, 18, 16),
    (243, 4, 18, 16),
    (1, 8, 81, 16),
    (18, 8, 81, 16),
    (18, 4, 243, 16),
)
COLD_BYTES = 256 << 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", default="1,all", help="comma list of thread counts; 'all' = every core")
    p.add_argument("--max-seconds", type=float, default=1.0, help="time budget per measurement")
    p.add_argument("--quick", action="store_true", help="fewer cases and shorter budgets (smoke run)")
    p.add_argument("--ops", default="soft_argmax_3d,mqa_prior", help="comma list of ops to measure")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")


def copy_bandwidth_gbs(nbytes: int = COLD_BYTES) -> float:
    """Memory copy bandwidth in GB/s, counting bytes read plus bytes written."""
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    t = time_call(lambda: np.copyto(dst, src), warmup=1, min_runs=5, max_runs=20, max_seconds=2.0)
    return 2 * nbytes / (t.median_ms * 1e-3) / 1e9


def _emit(record: dict, out, emit: Callable[[str], None]) -> None:
    line = json.dumps(record)
    emit(line)
    if out is not None:
        out.write(line + "\n")


def _thread_counts(spec: str, cores: int) -> list[int]:
    counts = []
    for item in spec.split(","):
        item = item.strip()
        n = cores if item == "all" else int(item)
        if n < 1:
            raise ValueError(f"--threads entries must be >= 1 or 'all', got {item!r}")
        if n not in counts:
            counts.append(n)
    return counts


def _softargmax_case(shape, mode, threads, bw, budget, rng) -> dict:
    import torch

    from .. import _core
    from .. import functional as F

    hm = rng.standard_normal(shape, dtype=np.float32) * 3
    hm_t = torch.from_numpy(hm)
    with torch.inference_mode():
        t_exact = time_call(lambda: F.soft_argmax_3d(hm_t, "exact"), max_seconds=budget)
        t_torch = time_call(lambda: F.soft_argmax_3d(hm_t, mode), max_seconds=budget)
    t_cpp = time_call(lambda: _core.soft_argmax_3d(hm, mode, threads), max_seconds=budget)
    # Cold: a new heatmap each call, from a pool larger than any cache.
    pool = [hm.copy() for _ in range(max(2, COLD_BYTES // hm.nbytes))]
    counter = iter(range(1 << 62))
    t_cold = time_call(
        lambda: _core.soft_argmax_3d(pool[next(counter) % len(pool)], mode, threads), max_seconds=budget
    )
    bound_ms = hm.nbytes / (bw * 1e9) * 1e3
    return {
        "bench": "kernels", "op": "soft_argmax_3d", "mode": mode, "shape": list(shape), "threads": threads,
        "kernel": _core.kernel_names()[f"softargmax3d_{mode}"],
        **t_cpp.as_dict("cpp"), **t_cold.as_dict("cpp_cold"), **t_torch.as_dict("torch"),
        "torch_exact_ms_median": round(t_exact.median_ms, 5),
        "speedup_vs_torch_same_mode": round(t_torch.median_ms / t_cpp.median_ms, 2),
        "speedup_vs_torch_exact": round(t_exact.median_ms / t_cpp.median_ms, 2),
        "bandwidth_bound_ms": round(bound_ms, 5),
        "bandwidth_fraction_hot": round(bound_ms / t_cpp.median_ms, 3),
        "bandwidth_fraction_cold": round(bound_ms / t_cold.median_ms, 3),
    }


def plain_mqa(q, k, v, adj, scale: float, prior: str, future):
    """The attention as a PyTorch user writes it (the bench's plain baseline): no argument checks and no
    handling of the float32 extremes, which mobpose.functional.mqa_prior adds. `future`: the (N, N) bool mask of
    the keys after each query (causal), or None."""
    import torch

    b, h, n, d = q.shape
    logits = torch.bmm(q.reshape(b, h * n, d), k.transpose(1, 2)).reshape(b, h, n, n) * d**-0.5
    logits = logits * (1.0 + scale * adj) if prior == "mul" else logits + scale * adj
    if future is not None:
        logits = logits.masked_fill(future, float("-inf"))
    return torch.bmm(torch.softmax(logits, -1).reshape(b, h * n, n), v).reshape(b, h, n, d)


def _mqa_case(shape, prior, causal, threads, budget, rng) -> dict:
    import torch

    from .. import _core
    from .. import functional as F

    b, h, n, d = shape
    q = rng.standard_normal((b, h, n, d), dtype=np.float32)
    k = rng.standard_normal((b, n, d), dtype=np.float32)
    v = rng.standard_normal((b, n, d), dtype=np.float32)
    adj = np.abs(rng.standard_normal((n, n), dtype=np.float32))
    qt, kt, vt, at = (torch.from_numpy(a) for a in (q, k, v, adj))
    with torch.inference_mode():
        t_torch = time_call(
            lambda: F.mqa_prior(qt, kt, vt, at, scale=0.5, prior=prior, causal=causal), max_seconds=budget
        )
        future = torch.ones(n, n, dtype=torch.bool).triu(1) if causal else None
        t_plain = time_call(lambda: plain_mqa(qt, kt, vt, at, 0.5, prior, future), max_seconds=budget)
    t_cpp = time_call(lambda: _core.mqa_prior(q, k, v, adj, 0.5, prior, causal, threads), max_seconds=budget)
    return {
        "bench": "kernels", "op": "mqa_prior", "prior": prior, "causal": causal, "shape_bhnd": list(shape),
        "threads": threads, "kernel": _core.kernel_names()[f"mqa_{prior}prior"],
        **t_cpp.as_dict("cpp"), **t_torch.as_dict("torch"), **t_plain.as_dict("torch_plain"),
        "speedup_vs_torch": round(t_torch.median_ms / t_cpp.median_ms, 2),
        "speedup_vs_torch_plain": round(t_plain.median_ms / t_cpp.median_ms, 2),
    }


def run(args: argparse.Namespace, emit: Callable[[str], None]) -> int:
    """Runs the suite; `emit` receives each JSON line as it is measured (the CLI prints them)."""
    import torch

    from .. import _core

    ops = {o.strip() for o in args.ops.split(",")}
    unknown = ops - {"soft_argmax_3d", "mqa_prior"}
    if unknown:
        raise SystemExit(f"--ops: unknown op(s) {sorted(unknown)}; choose from soft_argmax_3d, mqa_prior")
    cores = _core.hardware_threads()
    budget = 0.3 if args.quick else args.max_seconds
    started = time.perf_counter()
    bw = copy_bandwidth_gbs(64 << 20 if args.quick else COLD_BYTES)
    rng = np.random.default_rng(0)
    sa_shapes = SOFTARGMAX_SHAPES[:1] if args.quick else SOFTARGMAX_SHAPES
    mqa_shapes = MQA_SHAPES[:2] + MQA_SHAPES[3:5] if args.quick else MQA_SHAPES
    summary = []
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(args.out, "a")) if args.out else None
        _emit({
            "bench": "kernels", "case": "machine", "cpu": platform.processor() or platform.machine(),
            "cores": cores, "variant": _core.kernel_variant(), "torch": torch.__version__,
            "copy_bandwidth_gbs": round(bw, 2),
        }, out, emit)
        for threads in _thread_counts(args.threads, cores):
            torch.set_num_threads(threads)
            if "soft_argmax_3d" in ops:
                for shape in sa_shapes:
                    for mode in ("exact", "taylor", "taylor_clamped"):
                        summary.append(_softargmax_case(shape, mode, threads, bw, budget, rng))
                        _emit(summary[-1], out, emit)
            if "mqa_prior" in ops:
                for shape in mqa_shapes:
                    for prior in ("mul", "add"):
                        for causal in (False, True):
                            summary.append(_mqa_case(shape, prior, causal, threads, budget, rng))
                            _emit(summary[-1], out, emit)
        sa = [r["speedup_vs_torch_same_mode"] for r in summary if r["op"] == "soft_argmax_3d"]
        mq = [r["speedup_vs_torch"] for r in summary if r["op"] == "mqa_prior"]
        mqp = [r["speedup_vs_torch_plain"] for r in summary if r["op"] == "mqa_prior"]
        _emit({
            "bench": "kernels", "case": "summary", "cases": len(summary),
            "softargmax_speedup_min": min(sa) if sa else None, "mqa_speedup_min": min(mq) if mq else None,
            "mqa_speedup_vs_plain_min": min(mqp) if mqp else None,
            "seconds": round(time.perf_counter() - started, 1),
        }, out, emit)
    return 0
