"""`mobpose.infer`: 3D poses of one person from a video, a folder of images, an image, an array of frames
or a live frame source, with the shipped models and no network.

Units and frames as :mod:`mobpose.runtime.pipeline`: millimetres, camera frame X right, Y down, Z
forward; ``joints_3d`` root-relative (pelvis at 0), ``joints_3d_camera`` absolute (needs intrinsics and
a root depth: estimated from the box size unless given, see ``root_depth_source``), ``joints_2d`` image
pixels; the 17 Human3.6M joints of ``joint_names``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .pipeline import FINDER_EVERY, SEARCH_BUDGET, STAGES, Pipeline

__all__ = ["PoseResult", "infer"]

logger = logging.getLogger(__name__)

_ARRAYS = ("joints_3d", "joints_3d_ipem", "joints_3d_camera", "joints_2d", "confidence", "boxes", "timestamps",
           "frame_indices", "root_depths")
_OPTIONAL = ("presence", "found", "track")  # older files lack them: NaN / True / 0 on load


@dataclasses.dataclass
class PoseResult:
    """Per-frame poses of a run (N frames, J = 17 joints).

    Attributes:
        joints_3d: (N, J, 3) root-relative camera mm, refined by the PRM (the IPEM's without one).
        joints_3d_ipem: (N, J, 3) root-relative camera mm, the per-frame IPEM estimate.
        joints_3d_camera: (N, J, 3) absolute camera mm.
        joints_2d: (N, J, 2) image pixels.
        confidence: (N, J) per-joint confidence (largest heatmap bin probability).
        boxes: (N, 4) person box (x, y, w, h) px of each frame's crop.
        timestamps: (N,) seconds.
        frame_indices: (N,) index of each frame in the source (skipped frames leave gaps).
        root_depths: (N,) root Z in mm used for decoding.
        presence: (N,) the calibrated probability of a person in each frame's crop (NaN without a presence
            model: mobpose.runtime.presence).
        found: (N,) bool, a person was found in the frame (presence >= threshold). Where False the pose is
            the network's guess on a crop without a person: ``result.joints_3d[result.found]`` keeps the
            frames with one.
        track: (N,) int64, whose pose each row is: 0 for every row of a one-person run; with
            ``people="all"`` the rows are (frame, person) pairs, the person's track id here (:meth:`person`,
            :meth:`track_ids`).
        joint_names: the J names (Human3.6M order).
        info: the run: source, backend, models, intrinsics, fps, root_depth_source ('given' or
            'estimated'), skipped frames [(index, reason)], seconds per stage, frames per second.
    """

    joints_3d: np.ndarray
    joints_3d_ipem: np.ndarray
    joints_3d_camera: np.ndarray
    joints_2d: np.ndarray
    confidence: np.ndarray
    boxes: np.ndarray
    timestamps: np.ndarray
    frame_indices: np.ndarray
    root_depths: np.ndarray
    joint_names: tuple[str, ...]
    info: dict[str, Any]
    presence: np.ndarray | None = None
    found: np.ndarray | None = None
    track: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.joints_3d)
        if self.presence is None:
            self.presence = np.full(n, np.nan, np.float32)
        if self.found is None:
            self.found = np.ones(n, bool)
        if self.track is None:
            self.track = np.zeros(n, np.int64)
        self.presence = np.asarray(self.presence, np.float32)
        self.found = np.asarray(self.found, bool)
        self.track = np.asarray(self.track, np.int64)

    def track_ids(self) -> list[int]:
        """The track ids present, ascending ([0] for a one-person run)."""
        return sorted(int(t) for t in np.unique(self.track))

    def person(self, track: int) -> PoseResult:
        """The rows of one track (its frames, in order) as a result of their own."""
        keep = self.track == int(track)
        if not keep.any():
            raise ValueError(f"no track {track}; the tracks are {self.track_ids()}")
        fields = {k: getattr(self, k)[keep] for k in (*_ARRAYS, *_OPTIONAL)}
        return PoseResult(**fields, joint_names=self.joint_names, info=dict(self.info))

    def __len__(self) -> int:
        return len(self.joints_3d)

    def to_numpy(self) -> dict[str, np.ndarray]:
        """The arrays by name (plus ``joint_names`` as a string array)."""
        out = {k: getattr(self, k) for k in (*_ARRAYS, *_OPTIONAL)}
        out["joint_names"] = np.array(self.joint_names)
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Writes .npz (the arrays, and the info as a JSON string under ``info``) or .json (lists)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".npz", ".json"):
            raise ValueError(f"{path}: the output must end in .npz or .json")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        if suffix == ".npz":
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **self.to_numpy(), info=np.array(json.dumps(self.info)))
        else:
            doc = {k: getattr(self, k).tolist() for k in _ARRAYS}
            doc["presence"] = [None if not np.isfinite(v) else float(v) for v in self.presence]
            doc["found"] = self.found.tolist()
            doc["track"] = self.track.tolist()
            doc.update(joint_names=list(self.joint_names), info=self.info,
                       units={"joints_3d": "mm, camera frame (X right, Y down, Z forward), root-relative",
                              "joints_3d_camera": "mm, camera frame, absolute", "joints_2d": "pixels",
                              "timestamps": "seconds"})
            tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> PoseResult:
        """Reads what :meth:`save` wrote.

        Raises:
            FileNotFoundError: no such file.
            ValueError: anything else wrong with it (not .npz / .json, unreadable, truncated, a missing
                entry, a wrong shape or type); the message names the file and the problem.
        """
        import zipfile
        import zlib

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        suffix = path.suffix.lower()
        if suffix not in (".npz", ".json"):
            raise ValueError(f"{path}: a poses file must end in .npz or .json (mobpose.PoseResult.save)")

        class Bad(ValueError):
            pass

        def bad(problem: str) -> ValueError:
            return Bad(f"{path}: not a readable mobpose poses file ({suffix[1:]}): {problem}")

        raw: dict[str, Any] = {}
        keys = (*_ARRAYS, "joint_names", "info")
        if suffix == ".npz":
            unreadable = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)
            try:
                with open(path, "rb") as f:
                    z = np.load(f, allow_pickle=False)
                    if not isinstance(z, np.lib.npyio.NpzFile):
                        raise bad("a single .npy array, not an .npz archive")
                    with z:
                        missing = [k for k in keys if k not in z.files]
                        if missing:
                            raise bad(f"missing {', '.join(missing)}")
                        for k in (*keys, *(k for k in _OPTIONAL if k in z.files)):
                            try:
                                raw[k] = z[k]
                            except unreadable as exc:
                                raise bad(f"entry {k!r} cannot be read (truncated or corrupt?): {exc}") from exc
            except Bad:
                raise
            except unreadable as exc:
                raise bad(f"not an .npz archive, or truncated: {exc}") from exc
            try:
                info = json.loads(str(raw["info"]))
            except json.JSONDecodeError as exc:
                raise bad(f"'info' is not JSON: {exc}") from exc
            names_arr = raw["joint_names"]
            if names_arr.dtype.kind not in "US" or names_arr.ndim != 1:
                raise bad(f"'joint_names' must be a 1-D array of strings, got {names_arr.dtype} {names_arr.shape}")
            names = tuple(str(n) for n in names_arr)
        else:
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except UnicodeDecodeError as exc:
                raise bad(f"not UTF-8 text, so not JSON: {exc}") from exc
            except json.JSONDecodeError as exc:
                raise bad(f"not valid JSON (truncated?): {exc}") from exc
            if not isinstance(doc, dict):
                raise bad(f"the JSON must be an object, got {type(doc).__name__}")
            missing = [k for k in keys if k not in doc]
            if missing:
                raise bad(f"missing {', '.join(missing)}")
            for k in _ARRAYS:
                try:
                    raw[k] = np.asarray(doc[k], np.float32 if k != "frame_indices" else np.int64)
                except (ValueError, TypeError, OverflowError) as exc:
                    raise bad(f"{k!r} is not a regular array of numbers: {exc}") from exc
            for k in _OPTIONAL:
                if k in doc:
                    try:
                        raw[k] = (np.asarray(doc[k], bool) if k == "found" else np.asarray(doc[k], np.int64)
                                  if k == "track" else
                                  np.asarray([np.nan if v is None else v for v in doc[k]], np.float32))
                    except (ValueError, TypeError, OverflowError) as exc:
                        raise bad(f"{k!r} is not a regular array: {exc}") from exc
            names_doc, info = doc["joint_names"], doc["info"]
            if not isinstance(names_doc, list) or not all(isinstance(n, str) for n in names_doc):
                raise bad("'joint_names' must be a list of strings")
            names = tuple(names_doc)
        if not isinstance(info, dict):
            raise bad(f"'info' must be a JSON object, got {type(info).__name__}")
        first = raw["joints_3d"]
        if first.size == 0:  # an empty result's JSON lists carry no inner shape
            first = first.reshape(0, len(names), 3)
        if first.ndim != 3 or first.shape[2] != 3:
            raise bad(f"'joints_3d' has shape {first.shape}, expected (N, J, 3)")
        n, j = first.shape[:2]
        if len(names) != j:
            raise bad(f"'joint_names' has {len(names)} names for the {j} joints of the arrays")
        shapes = {"joints_3d": (n, j, 3), "joints_3d_ipem": (n, j, 3), "joints_3d_camera": (n, j, 3),
                  "joints_2d": (n, j, 2), "confidence": (n, j), "boxes": (n, 4), "timestamps": (n,),
                  "frame_indices": (n,), "root_depths": (n,)}
        arrays = {}
        for k in _ARRAYS:
            a = raw[k]
            if a.dtype.kind not in ("iu" if k == "frame_indices" else "fiu"):
                raise bad(f"{k!r} must hold {'integers' if k == 'frame_indices' else 'numbers'}, got dtype {a.dtype}")
            if a.size == 0 and n == 0:
                a = a.reshape(shapes[k])
            if a.shape != shapes[k]:
                want = "(" + ", ".join("N" if i == 0 else str(s) for i, s in enumerate(shapes[k])) + ")"
                raise bad(f"{k!r} has shape {a.shape}, expected {want} with N = {n} frames, {j} joints")
            arrays[k] = a
        for k in _OPTIONAL:
            if k not in raw:
                continue
            a = raw[k]
            if a.size == 0 and n == 0:
                a = a.reshape(0)
            kinds, what = {"found": ("b", "bools"), "track": ("iu", "integers")}.get(k, ("f", "floats"))
            if a.shape != (n,) or a.dtype.kind not in kinds:
                raise bad(f"{k!r} must be (N,) {what} with N = {n}, got {a.dtype} {a.shape}")
            arrays[k] = a
        return cls(**arrays, joint_names=names, info=info)


def infer(
    source: Any,
    *,
    model: Any = "default",
    prm: Any = "default",
    backend: str = "auto",
    bbox=None,
    intrinsics=None,
    root_depth: float | None = None,
    fps: float | None = None,
    threads: int | None = None,
    max_frames: int | None = None,
    progress: bool = False,
    on_frame=None,
    search_budget: Any = "auto",
    finder: Any = "auto",
    finder_every: int | None = None,
    people: str = "one",
) -> PoseResult:
    """3D poses of the person in every frame of `source`.

    Args:
        source: a video file, an image file, a folder of images, a (T, H, W, 3) / (H, W, 3) uint8 RGB array,
            a list of frames, or any iterable of frames (a live source; see mobpose.runtime.sources).
        model, prm, backend, bbox, intrinsics, root_depth, threads: as :class:`mobpose.Pipeline`.
        fps: the frame rate of sources without one (image folders, arrays; default 30); overrides a
            video's own for the timestamps when given.
        max_frames: stop after this many frames.
        progress: show a progress bar (tqdm) on stderr when stderr is a terminal.
        on_frame: called with (frame, FramePose) after each frame (e.g. to render).
        search_budget: as :class:`mobpose.Pipeline` ("auto": the whole search at once for a single image,
            mobpose.runtime.pipeline.SEARCH_BUDGET IPEM runs a frame on a video).
        finder, finder_every: as :class:`mobpose.Pipeline` (the people detector that finds the person; every
            5 frames by default for one person, every frame for all).
        people: "one" (the person in `bbox`, else the most prominent one) or "all" (every person, each a track:
            mobpose.runtime.multi.MultiPipeline; the result's rows are then (frame, person) pairs with their
            ``track`` ids, and `on_frame` gets {track id: FramePose}; needs a finder).

    Returns:
        :class:`PoseResult`.

    Raises:
        FileNotFoundError / ValueError: a missing or unreadable source, a source with no frames, a bad
            box, intrinsics or root depth, an unknown model or backend (the message names the problem).
    """
    if people not in ("one", "all"):
        raise ValueError(f"people must be 'one' or 'all', got {people!r}")
    if people == "all":
        if bbox is not None or root_depth is not None:
            raise ValueError("people='all' takes no bbox or root_depth (each person's are found and estimated)")
        from .multi import MultiPipeline

        with MultiPipeline(model, prm=prm, backend=backend, finder=finder, intrinsics=intrinsics, threads=threads,
                           finder_every=1 if finder_every is None else finder_every) as multi:
            return _run_multi(multi, source, fps=fps, max_frames=max_frames, progress=progress, on_frame=on_frame,
                              intrinsics_given=intrinsics is not None)
    auto = isinstance(search_budget, str) and search_budget == "auto"
    finder_every = FINDER_EVERY if finder_every is None else finder_every
    with Pipeline(model, prm=prm, backend=backend, bbox=bbox, intrinsics=intrinsics, root_depth=root_depth,
                  threads=threads, search_budget=SEARCH_BUDGET if auto else search_budget, finder=finder,
                  finder_every=finder_every) as pipeline:
        return _run(pipeline, source, fps=fps, max_frames=max_frames, progress=progress, on_frame=on_frame,
                    intrinsics_given=intrinsics is not None, root_depth_given=root_depth is not None,
                    auto_budget=auto)


def _run(pipeline: Pipeline, source: Any, *, fps, max_frames, progress, on_frame, intrinsics_given: bool,
         root_depth_given: bool, auto_budget: bool = False) -> PoseResult:
    from .sources import open_source

    poses, shape = [], None
    seconds = dict.fromkeys(STAGES, 0.0)
    start = time.perf_counter()
    with open_source(source, fps=fps) as frames:
        if auto_budget:  # one image: search it all now; a stream: a bounded share a frame
            pipeline.search_budget = None if frames.length == 1 else SEARCH_BUDGET
        bar = None
        if progress:
            try:
                from tqdm import tqdm
            except ImportError:  # tqdm comes with the train extra; progress then goes to the log
                logger.info("infer: %s (%s frames); install tqdm for a progress bar", frames.name, frames.length)
            else:
                # disable=None: only on a terminal (a log file or a pipe gets no bar lines)
                bar = tqdm(total=frames.length, desc="infer", unit="frame", disable=None)
        try:
            for frame in frames:
                if max_frames is not None and len(poses) >= max_frames:
                    break
                pose = pipeline.update(frame.image, timestamp=frame.timestamp, index=frame.index)
                shape = frame.image.shape
                for k, v in pose.seconds.items():
                    seconds[k] += v
                poses.append(pose)
                if on_frame is not None:
                    on_frame(frame, pose)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        skipped, source_fps, name = list(frames.skipped), frames.fps, frames.name
    if not poses:
        raise ValueError(f"{name}: no frame could be read")
    wall = time.perf_counter() - start
    k = pipeline._k
    info = {
        "source": str(name), "backend": pipeline.backend, "model": pipeline.model_name, "prm": pipeline.prm_name,
        "input_size": pipeline.input_size, "prm_window": pipeline.window, "threads": pipeline.threads,
        "frames": len(poses), "image_size": [int(shape[1]), int(shape[0])], "fps": source_fps,
        "intrinsics": [float(v) for v in k], "intrinsics_source": "given" if intrinsics_given else "default",
        "root_depth_source": "given" if root_depth_given else "estimated",
        "skipped": [[int(i), str(r)] for i, r in skipped], "seconds": {**seconds, "total": wall},
        "fps_achieved": len(poses) / wall if wall > 0 else None,
        "tracker_reinits": getattr(pipeline.tracker, "reinits", None),
        "search_runs": int(sum(p.searches for p in poses)), "search_budget": pipeline.search_budget,
        "frames_found": int(sum(p.found for p in poses)),
        "presence_threshold": None if pipeline.presence is None else pipeline.presence.threshold,
        "finder": getattr(getattr(pipeline.tracker, "detector", None), "label", None),
        "finder_runs": getattr(pipeline.tracker, "detections", None),
    }
    return PoseResult(
        joints_3d=np.stack([p.refined for p in poses]), joints_3d_ipem=np.stack([p.pose for p in poses]),
        joints_3d_camera=np.stack([p.camera for p in poses]), joints_2d=np.stack([p.pixels for p in poses]),
        confidence=np.stack([p.confidence for p in poses]), boxes=np.stack([p.box for p in poses]),
        timestamps=np.array([p.timestamp for p in poses]), frame_indices=np.array([p.index for p in poses]),
        root_depths=np.array([p.root_depth for p in poses], np.float32), joint_names=tuple(pipeline.joint_names),
        info=info, presence=np.array([p.presence for p in poses], np.float32),
        found=np.array([p.found for p in poses], bool))


def _run_multi(multi, source: Any, *, fps, max_frames, progress, on_frame, intrinsics_given: bool) -> PoseResult:
    from .sources import open_source

    rows: list[tuple[int, Any]] = []
    frames_seen, shape = 0, None
    seconds = {"detect": 0.0, "people": 0.0}
    start = time.perf_counter()
    with open_source(source, fps=fps) as frames:
        bar = None
        if progress:
            try:
                from tqdm import tqdm

                bar = tqdm(total=frames.length, desc=frames.name, unit="frame", disable=None)
            except ImportError:
                logger.info("infer: %s (%s frames); install tqdm for a progress bar", frames.name, frames.length)
        try:
            for frame in frames:
                if max_frames is not None and frames_seen >= max_frames:
                    break
                poses = multi.update(frame.image, timestamp=frame.timestamp, index=frame.index)
                frames_seen += 1
                shape = frame.image.shape
                for k, v in multi.last_seconds.items():
                    seconds[k] += v
                rows += sorted(poses.items())
                if on_frame is not None:
                    on_frame(frame, poses)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        skipped, source_fps, name = list(frames.skipped), frames.fps, frames.name
    if not frames_seen:
        raise ValueError(f"{name}: no frame could be read")
    wall = time.perf_counter() - start
    w, h = int(shape[1]), int(shape[0])
    from ..camera import default_intrinsics

    k = multi.intrinsics if multi.intrinsics is not None else default_intrinsics(w, h)
    tracks = sorted({t for t, _ in rows})
    info = {
        "source": str(name), "people": "all", "backend": multi.backend, "model": str(multi.model),
        "prm": None if multi.prm is None else str(multi.prm), "threads": multi.threads, "frames": frames_seen,
        "image_size": [w, h], "fps": source_fps, "intrinsics": [float(v) for v in k],
        "intrinsics_source": "given" if intrinsics_given else "default", "root_depth_source": "estimated",
        "skipped": [[int(i), str(r)] for i, r in skipped], "seconds": {**seconds, "total": wall},
        "fps_achieved": frames_seen / wall if wall > 0 else None, "tracks": tracks,
        "finder": getattr(multi.detector, "label", type(multi.detector).__name__), "finder_runs": multi.detections,
        "finder_every": multi.finder_every,
    }
    j = 17
    if not rows:
        empty = {"joints_3d": np.zeros((0, j, 3), np.float32), "joints_3d_ipem": np.zeros((0, j, 3), np.float32),
                 "joints_3d_camera": np.zeros((0, j, 3), np.float32), "joints_2d": np.zeros((0, j, 2), np.float32),
                 "confidence": np.zeros((0, j), np.float32), "boxes": np.zeros((0, 4), np.float32),
                 "timestamps": np.zeros(0), "frame_indices": np.zeros(0, np.int64),
                 "root_depths": np.zeros(0, np.float32)}
        from ..skeleton import H36M_17

        return PoseResult(**empty, joint_names=tuple(H36M_17.joint_names), info=info)
    poses = [p for _, p in rows]
    from ..skeleton import H36M_17

    return PoseResult(
        joints_3d=np.stack([p.refined for p in poses]), joints_3d_ipem=np.stack([p.pose for p in poses]),
        joints_3d_camera=np.stack([p.camera for p in poses]), joints_2d=np.stack([p.pixels for p in poses]),
        confidence=np.stack([p.confidence for p in poses]), boxes=np.stack([p.box for p in poses]),
        timestamps=np.array([p.timestamp for p in poses]), frame_indices=np.array([p.index for p in poses]),
        root_depths=np.array([p.root_depth for p in poses], np.float32), joint_names=tuple(H36M_17.joint_names),
        info=info, presence=np.array([p.presence for p in poses], np.float32),
        found=np.array([p.found for p in poses], bool), track=np.array([t for t, _ in rows], np.int64))
