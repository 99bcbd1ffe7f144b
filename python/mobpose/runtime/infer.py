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

from .pipeline import STAGES, Pipeline

__all__ = ["PoseResult", "infer"]

logger = logging.getLogger(__name__)

_ARRAYS = ("joints_3d", "joints_3d_ipem", "joints_3d_camera", "joints_2d", "confidence", "boxes", "timestamps",
           "frame_indices", "root_depths")


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

    def __len__(self) -> int:
        return len(self.joints_3d)

    def to_numpy(self) -> dict[str, np.ndarray]:
        """The arrays by name (plus ``joint_names`` as a string array)."""
        out = {k: getattr(self, k) for k in _ARRAYS}
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
            doc.update(joint_names=list(self.joint_names), info=self.info,
                       units={"joints_3d": "mm, camera frame (X right, Y down, Z forward), root-relative",
                              "joints_3d_camera": "mm, camera frame, absolute", "joints_2d": "pixels",
                              "timestamps": "seconds"})
            tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> PoseResult:
        """Reads what :meth:`save` wrote."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        if path.suffix.lower() == ".npz":
            with np.load(path) as z:
                arrays = {k: z[k] for k in _ARRAYS}
                names, info = tuple(str(n) for n in z["joint_names"]), json.loads(str(z["info"]))
        else:
            doc = json.loads(path.read_text())
            arrays = {k: np.asarray(doc[k], np.float32 if k != "frame_indices" else np.int64) for k in _ARRAYS}
            names, info = tuple(doc["joint_names"]), doc["info"]
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
    threads: int = 1,
    max_frames: int | None = None,
    progress: bool = False,
    on_frame=None,
) -> PoseResult:
    """3D poses of the person in every frame of `source`.

    Args:
        source: a video file, an image file, a folder of images, a (T, H, W, 3) / (H, W, 3) uint8 RGB array,
            a list of frames, or any iterable of frames (a live source; see mobpose.runtime.sources).
        model, prm, backend, bbox, intrinsics, root_depth, threads: as :class:`mobpose.Pipeline`.
        fps: the frame rate of sources without one (image folders, arrays; default 30); overrides a
            video's own for the timestamps when given.
        max_frames: stop after this many frames.
        progress: show a progress bar (tqdm) on stderr.
        on_frame: called with (frame, FramePose) after each frame (e.g. to render).

    Returns:
        :class:`PoseResult`.

    Raises:
        FileNotFoundError / ValueError: a missing or unreadable source, a source with no frames, a bad
            box, intrinsics or root depth, an unknown model or backend (the message names the problem).
    """
    from .sources import open_source

    pipeline = Pipeline(model, prm=prm, backend=backend, bbox=bbox, intrinsics=intrinsics, root_depth=root_depth,
                        threads=threads)
    poses, shape = [], None
    seconds = dict.fromkeys(STAGES, 0.0)
    start = time.perf_counter()
    with open_source(source, fps=fps) as frames:
        bar = None
        if progress:
            try:
                from tqdm import tqdm
            except ImportError:  # tqdm comes with the train extra; progress then goes to the log
                logger.info("infer: %s (%s frames); install tqdm for a progress bar", frames.name, frames.length)
            else:
                bar = tqdm(total=frames.length, desc="infer", unit="frame")
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
        "intrinsics": [float(v) for v in k], "intrinsics_source": "given" if intrinsics is not None else "default",
        "root_depth_source": "given" if root_depth is not None else "estimated",
        "skipped": [[int(i), str(r)] for i, r in skipped], "seconds": {**seconds, "total": wall},
        "fps_achieved": len(poses) / wall if wall > 0 else None,
        "tracker_reinits": getattr(pipeline.tracker, "reinits", None),
    }
    return PoseResult(
        joints_3d=np.stack([p.refined for p in poses]), joints_3d_ipem=np.stack([p.pose for p in poses]),
        joints_3d_camera=np.stack([p.camera for p in poses]), joints_2d=np.stack([p.pixels for p in poses]),
        confidence=np.stack([p.confidence for p in poses]), boxes=np.stack([p.box for p in poses]),
        timestamps=np.array([p.timestamp for p in poses]), frame_indices=np.array([p.index for p in poses]),
        root_depths=np.array([p.root_depth for p in poses], np.float32), joint_names=tuple(pipeline.joint_names),
        info=info)
