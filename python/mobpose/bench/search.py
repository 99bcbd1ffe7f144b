"""The person search without a box (the window search: finder "none"): IPEM runs and milliseconds per frame, on
streams and single images; and on LSPET val photos its 2D accuracy beside the people finder's (RTMO).

Streams (`mobpose.Pipeline`, the default search_budget, after one untimed frame for the engines' first
call): the shipped demo clip, a real photo repeated
--repeat times (a still person), and a blank frame repeated (no person: the search never ends). Per
stream: the frames spent searching, the most IPEM runs and milliseconds of search in one frame, the
frame's total milliseconds at most, the fraction of frames with a person found and the tracker's
re-initialisations. Single images (`mobpose.infer` on each, searched at once): seconds per image and
how many were found. With --pck N: on N LSPET val photos (every (1000 // N)-th from row 9000) the 2D
PCK@0.2 (of the torso: shoulder to opposite hip, the larger; LSP's 14 joints, neck as thorax) of the
whole search, of a bounded one (--pck-budget IPEM runs, one frame) and of the trivial control (the whole
photo as the box, no search), and of the people finder (RTMO, --finder) when there is one; with each, the share of
photos whose crop box lies on the labelled person (IoU >= 0.5 with LSPET's person box). One JSON line per case.
"""

from __future__ import annotations

import argparse
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
    p.add_argument("--pck", type=int, default=0, help="also the 2D PCK@0.2 on N LSPET val photos (e.g. 100)")
    p.add_argument("--pck-budget", type=int, default=4, help="IPEM runs of the bounded search in the PCK case")
    p.add_argument("--finder", default="auto",
                   help="the PCK case's people finder row ('auto': the shipped RTMO when installed; 'none': no row)")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")


def _photos(folder: str | None) -> Path | None:
    if folder:
        return Path(folder)
    from ..lspet import default_dir

    images = default_dir() / "images"
    return images if images.is_dir() else None


def run(args: argparse.Namespace, emit: Callable[[str], None]) -> int:
    from ..demo import demo_video
    from ..runtime.image import load_image
    from ..runtime.infer import infer
    from ..runtime.pipeline import Pipeline
    from ..runtime.sources import open_source
    from .timing import json_lines

    with json_lines("search", emit, args.out) as put:
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
            with Pipeline(backend=args.backend, threads=args.threads, finder="none") as pipe:
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
                res = infer(img, backend=args.backend, threads=args.threads, finder="none")
                secs.append(time.perf_counter() - t0)
                found.append(bool(res.found[0]))
            put({"case": "single images", "folder": str(folder), "photos": picked, "threads": args.threads,
                 "seconds_median": round(float(np.median(secs)), 3), "seconds_max": round(float(np.max(secs)), 3),
                 "found": int(sum(found)), "of": len(found)})
        elif not names:
            put({"case": "single images", "skipped": "no photo folder (give --photos, or the LSPET data)"})
        if args.pck:
            labels = folder.parent / "joints.npz" if folder else None
            if labels is None or not labels.is_file():
                put({"case": "lspet pck", "skipped": "needs LSPET's joints.npz beside its images folder"})
            else:
                _pck(args, folder, labels, put)
    return 0


def _torso_pck(pred: np.ndarray, gt: np.ndarray, names: list[str], pairs: list[tuple[int, int]]) -> float | None:
    """PCK@0.2 of one photo: pred (17, 2) H36M pixels, gt (14, 3) LSP x, y, visible; None without a torso."""
    vis = gt[:, 2] > 0
    torso = 0.0
    for a, b in (("left_shoulder", "right_hip"), ("right_shoulder", "left_hip")):
        i, j = names.index(a), names.index(b)
        if vis[i] and vis[j]:
            torso = max(torso, float(np.linalg.norm(gt[i, :2] - gt[j, :2])))
    hits = [np.linalg.norm(pred[h] - gt[lj, :2]) <= 0.2 * torso for h, lj in pairs if vis[lj]]
    return float(np.mean(hits)) if torso > 0 and hits else None


def _pck(args: argparse.Namespace, folder: Path, labels: Path, put) -> None:
    from ..runtime.image import load_image
    from ..runtime.infer import infer
    from ..skeleton import H36M_17

    with np.load(labels) as z:
        joints, files, names = z["joints"], [str(f) for f in z["images"]], [str(n) for n in z["names"]]
    h36 = list(H36M_17.joint_names)
    pairs = [(h36.index(n), names.index(n)) for n in names if n in h36] + [(h36.index("thorax"), names.index("neck"))]
    rows = list(range(9000, 10000, max(1, 1000 // args.pck)))[: args.pck]
    from ..lspet import person_box
    from ..oks import box_iou
    from ..runtime.pipeline import resolve_finder

    cases = {"whole search": {"search_budget": None}, f"bounded search ({args.pck_budget} IPEM runs)":
             {"search_budget": args.pck_budget}, "control: the whole photo as the box": {"whole": True}}
    finder = resolve_finder(args.finder)
    if finder is not None:
        cases = {f"people finder ({finder})": {"finder": finder}, **cases}
    for case, kw in cases.items():
        scores, found, secs, hits = [], [], [], []
        for r in rows:
            img = load_image(folder / files[r])
            t0 = time.perf_counter()
            if kw.get("whole"):
                res = infer(img, bbox=(0, 0, img.shape[1], img.shape[0]), backend=args.backend, threads=args.threads,
                            finder="none")
            elif "finder" in kw:
                res = infer(img, backend=args.backend, threads=args.threads, finder=kw["finder"])
            else:
                res = infer(img, backend=args.backend, threads=args.threads, search_budget=kw["search_budget"],
                            finder="none")
            secs.append(time.perf_counter() - t0)
            score = _torso_pck(res.joints_2d[0], joints[r], names, pairs)
            if score is not None:
                scores.append(score)
            found.append(bool(res.found[0]))
            pb, rb = person_box(joints[r]), res.boxes[0].astype(np.float64)
            iou = box_iou(np.array([[*rb[:2], *(rb[:2] + rb[2:])]]), np.array([[*pb[:2], *(pb[:2] + pb[2:])]]))
            hits.append(float(iou[0, 0]) >= 0.5)
        put({"case": "lspet pck", "search": case, "photos": len(rows), "scored": len(scores),
             "pck_0.2_torso": round(float(np.mean(scores)), 4), "found_fraction": round(float(np.mean(found)), 3),
             "box_on_the_person": round(float(np.mean(hits)), 3),
             "seconds_median": round(float(np.median(secs)), 3), "rows": [rows[0], rows[-1], len(rows)]})
