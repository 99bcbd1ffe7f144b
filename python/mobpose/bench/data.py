"""The synthetic image engine against what IPEM training consumes, measured in the same run.

Lines (JSON): the engine's training samples per second in one process (render, augment, normalise:
exactly what a data-loader worker does per item), per-sample percentiles; the images per second a
ConvNeXtPose training step consumes (forward, L1 loss, backward, AdamW step) at each thread count;
and their ratio. The issue asks for ratio >= 2 (training never waits on data with one worker).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from collections.abc import Callable

import numpy as np

from ..data.synthetic.scene import DEFAULT_BODIES
from .timing import time_call

logger = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--samples", type=int, default=200, help="engine samples to time")
    p.add_argument("--model", default="convnextpose_xs", help="the network whose training step is the consumer")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=5, help="timed training steps per thread count")
    p.add_argument("--threads", default="1,all", help="comma list of torch thread counts; 'all' = every core")
    p.add_argument("--bodies", choices=("mesh", "spheres"), default=DEFAULT_BODIES,
                   help="the engine's people: skinned MakeHuman meshes (default) or sphere bodies")
    p.add_argument("--quick", action="store_true", help="smoke run: few samples, the test model, tiny batches")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")


def run(args: argparse.Namespace, emit: Callable[[str], None]) -> int:
    import os

    import torch

    from ..data.cmu import load_cmu
    from ..data.synthetic import EngineConfig
    from ..data.synthetic.dataset import SyntheticPoseDataset, pose_pool
    from ..losses import l1_coordinate_loss
    from ..models import create_model

    model_name = "convnextpose_test" if args.quick else args.model
    samples = 10 if args.quick else args.samples
    batch = 4 if args.quick else args.batch_size
    steps = 2 if args.quick else args.steps
    net = create_model(model_name)
    engine = EngineConfig(crop_size=net.config.input_size, heatmap_size=net.heatmap_size, bodies=args.bodies)
    dataset = SyntheticPoseDataset(pose_pool(load_cmu(split="train")), max(samples, batch), seed=0, config=engine)
    out = open(args.out, "a") if args.out else None  # noqa: SIM115

    def put(record: dict) -> None:
        record.update(machine=platform.machine(), cpu_count=os.cpu_count())
        line = json.dumps(record)
        emit(line)
        if out is not None:
            out.write(line + "\n")

    torch.set_num_threads(1)  # a data-loader worker runs single-threaded
    dataset[0]  # warm-up: background photos load once per process
    if args.bodies == "mesh":  # and every body shape's rig and rest model, built once per worker process
        from ..data.synthetic.mesh_body import mesh_bodies

        family = mesh_bodies(engine.mesh_count)
        t0 = time.perf_counter()
        for body in range(family.count):
            family.rig(body)
        put({"bench": "data", "case": "mesh_bodies_built", "bodies": family.count,
             "seconds": round(time.perf_counter() - t0, 2)})
    times = []
    start = time.perf_counter()
    for i in range(samples):
        t0 = time.perf_counter()
        dataset[i]
        times.append((time.perf_counter() - t0) * 1e3)
    total = time.perf_counter() - start
    a = np.asarray(times)
    engine_ips = samples / total
    put({"bench": "data", "case": "engine", "bodies": args.bodies, "crop": engine.crop_size, "samples": samples,
         "images_per_s": round(engine_ips, 2), "ms_median": round(float(np.median(a)), 3),
         "ms_p90": round(float(np.percentile(a, 90)), 3)})

    items = [dataset[i] for i in range(batch)]
    images = torch.stack([it["image"] for it in items])
    targets = torch.stack([it["target"] for it in items])
    masks = torch.stack([it["mask"] for it in items])
    counts = []
    for t in args.threads.split(","):
        counts.append(os.cpu_count() or 1 if t.strip() == "all" else int(t))
    for threads in dict.fromkeys(counts):
        torch.set_num_threads(threads)
        net.train()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)

        def step(opt=opt) -> None:
            loss = l1_coordinate_loss(net(images), targets, masks)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        tm = time_call(step, warmup=1, min_runs=steps, max_runs=steps, max_seconds=0.0)
        train_ips = batch / (tm.median_ms / 1e3)
        put({"bench": "data", "case": "train_step", "model": model_name, "batch": batch, "threads": threads,
             "step_ms_median": round(tm.median_ms, 1), "step_ms_p90": round(tm.p90_ms, 1),
             "images_per_s": round(train_ips, 2), "engine_over_training": round(engine_ips / train_ips, 2)})
    if out is not None:
        out.close()
    return 0
