"""Time per frame against the number of people: RTMO alone (one network run for everyone, then the DCC of each
person found) against the top-down paths (RTMO as the finder, then one network run per person: the IPEM, or
PoseResNet).

Frames: LSPET val people pasted onto the engine's backgrounds (mobpose.data.people, kind ``paste``, exactly k
people each, fixed seeds), --size pixels square. For each k in --people and each thread count, every path runs on
--images frames, --repeat times each, and prints one JSON line: the median and p90 ms per frame, and the people
RTMO found (mean). The per-person runs of the top-down paths take the labelled boxes (exactly k), so that their
growth with k is measured on k; their finder time is RTMO's own on the same frame.

RTMO: --rtmo (a shipped name or an RTMO checkpoint; a registry name such as rtmo_mnv2 times the untrained
architecture, which finds a random number of people) on TFLite (XNNPACK). The IPEM: the pipeline's engine
(--backend, default native). PoseResNet: --poseresnet (a checkpoint, or a registry name for the architecture with
random weights: the time does not depend on them) on TFLite.
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable

import numpy as np

from .timing import Timing, json_lines


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rtmo", default="rtmo-mnv2", help="RTMO: shipped name, checkpoint, or registry name (untrained)")
    p.add_argument("--ipem", default="default", help="IPEM of the top-down 3D path (default: the shipped default)")
    p.add_argument("--poseresnet", default="poseresnet_mnv2",
                   help="PoseResNet: checkpoint or registry name (random weights; 'none' to skip)")
    p.add_argument("--backend", default="native", help="the IPEM's backend: native, tflite or torch")
    p.add_argument("--people", default="1,2,4,8", help="comma-separated people counts")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--size", type=int, default=640, help="frame side in pixels")
    p.add_argument("--images", type=int, default=4, help="frames per people count")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per frame")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")


def _frames(k: int, count: int, size: int) -> list[dict]:
    from ..data.people import _LSPET, PeopleConfig, compose
    from ..lspet import VAL_ROWS

    src, rows = _LSPET(), np.asarray(list(VAL_ROWS))
    cfg = PeopleConfig(size=size, kinds=("paste",), weights=(1.0,), augment=False)
    out, seed = [], 0
    while len(out) < count:
        item = compose("paste", np.random.default_rng([2026, k, seed]), src, rows, cfg, count=k)
        seed += 1
        if len(item["boxes"]) == k:  # a paste that found no free spot for everyone is drawn again
            out.append(item)
    return out


def _model(spec: str, registry_prefix: str):
    from ..models import list_models

    if spec in list_models(registry_prefix):
        import torch

        from ..models import create_model

        torch.manual_seed(0)
        return create_model(spec).eval()
    return spec


def run(args: argparse.Namespace, emit: Callable[[str], None]) -> int:
    from ..runtime.backends import make_engines, model_ref, release_engines
    from ..runtime.image import crop_person
    from ..runtime.people import PeopleDetector
    from ..runtime.topdown import TopDown

    counts = [int(v) for v in args.people.split(",")]
    threads_list = [int(v) for v in args.threads.split(",")]
    machine = {"machine": platform.machine(), "processor": platform.processor() or platform.machine()}
    frames = {k: _frames(k, args.images, args.size) for k in counts}
    ipem_ref = model_ref("ipem-mnv2" if args.ipem == "default" else args.ipem, "ipem")
    with json_lines("people", emit, args.out) as put:
        for threads in threads_list:
            det = PeopleDetector(_model(args.rtmo, "rtmo_"), backend="tflite", threads=threads)
            ipem, _, ikey, _ = make_engines(args.backend, ipem_ref, None, threads=threads)
            td = None if args.poseresnet == "none" else TopDown(_model(args.poseresnet, "poseresnet_"),
                                                               backend="tflite", threads=threads)
            size = int(ipem_ref.facts["input_size"])
            try:
                for k in counts:
                    times: dict[str, list[float]] = {"rtmo": [], "rtmo+ipem": [], "rtmo+poseresnet": []}
                    found = []
                    for item in frames[k]:
                        img = item["image"]
                        xywh = np.concatenate([item["boxes"][:, :2], item["boxes"][:, 2:] - item["boxes"][:, :2]], 1)
                        for _ in range(args.repeat + 1):  # the first run of each frame is a warm-up
                            import time

                            t0 = time.perf_counter()
                            people = det(img)
                            t1 = time.perf_counter()
                            for box in xywh:
                                ipem(crop_person(img, box, size)[0])
                            t2 = time.perf_counter()
                            if td is not None:
                                td(img, xywh)
                            t3 = time.perf_counter()
                            if _ == 0:
                                found.append(len(people))
                                continue
                            times["rtmo"].append((t1 - t0) * 1e3)
                            times["rtmo+ipem"].append((t2 - t0) * 1e3)
                            if td is not None:
                                times["rtmo+poseresnet"].append((t1 - t0 + t3 - t2) * 1e3)
                    for path, ts in times.items():
                        if not ts:
                            continue
                        t = Timing.from_ms(ts)
                        put({"path": path, "people": k, "threads": threads, "size": args.size,
                             "rtmo": str(args.rtmo), "ipem": ipem_ref.label, "ipem_backend": args.backend,
                             "poseresnet": args.poseresnet, **t.as_dict("frame"),
                             "rtmo_found_mean": round(float(np.mean(found)), 2), **machine})
            finally:
                release_engines(ipem, None, ikey, None)
    return 0
