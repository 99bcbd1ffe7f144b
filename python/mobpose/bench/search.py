"""The person search without a box: IPEM runs and milliseconds per frame, on streams and single images.

Streams (`mobpose.Pipeline`, the default search_budget, after one untimed frame for the engines' first
call): the shipped demo clip, a real photo repeated
--repeat times (a still person), and a blank frame repeated (no person: the search never ends). Per
stream: the frames spent searching, the most IPEM runs and milliseconds of search in one frame, the
frame's total milliseconds at most, the fraction of frames with a person found and the tracker's
re-initialisations. Single images (`mobpose.infer` on each, searched at once): seconds per image and
how many were found. One JSON line per case.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=1, help="engine threads (default 1: the bound is per core)")
    p.add_argument("--backend", default="auto", help="auto, native, tflite or torch")
    p.add_argument("--photos", default=None,
                   help="a folder of photos (default: LSPET's images in ../shared/data or $MOBPOSE_LSPET_DIR)")
    p.add_argument("--first", type=int, default=9000,
                   help="index of the first photo in the sorted folder (default 9000: LSPET val)")
    p.add_argument("--count", type=int, default=20, help="single photos timed (every --step-th from --first)")
    p.add_argument("--step", type=int, default=50, help="photos between the timed ones")
    p.add_argument("--repeat", type=int, default=100, help="frames of each still stream")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")


def _photos(folder: str | None) -> Path | None:
    if folder:
        return Path(folder)
    env = os.environ.get("MOBPOSE_LSPET_DIR")
    here = Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "data" / "lspet"
    return here / "images" if (here / "images").is_dir() else None


def run(args: argparse.Namespace, emit: Callable[[str], None]) -> int:
    from ..demo import demo_video
    from ..runtime.image import load_image
    from ..runtime.infer import infer
    from ..runtime.pipeline import Pipeline
    from ..runtime.sources import open_source

    sink = open(args.out, "a") if args.out else None  # noqa: SIM115 (closed below)

    def put(record: dict) -> None:
        line = json.dumps({"bench": "search", **record})
        emit(line)
        if sink is not None:
            sink.write(line + "\n")

    try:
        folder = _photos(args.photos)
        names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")) \
            if folder else []
        picked = names[args.first::args.step][: args.count]
        with open_source(demo_video()) as src:
            streams = {"demo clip (walk.mp4)": [f.image for f in src]}
        if args.first < len(names):
            still = names[args.first]
            streams[f"still photo {still} x{args.repeat}"] = [load_image(folder / still)] * args.repeat
        streams[f"blank 640x480 x{args.repeat}"] = [np.full((480, 640, 3), 128, np.uint8)] * args.repeat
        for name, frames in streams.items():
            with Pipeline(backend=args.backend, threads=args.threads) as pipe:
                pipe.update(frames[0])  # the engines' first call (XNNPACK's set-up) is not the search's
                pipe.reset()
                poses = [pipe.update(f) for f in frames]
                budget, backend, reinits = pipe.search_budget, pipe.backend, pipe.tracker.reinits
            runs = np.array([p.searches for p in poses])
            search_ms = np.array([p.seconds["search"] for p in poses]) * 1e3
            total_ms = np.array([sum(p.seconds.values()) for p in poses]) * 1e3
            put({"case": "stream", "stream": name, "backend": backend, "threads": args.threads,
                 "search_budget": budget, "frames": len(poses), "searching_frames": int((runs > 0).sum()),
                 "search_runs": int(runs.sum()), "max_runs_per_frame": int(runs.max()),
                 "max_search_ms": round(float(search_ms.max()), 2),
                 "max_frame_ms": round(float(total_ms.max()), 2),
                 "found_fraction": round(float(np.mean([p.found for p in poses])), 3), "reinits": reinits})
        if picked:
            secs, found = [], []
            for n in picked:
                img = load_image(folder / n)
                t0 = time.perf_counter()
                res = infer(img, backend=args.backend, threads=args.threads)
                secs.append(time.perf_counter() - t0)
                found.append(bool(res.found[0]))
            put({"case": "single images", "folder": str(folder), "photos": picked, "threads": args.threads,
                 "seconds_median": round(float(np.median(secs)), 3), "seconds_max": round(float(np.max(secs)), 3),
                 "found": int(sum(found)), "of": len(found)})
        elif not names:
            put({"case": "single images", "skipped": "no photo folder (give --photos, or the LSPET data)"})
    finally:
        if sink is not None:
            sink.close()
    return 0
