"""The PRM's streaming step: PyTorch eager against the native PRM (mobpose.runtime.NativePRM), same run.

Over a stream of poses (a random pose drifting a few mm per frame; latency does not depend on the
values), every frame is refined three ways:

- `torch`: PyTorch eager `PRM.forward` on the (1, T, J, 3) window of the last T poses (the first pose
  repeated at the front until T have arrived, as `refine_clip`), taking the last frame; the window is
  gathered from a ring of poses and converted to a tensor inside the timed call;
- `native_step`: `NativePRM.step(pose)`, which keeps its own ring and computes only what the newest
  frame's output needs;
- `native_forward`: `NativePRM.forward(window)` on the same window, the whole window recomputed.

The methods take turns on blocks of --block consecutive frames (torch on frames [i, i + block), then
native_step on them, then native_forward, then the next block), so that slow drifts of the machine's
load reach all three alike while each runs in its steady state, as a deployment running one of them
would. --block 1 alternates every frame: then each method always starts right after the others
evicted its weights from the caches (slower for all, relatively more for the fast native calls).

One JSON line per method (median, p90, min in ms over the stream after a warm-up), then a summary
with the ratios torch / native in the same run and the largest difference between the torch and the
native_step outputs (mm). Without --checkpoint an untrained prm_small (causal) is used: same cost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable

import numpy as np

from .timing import Timing


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None,
                   help="a causal PRM checkpoint or shipped name (default: an untrained prm_small, causal)")
    p.add_argument("--frames", type=int, default=300, help="timed frames of the stream")
    p.add_argument("--warmup", type=int, default=30, help="untimed frames before them")
    p.add_argument("--block", type=int, default=25, help="consecutive frames per method before the next one's turn")
    p.add_argument("--threads", type=int, default=1, help="threads of PyTorch and of the native PRM")
    p.add_argument("--seed", type=int, default=0, help="seed of the pose stream")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")


def _stream(frames: int, joints: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    start = rng.normal(0.0, 250.0, (1, joints, 3))
    return (start + np.cumsum(rng.normal(0.0, 6.0, (frames, joints, 3)), axis=0)).astype(np.float32)


def run(args: argparse.Namespace, emit: Callable[[str], None]) -> int:
    """Runs the benchmark; `emit` receives each JSON line (the CLI prints them)."""
    import torch

    from .. import _core
    from .. import checkpoint as ck
    from ..models import create_model
    from ..models.prm import PRM, config_dict
    from ..pretrained import load_model
    from ..runtime.native_prm import NativePRM

    if args.frames < 1 or args.warmup < 0 or args.threads < 1 or args.block < 1:
        raise SystemExit("--frames, --block and --threads must be >= 1, --warmup >= 0")
    torch.set_num_threads(args.threads)
    with contextlib.ExitStack() as stack:
        if args.checkpoint:
            model = load_model(args.checkpoint)
            if not isinstance(model, PRM):
                raise SystemExit(f"--checkpoint {args.checkpoint} holds a {type(model).__name__}, not a PRM")
            native = NativePRM.from_file(args.checkpoint, num_threads=args.threads)
            source = args.checkpoint
        else:
            torch.manual_seed(0)
            model = create_model("prm_small", causal=True).eval()
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="mobpose_bench_prm_"))
            path = ck.save(os.path.join(folder, "prm_small.safetensors"), model.state_dict(), model="prm_small",
                           config=config_dict(model.config))
            native = NativePRM.from_file(path, num_threads=args.threads)
            source = "prm_small (untrained, causal)"
        c = model.config
        if not c.causal:
            raise SystemExit(f"{source} is a centred PRM: the streaming step needs a causal one")
        sink = stack.enter_context(open(args.out, "a")) if args.out else None

        def put(record: dict) -> None:
            line = json.dumps({"bench": "prm-step", **record})
            emit(line)
            if sink is not None:
                sink.write(line + "\n")

        put({"case": "setup", "source": source, "machine": platform.machine(), "cpu": platform.processor() or "",
             "cpu_count": os.cpu_count(), "threads": args.threads, "torch": torch.__version__,
             "kernel_variant": _core.kernel_variant(), "native_kernel": native._core.kernel,
             "config": {k: getattr(c, k) for k in ("num_frames", "num_joints", "dim", "heads", "blocks", "prior")},
             "frames": args.frames, "warmup": args.warmup, "block": args.block,
             "note": f"the methods take turns every {args.block} frame(s) of the stream, sharing the machine's load"})

        total = args.warmup + args.frames
        stream = _stream(total, c.num_joints, args.seed)
        t_len = c.num_frames
        # Every frame's window: the last T poses, the first pose repeated at the front (refine_clip).
        index = np.clip(np.arange(total)[:, None] - (t_len - 1) + np.arange(t_len)[None, :], 0, None)
        times: dict[str, list[float]] = {"torch": [], "native_step": [], "native_forward": []}
        refs = np.empty_like(stream)
        worst = 0.0
        started = time.perf_counter()
        with torch.inference_mode():
            for b0 in range(0, total, args.block):
                frames = range(b0, min(total, b0 + args.block))
                for i in frames:
                    t0 = time.perf_counter()
                    window = stream[index[i]]
                    refs[i] = model(torch.from_numpy(window)[None])[0, -1].numpy()
                    if i >= args.warmup:
                        times["torch"].append((time.perf_counter() - t0) * 1e3)
                for i in frames:
                    t0 = time.perf_counter()
                    out = native.step(stream[i])
                    if i >= args.warmup:
                        times["native_step"].append((time.perf_counter() - t0) * 1e3)
                    worst = max(worst, float(np.abs(out - refs[i]).max()))
                for i in frames:
                    window = stream[index[i]]
                    t0 = time.perf_counter()
                    native.forward(window)
                    if i >= args.warmup:
                        times["native_forward"].append((time.perf_counter() - t0) * 1e3)
        stats = {k: Timing.from_ms(v) for k, v in times.items()}
        for method, timing in stats.items():
            put({"case": method, **timing.as_dict("latency")})
        put({
            "case": "summary",
            "torch_ms_median": round(stats["torch"].median_ms, 4),
            "native_step_ms_median": round(stats["native_step"].median_ms, 4),
            "native_forward_ms_median": round(stats["native_forward"].median_ms, 4),
            "speedup_step_vs_torch": round(stats["torch"].median_ms / stats["native_step"].median_ms, 2),
            "speedup_step_vs_torch_p90": round(stats["torch"].p90_ms / stats["native_step"].p90_ms, 2),
            "speedup_forward_vs_torch": round(stats["torch"].median_ms / stats["native_forward"].median_ms, 2),
            "max_abs_diff_step_vs_torch_mm": round(worst, 6),
            "seconds": round(time.perf_counter() - started, 1),
        })
    return 0
