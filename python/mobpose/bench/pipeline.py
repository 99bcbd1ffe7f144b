"""The streaming pipeline end to end, from a decoded frame to the refined 3D pose, per backend.

Frames: a video (default: the demo clip the package ships, mobpose.demo_video(): 60 frames of one
rendered person walking), decoded in memory before timing, resized to --size pixels square, looped to
--frames; no data set is needed. Each backend (torch = PyTorch eager,
the reference; tflite; native) and thread count runs `mobpose.Pipeline.update` on every frame: crop,
IPEM network and soft-argmax, decoding, causal PRM, tracking. One JSON line per (backend, threads):
median / p90 ms per frame end to end, frames per second (1000 / mean ms), the median of each stage (``search``
holds the people finder's detections, every --finder-every frames),
and the ratio to torch with the same threads in the same run. Backends take turns in blocks of
--block frames so that drifts of the machine's load reach all alike.

--stream N adds the memory case: the fastest backend on N frames, RSS and peak RSS (VmRSS, VmHWM of
/proc/self/status) after 1,000 frames and at the end (flat memory: the pipeline keeps nothing per
frame).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time
from collections.abc import Callable

import numpy as np

from .timing import Timing, json_lines


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="IPEM: shipped name or checkpoint (default ipem-mnv2)")
    p.add_argument("--prm", default="default", help="causal PRM: shipped name or checkpoint (default prm-causal)")
    p.add_argument("--backends", default="torch,tflite,native", help="comma-separated backends to time")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--frames", type=int, default=300, help="timed frames per backend and thread count")
    p.add_argument("--warmup", type=int, default=30, help="untimed frames before them")
    p.add_argument("--block", type=int, default=50, help="consecutive frames per backend before the next one's turn")
    p.add_argument("--video", default=None, help="the clip to time (default: the shipped demo clip)")
    p.add_argument("--clip", type=int, default=60, help="frames of the video to use (looped)")
    p.add_argument("--size", type=int, default=640, help="frame side in pixels (0: the video's own size)")
    p.add_argument("--finder", default="auto",
                   help="the people finder (mobpose.Pipeline's finder: 'auto' = the shipped RTMO when installed, "
                        "'none' = the box tracker alone, a name or checkpoint)")
    p.add_argument("--finder-every", type=int, default=5, help="frames between the finder's detections (default 5)")
    p.add_argument("--stream", type=int, default=0, help="also run N frames for memory (e.g. 10000)")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")


def _clip(video: str | None, frames: int, size: int) -> tuple[np.ndarray, str]:
    """(T, S, S, 3) uint8 RGB: the first `frames` frames of `video` (default the shipped demo clip), resized."""
    import cv2

    from ..demo import demo_video
    from ..runtime.sources import open_source

    path = demo_video() if video is None else video
    out = []
    with open_source(path) as src:
        for f in src:
            img = f.image
            if size and img.shape[:2] != (size, size):
                img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
            out.append(img)
            if len(out) >= frames:
                break
    if not out:
        raise SystemExit(f"{path}: no frame could be read")
    return np.stack(out), str(path)


def _rss() -> dict[str, float]:
    out = {}
    with contextlib.suppress(OSError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024.0
    return {"rss_mb": round(out.get("VmRSS", float("nan")), 1), "peak_rss_mb": round(out.get("VmHWM", float("nan")), 1)}


def run(args: argparse.Namespace, emit: Callable[[str], None]) -> int:
    """Runs the benchmark; `emit` receives each JSON line."""
    from ..runtime.backends import available_backends
    from ..runtime.pipeline import STAGES, Pipeline

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    if args.frames < 1 or args.warmup < 0 or args.block < 1 or not threads or min(threads) < 1:
        raise SystemExit("--frames, --block and --threads must be >= 1, --warmup >= 0")
    why = available_backends()
    skipped = {b: why.get(b, "unknown backend") for b in backends if why.get(b, "unknown backend") is not None}
    backends = [b for b in backends if b not in skipped]
    if not backends:
        raise SystemExit(f"no backend to time: {skipped}")
    with json_lines("pipeline", emit, args.out) as put:
        frames, clip_name = _clip(args.video, args.clip, args.size)
        torch = None
        if "torch" in backends:
            import torch
        put({"case": "setup", "video": clip_name, "model": args.model, "prm": args.prm, "backends": backends,
             "finder": args.finder, "finder_every": args.finder_every,
             "skipped": skipped,
             "threads": threads, "frames": args.frames, "warmup": args.warmup, "block": args.block,
             "frame_size": list(frames.shape[1:3]), "clip": len(frames), "machine": platform.machine(),
             "cpu": platform.processor() or "", "cpu_count": os.cpu_count(),
             "torch": None if torch is None else torch.__version__})
        results = {}
        for n in threads:
            pipes = {b: Pipeline(args.model, prm=args.prm, backend=b, threads=n, finder=args.finder,
                                 finder_every=args.finder_every) for b in backends}
            times = {b: [] for b in backends}
            stages = {b: {s: [] for s in STAGES} for b in backends}
            counter = dict.fromkeys(backends, 0)
            total = args.warmup + args.frames
            while min(counter.values()) < total:
                for b, pipe in pipes.items():
                    if counter[b] >= total:
                        continue
                    if b == "torch":
                        torch.set_num_threads(n)
                    for _ in range(min(args.block, total - counter[b])):
                        i = counter[b]
                        t0 = time.perf_counter()
                        pose = pipe.update(frames[i % len(frames)])
                        dt = (time.perf_counter() - t0) * 1e3
                        if i >= args.warmup:
                            times[b].append(dt)
                            for s in STAGES:
                                stages[b][s].append(pose.seconds[s] * 1e3)
                        counter[b] += 1
            for b in backends:
                t = Timing.from_ms(times[b])
                results[(b, n)] = t
                put({"case": f"{b}/{n}t", "backend": b, "threads": n, **t.as_dict("end_to_end"),
                     "fps": round(1000.0 / t.mean_ms, 1),
                     "stages_median_ms": {s: round(float(np.median(v)), 3) for s, v in stages[b].items()},
                     "speedup_vs_torch": (round(results[("torch", n)].median_ms / t.median_ms, 2)
                                          if ("torch", n) in results else None)})
        fastest = min(results, key=lambda k: results[k].median_ms)
        put({"case": "summary", "fastest": f"{fastest[0]}/{fastest[1]}t",
             "fps": {f"{b}/{n}t": round(1000.0 / t.mean_ms, 1) for (b, n), t in results.items()}})
        if args.stream:
            b, n = fastest
            pipe = Pipeline(args.model, prm=args.prm, backend=b, threads=n, finder=args.finder,
                            finder_every=args.finder_every)
            marks, t0 = {}, time.perf_counter()
            for i in range(args.stream):
                pipe.update(frames[i % len(frames)])
                if i + 1 in (1000, args.stream):
                    marks[i + 1] = _rss()
            put({"case": "memory", "backend": b, "threads": n, "frames": args.stream,
                 "seconds": round(time.perf_counter() - t0, 1),
                 "rss": {str(k): v for k, v in marks.items()}})
    return 0
