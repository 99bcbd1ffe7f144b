"""3D poses of every person in view: a people detector (RTMO) finds them, each person is a track with its own
box, causal PRM state and root-depth estimate, and the tracks keep their identities through short occlusions.

Per frame (:meth:`MultiPipeline.update`):

1. Every `finder_every` frames (default 1: RTMO's cost does not grow with the people it finds) the detector runs.
2. Its people are matched to the tracks: each (track, person) pair scores the mean of the IoU of the person's box
   with the track's box (the larger of the IoUs with its current, pose-tracked box and with its last detected box),
   the OKS of the person's keypoints against the track's last 2D pose, and the similarity of the person's colours
   to the track's (mobpose.runtime.finder.continuation); pairs are taken greedily
   from the best down, each track and person once, while the score is at least `min_match`. A matched track's
   box becomes the detected box.
3. A track no detection matched is *missing*: it gets no pose this frame and keeps its state; after
   `max_missing` detection frames in a row without a match it ends (its id is never reused). A person no track
   matched starts a new track (ids 1, 2, ...) while fewer than `max_people` tracks exist, if their score reaches
   `take_score` and their box overlaps no tracked person's last detected box by more than :data:`NEW_IOU` (the
   detector's second box on one person, half of the new tracks on vtest.avi before this rule); detections down
   to `keep_score` may only continue tracks (ByteTrack's two thresholds).
4. Every track that is not missing is posed by its own one-person :class:`~mobpose.runtime.pipeline.Pipeline`
   (crop, IPEM, decoding, its own causal PRM, the pose tracker that moves its box between detections).

The result of a frame is {track id: FramePose} (the FramePose as the one-person pipeline's). Tracks of people
who cross can swap identities when their boxes and poses are alike (no appearance cue).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from .finder import appearance, continuation
from .pipeline import DEFAULT_IPEM, FramePose, Pipeline, check_intrinsics, resolve_finder, tracker_expand
from .tracker import PoseTracker

__all__ = ["MAX_MISSING", "MAX_PEOPLE", "MultiPipeline", "match"]

logger = logging.getLogger(__name__)

MAX_PEOPLE = 8
MAX_MISSING = 10
NEW_IOU = 0.3  # a detection overlapping a tracked person's last detected box more than this starts no track


def match(scores: np.ndarray, min_score: float) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of a (T, D) score matrix: (row, column) pairs, best first, score >= min_score."""
    pairs: list[tuple[int, int]] = []
    if scores.size == 0:
        return pairs
    s = scores.astype(np.float64).copy()
    while True:
        i, j = np.unravel_index(int(np.argmax(s)), s.shape)
        if s[i, j] < min_score:
            return pairs
        pairs.append((int(i), int(j)))
        s[i, :] = -np.inf
        s[:, j] = -np.inf


class _Track:
    def __init__(self, track_id: int, pipeline: Pipeline) -> None:
        self.id, self.pipeline = track_id, pipeline
        self.missing = 0
        self.pixels: np.ndarray | None = None
        self.detected: np.ndarray | None = None  # the last detected box of this person
        self.look: np.ndarray | None = None  # its colours (mobpose.runtime.finder.appearance), a slow average

    @property
    def box(self) -> np.ndarray | None:
        return self.pipeline.tracker.box


class MultiPipeline:
    """Live 3D poses of every person: ``poses = pipeline.update(frame)`` -> {track id: FramePose}.

    Args:
        model, prm, backend, intrinsics, threads, presence: as :class:`~mobpose.runtime.pipeline.Pipeline`
            (each track runs one; engines come from the shared pool).
        finder: the people detector (a shipped name, an RTMO checkpoint path or module, a callable image ->
            People; "auto": the shipped RTMO). Required: without one there is nobody to track.
        finder_every: frames between detections (between them each track's pose tracker moves its box).
        max_people: tracks at most (the most prominent new people first).
        max_missing: detection frames a track may go unmatched before it ends.
        min_match: the least (IoU + OKS) / 2 for a detection to continue a track.
        take_score, keep_score: the least person score to start a track, and to continue one (lower: a person
            half hidden behind another scores lower and is still the same person; ByteTrack's two thresholds).
    """

    def __init__(self, model: Any = "default", *, prm: Any = "default", backend: str = "auto", finder: Any = "auto",
                 intrinsics=None, threads: int | None = None, presence: Any = "default", finder_every: int = 1,
                 max_people: int = MAX_PEOPLE, max_missing: int = MAX_MISSING, min_match: float = 0.3,
                 take_score: float = 0.3, keep_score: float = 0.1) -> None:
        from .backends import check_threads
        from .people import PeopleDetector

        for name, v, lo in (("finder_every", finder_every, 1), ("max_people", max_people, 1),
                            ("max_missing", max_missing, 0)):
            if isinstance(v, bool) or int(v) < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if not 0.0 <= min_match <= 1.0:
            raise ValueError(f"min_match must be in [0, 1], got {min_match}")
        if not 0.0 <= keep_score <= take_score <= 1.0:
            raise ValueError(f"need 0 <= keep_score <= take_score <= 1, got {keep_score}, {take_score}")
        spec = resolve_finder(finder)
        if spec is None:
            raise ValueError("people='all' needs a people detector: the shipped RTMO is not installed, or finder was "
                             "None; pass finder= (an RTMO name or checkpoint)")
        self.threads = check_threads(threads)
        self.intrinsics = check_intrinsics(intrinsics)
        model_like = isinstance(spec, str) or hasattr(spec, "__fspath__") or hasattr(spec, "state_dict")
        self.detector = (PeopleDetector(spec, backend="torch" if backend == "torch" else "auto", threads=self.threads,
                                        score_threshold=keep_score) if model_like else spec)
        self.take_score = float(take_score)
        self.model, self.prm, self.backend, self.presence = model, prm, backend, presence
        self.expand = tracker_expand(DEFAULT_IPEM if model == "default" else model)
        self.finder_every, self.max_people = int(finder_every), int(max_people)
        self.max_missing, self.min_match = int(max_missing), float(min_match)
        self.tracks: dict[int, _Track] = {}
        self.frames = 0
        self._next_id = 1
        self._size: tuple[int, int] | None = None
        self.detections = 0
        self.last_seconds: dict[str, float] = {}

    def _new_track(self, box_xywh: np.ndarray) -> _Track:
        pipe = Pipeline(self.model, prm=self.prm, backend=self.backend, bbox=box_xywh, intrinsics=self.intrinsics,
                        threads=self.threads, tracker=PoseTracker(box_xywh, expand=self.expand),
                        presence=self.presence, finder=None)
        track = _Track(self._next_id, pipe)
        track.detected = np.asarray(box_xywh, np.float64)
        self._next_id += 1
        self.tracks[track.id] = track
        logger.debug("multi: track %d starts at %s", track.id, np.round(box_xywh, 1).tolist())
        return track

    def _end(self, track_id: int) -> None:
        logger.debug("multi: track %d ends", track_id)
        self.tracks.pop(track_id).pipeline.close()

    def reset(self) -> None:
        """Starts a new stream: every track ends; ids start again at 1."""
        for tid in list(self.tracks):
            self._end(tid)
        self.frames, self._next_id, self._size, self.detections = 0, 1, None, 0

    def close(self) -> None:
        """Ends every track (their engines go back to the pool)."""
        for tid in list(self.tracks):
            self._end(tid)

    def __enter__(self) -> MultiPipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _associate(self, image: np.ndarray, people) -> None:
        ids = list(self.tracks)
        scores = np.full((len(ids), len(people)), -np.inf)
        if ids and len(people):
            for r, tid in enumerate(ids):
                t = self.tracks[tid]
                if t.box is None:
                    continue
                refs = [t.box] + ([t.detected] if t.detected is not None else [])
                scores[r] = continuation(people, image, refs, t.pixels, t.box, t.look)
        pairs = match(scores, self.min_match)
        xywh = people.xywh()
        looks = appearance(image, people.boxes)
        taken_rows = {r for r, _ in pairs}
        for r, c in pairs:
            t = self.tracks[ids[r]]
            t.pipeline.move_box(xywh[c])
            t.detected = np.asarray(xywh[c], np.float64)
            t.look = looks[c] if t.look is None else 0.9 * t.look + 0.1 * looks[c]
            t.missing = 0
        for r, tid in enumerate(ids):
            if r not in taken_rows:
                self.tracks[tid].missing += 1
                if self.tracks[tid].missing > self.max_missing:
                    self._end(tid)
        taken_cols = {c for _, c in pairs}
        from ..oks import box_iou
        from .finder import prominence

        for c in np.argsort(-prominence(people), kind="stable"):
            if int(c) in taken_cols or len(self.tracks) >= self.max_people or people.scores[c] < self.take_score:
                continue
            held = [t.detected for t in self.tracks.values() if t.detected is not None]
            if held and box_iou(people.boxes[c:c + 1], np.stack([np.concatenate([b[:2], b[:2] + b[2:]])
                                                                   for b in held])).max() > NEW_IOU:
                continue  # a second box on somebody already tracked, not a new person
            self._new_track(np.asarray(xywh[c], np.float64)).look = looks[c]

    def update(self, image: np.ndarray, *, timestamp: float | None = None,
               index: int | None = None) -> dict[int, FramePose]:
        """The poses of the people in the next frame, by track id (tracks missing this frame are absent).

        Raises:
            ValueError: not a uint8 (H, W, 3) image, or an empty one. A change of image size starts a new stream.
        """
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"frame must be a uint8 (H, W, 3) RGB array, got "
                             f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}")
        h, w = image.shape[:2]
        if h == 0 or w == 0:
            raise ValueError(f"frame is empty ({w}x{h} pixels)")
        if self._size is not None and self._size != (w, h):
            logger.warning("frame size changed from %dx%d to %dx%d: starting a new stream", *self._size, w, h)
            self.reset()
        self._size = (w, h)
        idx = self.frames if index is None else int(index)
        ts = float(idx / 30.0 if timestamp is None else timestamp)
        t0 = time.perf_counter()
        if self.frames % self.finder_every == 0:
            people = self.detector(image)
            self.detections += 1
            self._associate(image, people)
        detect = time.perf_counter() - t0
        out: dict[int, FramePose] = {}
        for tid, t in list(self.tracks.items()):
            if t.missing:
                continue
            pose = t.pipeline.update(image, timestamp=ts, index=idx)
            t.pixels = pose.pixels.astype(np.float64)
            out[tid] = pose
        self.frames += 1
        self.last_seconds = {"detect": detect, "people": time.perf_counter() - t0 - detect}
        return out

    def __repr__(self) -> str:
        return (f"MultiPipeline(backend={self.backend!r}, model={self.model!r}, finder={self.detector!r}, "
                f"finder_every={self.finder_every}, tracks={sorted(self.tracks)})")
