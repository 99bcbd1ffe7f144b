"""The streaming pipeline: one frame in, one 3D pose out, in bounded memory however long it runs.

Per frame: the person box (tracked from the previous frame's pose, see :mod:`.tracker`) -> the crop
(:func:`mobpose.models.decode.process_bbox`, square, x1.25, warped to the IPEM's input size) -> the IPEM
(network and soft-argmax) -> decoding to pixels and camera millimetres -> the causal PRM over the last T
frames -> the next frame's box.

Units and frames. 3D joints are millimetres in the camera frame (X right, Y down, Z forward, as
mobpose.camera): ``pose`` (the IPEM's) and ``refined`` (the PRM's) are root-relative (pelvis at the
origin); ``camera`` is absolute, the refined pose placed at the root's position, which needs the camera
intrinsics (given, or :func:`mobpose.camera.default_intrinsics` of the image size: focal length = image
diagonal, centre = image centre) and the root depth (given, or fy x 1700 mm / box height: a standing
adult filling the box, smoothed over frames). ``pixels`` are image pixels (x right, y down) of the
IPEM's joints. Joints are the 17 of Human3.6M (mobpose.skeleton.H36M_17).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import time
from typing import Any

import numpy as np

from ..skeleton import H36M_17
from .backends import check_threads, make_engines, model_ref, release_engines, resolve_backend
from .presence import PresenceModel, presence_features, shipped_path
from .tracker import PersonFinder, PoseTracker, check_box

__all__ = ["DEFAULT_FINDER", "DEFAULT_IPEM", "DEFAULT_PRM", "FramePose", "Pipeline", "check_intrinsics",
           "resolve_finder"]

logger = logging.getLogger(__name__)

DEFAULT_IPEM = "ipem-mnv2"
DEFAULT_PRM = "prm-causal"
DEFAULT_FINDER = "rtmo-mnv2"
FINDER_EVERY = 5  # frames between the finder's detections while the person is tracked
STAGES = ("search", "crop", "ipem", "decode", "prm", "track")
SEARCH_BUDGET = 4  # IPEM runs a frame for the search on a stream (about 25 ms with ipem-mnv2, one thread)
# A stream's search ends early at a box this sure to hold a person (the tracker then re-crops on the joints).
# Not at the presence threshold itself: a window much larger than the person often passes it.
SURE_PRESENCE = 0.9
JOINTS = H36M_17.num_joints


def resolve_finder(finder: Any) -> Any:
    """The people detector a pipeline finds its person with: "auto" -> the shipped RTMO (:data:`DEFAULT_FINDER`)
    when the install has it, else None (the window search); None or "none" -> None; anything else as given (a
    shipped name, an RTMO checkpoint path or module, a mobpose.runtime.people.PeopleDetector)."""
    if finder is None or (isinstance(finder, str) and finder == "none"):
        return None
    if isinstance(finder, str) and finder == "auto":
        from ..pretrained import list_pretrained

        return DEFAULT_FINDER if DEFAULT_FINDER in list_pretrained() else None
    return finder


def tracker_expand(model) -> float:
    """The factor on the joints' box that the tracker uses with `model`: a shipped IPEM's manifest may
    set it (``tracker_expand``: an IPEM whose joints sit further inside the body needs more to keep the
    whole person in the next crop; measured per model, docs/MODELS.md), else PoseTracker's 1.2."""
    from ..pretrained import list_pretrained, pretrained_info

    if isinstance(model, str) and model in list_pretrained():
        return float(pretrained_info(model).get("tracker_expand", 1.2))
    return 1.2


@dataclasses.dataclass
class FramePose:
    """The pose of one frame (see the module docstring for units and frames; J = 17).

    Attributes:
        index: the frame's index in its source.
        timestamp: seconds.
        box: (4,) the person box (x, y, w, h) px the crop was made from.
        pixels: (J, 2) image pixels of the joints.
        confidence: (J,) the largest bin probability of each joint's heatmap (higher: surer).
        pose: (J, 3) root-relative camera mm, the IPEM's.
        refined: (J, 3) root-relative camera mm, the PRM's (the IPEM's without a PRM).
        camera: (J, 3) absolute camera mm: the refined pose with its root at the root joint's pixel
            back-projected to `root_depth`.
        root_depth: the root's Z in mm (given or estimated).
        seconds: per stage (search (0 unless the person was searched for, or the finder's detector ran), crop,
            ipem, decode, prm, track).
        presence: the calibrated probability that the crop holds a person (mobpose.runtime.presence;
            NaN without a presence model for the IPEM).
        found: whether a person was found: presence >= the presence model's threshold (without a
            presence model: the joints are finite). When False the pose is the network's guess on a
            crop without a person: do not use it.
        searches: IPEM runs of the person search in this frame (0 when tracking).
    """

    index: int
    timestamp: float
    box: np.ndarray
    pixels: np.ndarray
    confidence: np.ndarray
    pose: np.ndarray
    refined: np.ndarray
    camera: np.ndarray
    root_depth: float
    seconds: dict[str, float]
    presence: float = float("nan")
    found: bool = True
    searches: int = 0


def check_intrinsics(intrinsics) -> np.ndarray | None:
    """(9,) float32 intrinsics (fx, fy, cx, cy, k1, k2, k3, p1, p2) from (9,), (4,) fx, fy, cx, cy or a 3x3
    matrix; None stays None.

    Raises:
        ValueError: another shape, a non-finite value, or a non-positive focal length.
    """
    if intrinsics is None:
        return None
    k = np.asarray(intrinsics, dtype=np.float64)
    if k.shape == (3, 3):
        k = np.array([k[0, 0], k[1, 1], k[0, 2], k[1, 2]])
    if k.shape == (4,):
        k = np.concatenate([k, np.zeros(5)])
    if k.shape != (9,):
        raise ValueError(f"intrinsics must be (9,) (fx, fy, cx, cy, k1, k2, k3, p1, p2), (4,) or a 3x3 matrix, "
                         f"got shape {k.shape}")
    if not np.isfinite(k).all():
        raise ValueError(f"intrinsics must be finite, got {k.tolist()}")
    if k[0] <= 0 or k[1] <= 0:
        raise ValueError(f"intrinsics: focal lengths must be positive, got fx={k[0]}, fy={k[1]}")
    return k.astype(np.float32)


class Pipeline:
    """Live 3D pose of one person: ``pose = pipeline.update(frame)`` per frame.

    Args:
        model: the IPEM: "default" (the shipped ``ipem-mnv2``), a shipped name, a checkpoint path or a
            ConvNeXtPose module.
        prm: the causal PRM: "default" (the shipped ``prm-causal``), a name, a path, a module, or None for
            the IPEM alone. The native backend needs a name or path (the C++ core reads the file).
        backend: "auto", "native", "tflite" or "torch" (mobpose.runtime.backends).
        bbox: the person's box (x, y, w, h) px in the first frame, or None for the whole frame.
        intrinsics: (9,), (4,) fx, fy, cx, cy or 3x3, or None for the default of the image size.
        root_depth: the root's distance in mm, or None to estimate it from the box size.
        threads: CPU threads of the engines (None: the usable cores, at most 2, the fastest measured;
            mobpose.runtime.backends.default_threads).
        tracker: a :class:`~mobpose.runtime.tracker.PersonFinder` (default: a PoseTracker on `bbox`).
        search_budget: IPEM runs a frame for the person search (no box given, or the person lost): the
            search goes on over the next frames (mobpose.runtime.tracker); None: the whole search in one
            frame (what mobpose.infer does for a single image).
        presence: "default" (the shipped presence model of the shipped IPEM, none for other models), a
            :class:`~mobpose.runtime.presence.PresenceModel`, or None (every frame with finite joints
            counts as found; the search then scores windows by mean joint confidence).
        finder: the people detector that finds the person (mobpose.runtime.finder.DetectorFinder: the most
            prominent person, or the one in `bbox`, kept by the pose tracker between detections): "auto" (the
            shipped RTMO when the install has it, else the window search), None / "none" (the window search
            when no box is given), a shipped name, an RTMO checkpoint path or module, or a PeopleDetector.
            Ignored when `tracker` is given.
        finder_every: frames between the finder's detections while the person is tracked.

    Memory is bounded: the pipeline keeps the last T poses and nothing per frame.
    """

    def __init__(self, model: Any = "default", *, prm: Any = "default", backend: str = "auto", bbox=None,
                 intrinsics=None, root_depth: float | None = None, threads: int | None = None,
                 tracker: PersonFinder | None = None, search_budget: int | None = SEARCH_BUDGET,
                 presence: Any = "default", finder: Any = "auto", finder_every: int = FINDER_EVERY) -> None:
        self.ipem = self.prm = None
        self._keys: list = []
        self.intrinsics = check_intrinsics(intrinsics)
        if root_depth is not None and not (np.isfinite(root_depth) and root_depth > 0):
            raise ValueError(f"root_depth must be a positive finite number of mm, got {root_depth}")
        self.root_depth = None if root_depth is None else float(root_depth)
        if bbox is not None:
            check_box(bbox, (np.inf, np.inf))  # shape, finite, positive size; the image is checked per frame
        if tracker is not None and not isinstance(tracker, PersonFinder):
            raise TypeError(f"tracker must implement first/next/reset (PersonFinder), got {type(tracker).__name__}")
        name = DEFAULT_IPEM if model == "default" else model
        self.threads = check_threads(threads)
        finder = resolve_finder(finder) if tracker is None else None
        if tracker is not None:
            self.tracker = tracker
        elif finder is not None:
            from .finder import DetectorFinder

            self.tracker = DetectorFinder(finder, bbox=bbox, every=finder_every, expand=tracker_expand(name),
                                          backend="torch" if backend == "torch" else "auto", threads=self.threads)
        else:
            self.tracker = PoseTracker(bbox, expand=tracker_expand(name))
        if search_budget is not None and (isinstance(search_budget, bool) or int(search_budget) < 1):
            raise ValueError(f"search_budget must be None or >= 1 IPEM runs a frame, got {search_budget!r}")
        self.search_budget = None if search_budget is None else int(search_budget)
        try:
            self._next_takes_presence = "present" in inspect.signature(self.tracker.next).parameters
        except (TypeError, ValueError):
            self._next_takes_presence = False
        self.ipem_ref = model_ref(name, "ipem")
        self.prm_ref = None if prm is None else model_ref(DEFAULT_PRM if prm == "default" else prm, "prm")
        exported = self.ipem_ref.tflite is not None and (self.prm_ref is None or self.prm_ref.tflite is not None)
        self.backend = resolve_backend(backend, exported)
        if self.backend == "torch" or not self.ipem_ref.facts:
            self.ipem_ref.load()  # the module itself (torch), or its facts before exporting it
        if self.prm_ref is not None and (self.backend == "torch" or not self.prm_ref.facts):
            self.prm_ref.load()

        def label(m, default: str):
            if m is None or isinstance(m, str | os.PathLike):
                return None if m is None else (f"default ({default})" if m == "default" else str(m))
            return type(m).__name__

        self.model_name, self.prm_name = label(model, DEFAULT_IPEM), label(prm, DEFAULT_PRM)
        self.ipem, self.prm, *self._keys = make_engines(self.backend, self.ipem_ref, self.prm_ref, threads=self.threads)
        self.input_size = int(self.ipem_ref.facts["input_size"])
        self.heatmap_size = tuple(self.ipem_ref.facts["heatmap_size"])
        self.window = self.prm_ref.facts["window"] if self.prm_ref is not None else 1
        self.joint_names = H36M_17.joint_names
        self.presence = self._presence_model(presence)
        self.frames = 0
        self._queue: list[np.ndarray] = []
        self._windows = 0  # windows of the search in progress
        self._best: tuple[float, np.ndarray] | None = None
        self._size: tuple[int, int] | None = None
        self._box: np.ndarray | None = None
        self._k: np.ndarray | None = None
        self._depth: float | None = None
        logger.info("pipeline: backend %s, IPEM %s (%d px), PRM %s (T=%d), %d thread(s), presence %s",
                    self.backend, self.model_name, self.input_size, self.prm_name, self.window, self.threads,
                    self.presence)

    def _presence_model(self, presence: Any) -> PresenceModel | None:
        if presence is None or isinstance(presence, PresenceModel):
            return presence
        if presence != "default":
            raise TypeError(f"presence must be 'default', a PresenceModel or None, got {type(presence).__name__}")
        name = self.ipem_ref.name
        if name is None or not shipped_path(name).is_file():
            logger.info("no presence model for IPEM %s: every frame with finite joints counts as found",
                        self.model_name)
            return None
        return PresenceModel.load_shipped(name)

    def _score(self, xyz: np.ndarray, conf: np.ndarray, crop: np.ndarray) -> float:
        """The presence probability of one IPEM output (NaN without a presence model)."""
        if self.presence is None:
            return float("nan")
        return self.presence.probability(presence_features(xyz, conf, crop, self.heatmap_size))

    def _found(self, p: float, xyz: np.ndarray) -> bool:
        if self.presence is None:
            return bool(np.isfinite(xyz).all())
        return bool(p >= self.presence.threshold)

    def close(self) -> None:
        """Gives the engines back to the pool (a later pipeline of the same models, backend and threads
        reuses them); the pipeline cannot run after this."""
        if self._keys:
            release_engines(self.ipem, self.prm, *self._keys)
            self._keys = []
        self.ipem = self.prm = None

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def reset(self) -> None:
        """Starts a new stream (a new video): forgets the box, the root depth and the PRM's past frames."""
        self.tracker.reset()
        if self.prm is not None:
            self.prm.reset()
        self.frames, self._size, self._box, self._k, self._depth = 0, None, None, None, None
        self._queue, self._best = [], None

    def move_box(self, box) -> None:
        """The person's box (x, y, w, h) for the next frame, from outside (a detector's), in place of the
        tracker's; before the first frame it is the first frame's box."""
        if self._size is None:
            box = check_box(box, (np.inf, np.inf))
            self.tracker.user_box = box.copy()
            return
        box = check_box(box, self._size)
        self.tracker.box, self._box = box.copy(), box.copy()

    def _start(self, w: int, h: int) -> None:
        self._size = (w, h)
        from ..camera import default_intrinsics

        self._k = self.intrinsics if self.intrinsics is not None else default_intrinsics(w, h)
        self._box = self.tracker.first((w, h))
        self._depth = None
        self._queue, self._best = [], None
        if self.prm is not None:
            self.prm.reset()

    def _search(self, image: np.ndarray, refine: int = 2):
        """One frame's share of the person search (see mobpose.runtime.tracker).

        Scores up to `search_budget` of the tracker's candidate windows (all of them when None) by the
        presence probability (mean joint confidence without a presence model), continuing the windows of
        the previous frames. On a stream the best box so far is one of them (a searching frame costs
        `search_budget` IPEM runs in all), and between frames it follows the person (re-cropped around the
        joints of the frame's pose when a person was found in it, and scored afresh on the new frame).
        When every window was tried, or earlier when the best box's probability reaches SURE_PRESENCE,
        the best one, re-cropped up to `refine` times around its joints (within the frame's budget), is
        the person's box (``tracker.found``); it is tracked, and the search starts again if it holds no
        person (see PoseTracker.patience). Windows are not accepted early at the threshold: a window
        much larger than the person often passes it (the network then sees a person filling the crop).

        Returns (box, runs, cached): the box this frame is posed in, the IPEM runs spent, and that box's
        (crop, crop_box, xyz, conf, p) when it was run this frame (else None).
        """
        from .image import crop_person

        h, w = image.shape[:2]
        if not self._queue:
            self._queue, self._best = list(self.tracker.candidates()), None
            self._windows = len(self._queue)
        exhaustive = self.search_budget is None
        # On a stream the best box so far is scored afresh on this frame, as one of the budget's runs: the
        # frame is then posed from a run of this frame (no extra IPEM run), and a person who left it loses
        # their lead.
        cands = []
        if not exhaustive and self._best is not None and self.search_budget >= 2:
            cands, self._best = [self._best[1]], None
        n = len(self._queue) if exhaustive else min(self.search_budget - len(cands), len(self._queue))
        cands += [self._queue.pop(0) for _ in range(n)]
        runs, cached = 0, None
        for cand in cands:
            crop, crop_box = crop_person(image, cand, self.input_size)
            xyz, conf = self.ipem(crop)
            runs += 1
            p = self._score(xyz, conf, crop)
            score = p if self.presence is not None else float(np.mean(conf[:JOINTS]))
            if np.isfinite(score) and (self._best is None or score > self._best[0]):
                self._best = (score, cand)
                cached = (crop, crop_box, xyz, conf, p)
        if self._best is None:  # every window gave non-finite joints: the whole frame
            self._best = (-np.inf, np.array([0.0, 0.0, w, h]))
        score, box = self._best  # `cached` is this box's run when it was made this frame
        sure = not exhaustive and self.presence is not None and score >= max(SURE_PRESENCE, self.presence.threshold)
        if self._queue and not sure:  # more windows next frame; this frame is posed in the best so far
            return box, runs, cached
        # re-crop around the joints found (within the frame's budget on a stream)
        for _ in range(refine if exhaustive else min(refine, self.search_budget - runs)):
            if cached is not None:
                xyz, conf = cached[2], cached[3]
            else:
                xyz, conf = self.ipem(crop_person(image, box, self.input_size)[0])
                runs += 1
            nxt = self.tracker.box_of(self._pixels(xyz, box, w, h), conf[:JOINTS]) if np.isfinite(xyz).all() else None
            if nxt is None:
                break
            box, cached = nxt, None
        logger.debug("search: box %s after %d windows (best score %.4g)", np.round(box, 1).tolist(),
                     self._windows - len(self._queue), score)
        self._queue, self._best = [], None
        self.tracker.found(box)
        return self.tracker.box.copy(), runs, cached

    def _pixels(self, xyz: np.ndarray, box: np.ndarray, w: int, h: int) -> np.ndarray:
        from ..models.decode import heatmap_to_image, process_bbox

        return heatmap_to_image(xyz[:JOINTS].astype(np.float64), process_bbox(box, w, h), self.heatmap_size)

    def update(self, image: np.ndarray, *, timestamp: float | None = None, index: int | None = None) -> FramePose:
        """The pose of the next frame of the stream.

        Args:
            image: (H, W, 3) uint8 RGB.
            timestamp: seconds (default: frames so far / 30).
            index: the frame's index in its source (default: frames so far).

        Raises:
            ValueError: not a uint8 (H, W, 3) image, or an empty one. A change of image size starts a
                new stream.
        """
        from ..models.decode import decode_pose
        from .image import crop_person

        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"frame must be a uint8 (H, W, 3) RGB array, got "
                             f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}")
        h, w = image.shape[:2]
        if h == 0 or w == 0:
            raise ValueError(f"frame is empty ({w}x{h} pixels)")
        if self._size != (w, h):
            if self._size is not None:
                logger.warning("frame size changed from %dx%d to %dx%d: starting a new stream", *self._size, w, h)
            self._start(w, h)
        t = [time.perf_counter()]
        runs, cached = 0, None
        nobody = False
        if getattr(self.tracker, "sees_image", False):  # a detector finds the person (mobpose.runtime.finder)
            seen = self.tracker.observe(image)
            nobody = seen is None
            self._box = np.array([0.0, 0.0, w, h]) if nobody else seen
        elif getattr(self.tracker, "searching", False):
            self._box, runs, cached = self._search(image)
        t.append(time.perf_counter())
        box = self._box
        if cached is not None:
            crop, crop_box, xyz, conf, p = cached
            t += [time.perf_counter()] * 2
        else:
            crop, crop_box = crop_person(image, box, self.input_size)
            t.append(time.perf_counter())
            xyz, conf = self.ipem(crop)
            t.append(time.perf_counter())
            p = self._score(xyz, conf, crop)
        found = self._found(p, xyz) and not nobody
        k = self._k
        if self.root_depth is not None:
            depth = self.root_depth
        else:  # fy * body height / box height, smoothed (boxes of tracked poses jitter)
            guess = float(k[1]) * 1700.0 / max(float(box[3]) / 1.1, 1.0)
            depth = guess if self._depth is None else 0.8 * self._depth + 0.2 * guess
            self._depth = depth
        if not np.isfinite(xyz).all():
            raise FloatingPointError(f"frame {self.frames}: the IPEM gave non-finite joints (backend {self.backend})")
        dec = decode_pose(xyz.astype(np.float64), crop_box, depth, k.astype(np.float64),
                          self.heatmap_size)
        pixels = dec["pixels"][:JOINTS].astype(np.float32)
        pose = dec["root_relative_mm"][:JOINTS].astype(np.float32)
        # the root: its pixel seen at the root depth (the decoded root's own depth bin is dropped)
        root = np.array([(pixels[0, 0] - k[2]) / k[0] * depth, (pixels[0, 1] - k[3]) / k[1] * depth, depth],
                        np.float32)
        t.append(time.perf_counter())
        refined = np.asarray(self.prm(pose), np.float32) if self.prm is not None else pose
        refined = refined - refined[:1]  # root-relative, as the PRM's input
        t.append(time.perf_counter())
        if getattr(self.tracker, "searching", False):
            if self._best is not None:  # the search goes on next frame; its best box follows the person
                nxt = self.tracker.box_of(pixels, conf[:JOINTS]) if found else None
                self._best = (p if self.presence is not None else float(np.mean(conf[:JOINTS])),
                              box if nxt is None else nxt)
        elif self._next_takes_presence:
            self._box = self.tracker.next(pixels, conf[:JOINTS], present=found if self.presence is not None else None)
        else:
            self._box = self.tracker.next(pixels, conf[:JOINTS])
        t.append(time.perf_counter())
        idx = self.frames if index is None else int(index)
        self.frames += 1
        return FramePose(
            index=idx, timestamp=float(idx / 30.0 if timestamp is None else timestamp), box=np.asarray(box, np.float32),
            pixels=pixels, confidence=np.asarray(conf[:JOINTS], np.float32), pose=pose,
            refined=refined, camera=refined + root,
            root_depth=float(depth), seconds=dict(zip(STAGES, np.diff(t).tolist(), strict=True)),
            presence=float(p), found=found, searches=runs)

    def __repr__(self) -> str:
        return (f"Pipeline(backend={self.backend!r}, model={self.model_name!r}, prm={self.prm_name!r}, "
                f"input={self.input_size}, window={self.window}, threads={self.threads}, "
                f"search_budget={self.search_budget})")
