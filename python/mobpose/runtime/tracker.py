"""Finding the person in each frame of a stream: a box from the user, or a search, then the box of the
previous frame's projected pose, expanded and smoothed, re-initialised when the person is lost.

The search (when no box is given, and again whenever the person is lost): the pipeline runs the IPEM on
:meth:`PoseTracker.candidates` (the whole frame, then windows of 1/2, 1/3 and 1/4 of it at half-window
steps: 85 windows) and scores each crop by the calibrated presence probability
(:mod:`mobpose.runtime.presence`). On a stream the search is bounded: at most ``search_budget`` windows
a frame (default 4, about 25 ms with ipem-mnv2 on one thread), continued over the next frames, and it
stops at the first window whose probability reaches the presence threshold; the frame meanwhile gets the
best window so far. On a single image it tries every window, keeps the most probable and re-crops twice
around the joints found. :meth:`PoseTracker.found` takes the result. A person who fills a small part of
the frame can thus be found without a detector; a detector (the multi-person 2D models) should replace
it through :class:`PersonFinder`.

Once found, the person is lost (and searched for again) only when the presence probability stays below
the threshold for `patience` frames in a row, or too few joints are usable: a still, confidently seen
person is never searched for twice. Without a presence model the older rule applies: lost when the mean
joint confidence falls below `drop_ratio` times its running average.

The pipeline talks to a :class:`PersonFinder`: ``first(image_size)`` gives the box of the first frame and
``next(pixels, confidence)`` the box of the next one from this frame's 2D joints. A detector (the multi-
person 2D models) plugs in by implementing the same two methods plus ``reset``.

Boxes are (x, y, w, h) in pixels, x and y the top-left corner; the pipeline turns them into the network
crop with :func:`mobpose.models.decode.process_bbox` (square, x1.25), as the training crops were made.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["PersonFinder", "PoseTracker", "check_box"]

logger = logging.getLogger(__name__)


def check_box(bbox, image_size: tuple[int, int], name: str = "bbox") -> np.ndarray:
    """Validates a person box against an image of (width, height): (4,) float64 (x, y, w, h).

    Raises:
        ValueError: wrong shape, a non-finite value, a non-positive size, or no overlap with the image.
    """
    box = np.asarray(bbox, dtype=np.float64)
    if box.shape != (4,):
        raise ValueError(f"{name} must be (x, y, w, h), shape (4,), got shape {box.shape}")
    if not np.isfinite(box).all():
        raise ValueError(f"{name} must be finite, got {box.tolist()}")
    if box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"{name} must have a positive width and height, got {box.tolist()}")
    w, h = image_size
    if box[0] >= w or box[1] >= h or box[0] + box[2] <= 0 or box[1] + box[3] <= 0:
        raise ValueError(f"{name} {box.tolist()} lies outside the {w}x{h} image")
    return box


@runtime_checkable
class PersonFinder(Protocol):
    """Where the person is: the interface a detector implements to replace :class:`PoseTracker`."""

    def first(self, image_size: tuple[int, int]) -> np.ndarray:
        """The box (4,) (x, y, w, h) of the first frame of a stream of (width, height) images."""
        ...

    def next(self, pixels: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """The box of the next frame, from this frame's joints (J, 2) pixels and confidences (J,)."""
        ...

    def reset(self) -> None:
        """Forgets the stream."""
        ...


class PoseTracker:
    """Tracks one person's box from the pose of the previous frame.

    The next box is the bounding box of the confident joints, expanded by `expand` around its centre
    (joints lie inside the body: the box must cover the head, hands and feet), then smoothed: centre
    and size are an exponential moving average with weight `smoothing` on the old box. The tracker
    re-initialises (the user's box, else a new search) when the person is lost: given the presence
    verdict of each frame (``next(..., present=...)``), after `patience` frames in a row without a
    person; without it, when the frame's mean confidence falls below `drop_ratio` times its running
    average over the frames tracked so far. Also when fewer than `min_joints` joints are confident, or
    when the box's longer side shrinks below `min_size` pixels.

    Args:
        bbox: the user's box of the first frame (and of every re-initialisation), or None for the
            whole frame.
        expand: factor on the joints' bounding box.
        smoothing: weight of the previous box in the moving average (0: no smoothing).
        drop_ratio: re-initialise when the mean confidence < drop_ratio x its running average.
        min_joints: joints that must be confident (finite and >= `min_confidence`) to track.
        min_confidence: a joint's least confidence to count (the peak bin probability; its scale depends
            on the model and its heatmap size, hence 0 by default: every finite joint).
        min_size: smallest length of the box's longer side in pixels.
        patience: frames in a row without a person (by the presence verdict) before the person is lost.
        motion: share of the person's estimated velocity (a moving average of the smoothed centre's steps,
            at most a quarter of the box a frame) added to the next box's centre: a walking person stays
            centred in the next crop instead of the crop lagging behind (0: none; 1: constant velocity).
    """

    def __init__(self, bbox=None, *, expand: float = 1.2, smoothing: float = 0.3, drop_ratio: float = 0.35,
                 min_joints: int = 6, min_confidence: float = 0.0, min_size: float = 16.0,
                 patience: int = 3, motion: float = 0.0) -> None:
        if not (expand > 0 and 0 <= smoothing < 1 and 0 <= drop_ratio < 1 and min_size > 0 and patience >= 1
                and 0 <= motion <= 1):
            raise ValueError(f"bad tracker settings: expand={expand}, smoothing={smoothing}, "
                             f"drop_ratio={drop_ratio}, min_size={min_size}, patience={patience}, motion={motion}")
        self.motion = float(motion)
        self._centre: np.ndarray | None = None
        self._vel = np.zeros(2)
        self.patience = int(patience)
        self.user_box = None if bbox is None else np.asarray(bbox, dtype=np.float64)
        self.expand, self.smoothing, self.drop_ratio = float(expand), float(smoothing), float(drop_ratio)
        self.min_joints, self.min_size = int(min_joints), float(min_size)
        self.min_confidence = float(min_confidence)
        self.image_size: tuple[int, int] | None = None
        self.box: np.ndarray | None = None
        self.reinits = 0
        self.searching = False
        self._conf_avg = 0.0
        self._tracked = 0
        self._absent = 0

    def reset(self) -> None:
        self.image_size, self.box, self._conf_avg, self._tracked, self.searching = None, None, 0.0, 0, False
        self._absent = 0
        self._forget_motion()

    def _forget_motion(self) -> None:
        self._centre, self._vel = None, np.zeros(2)

    def candidates(self) -> list[np.ndarray]:
        """Windows to search for the person: the whole frame, then windows of 1/2, 1/3 and 1/4 of its
        sides moved by half a window (3x3 + 5x5 + 7x7 positions: 84 in all)."""
        w, h = self.image_size
        out = [np.array([0.0, 0.0, w, h])]
        for s in (2, 3, 4):
            pos = np.arange(2 * s - 1) / (2 * s)  # top-left corners in half-window steps
            out += [np.array([fx * w, fy * h, w / s, h / s]) for fy in pos for fx in pos]
        return out

    def box_of(self, pixels: np.ndarray, confidence: np.ndarray | None = None) -> np.ndarray | None:
        """The unsmoothed box of a pose's joints (expanded), or None when too few are usable or the box is
        degenerate or outside the image."""
        pixels = np.asarray(pixels, dtype=np.float64)
        ok = np.isfinite(pixels).all(1)
        if confidence is not None:
            ok &= np.asarray(confidence, dtype=np.float64) >= self.min_confidence
        if ok.sum() < self.min_joints:
            return None
        lo, hi = pixels[ok].min(0), pixels[ok].max(0)
        centre, size = (lo + hi) / 2, np.maximum(hi - lo, 1.0) * self.expand
        size = np.maximum(size, 0.25 * size.max())  # a person seen side-on or lying: no sliver boxes
        return self._valid(np.concatenate([centre - size / 2, size]))

    def _valid(self, box: np.ndarray) -> np.ndarray | None:
        w, h = self.image_size
        if box[2:].max() < self.min_size or box[0] >= w or box[1] >= h or box[0] + box[2] <= 0 or box[1] + box[3] <= 0:
            return None
        return box

    def found(self, box) -> None:
        """The search's result: track from this box."""
        self.box = check_box(box, self.image_size)
        self.searching = False
        self._conf_avg, self._tracked, self._absent = 0.0, 0, 0
        self._forget_motion()

    def _initial(self) -> np.ndarray:
        w, h = self.image_size
        if self.user_box is not None:
            return check_box(self.user_box, (w, h))
        return np.array([0.0, 0.0, float(w), float(h)])

    def first(self, image_size: tuple[int, int]) -> np.ndarray:
        w, h = int(image_size[0]), int(image_size[1])
        if w <= 0 or h <= 0:
            raise ValueError(f"image size must be positive, got {w}x{h}")
        self.reset()
        self.image_size = (w, h)
        self.box = self._initial()
        self.searching = self.user_box is None
        return self.box.copy()

    def next(self, pixels: np.ndarray, confidence: np.ndarray, present: bool | None = None) -> np.ndarray:
        """The next frame's box from this frame's joints; `present`: the presence verdict of this frame
        (None: unknown, the confidence rule decides whether the person was lost)."""
        if self.image_size is None:
            raise RuntimeError("PoseTracker.next() before first()")
        conf = np.asarray(confidence, dtype=np.float64)
        ok = np.isfinite(np.asarray(pixels, dtype=np.float64)).all(1) & np.isfinite(conf)
        mean_conf = float(conf[ok].mean()) if ok.any() else 0.0
        if present is None:
            lost = self._tracked >= 3 and mean_conf < self.drop_ratio * self._conf_avg
        else:
            self._absent = 0 if present else self._absent + 1
            lost = self._absent >= self.patience
        box = None if lost else self.box_of(np.where(ok[:, None], pixels, np.nan), conf)
        if box is not None and self.box is not None and (self.smoothing > 0 or self.motion > 0):
            old_c, old_s = self.box[:2] + self.box[2:] / 2, self.box[2:]
            centre = self.smoothing * old_c + (1 - self.smoothing) * (box[:2] + box[2:] / 2)
            size = self.smoothing * old_s + (1 - self.smoothing) * box[2:]
            if self._centre is not None:  # the velocity: steps of the smoothed centre, averaged, bounded
                self._vel = 0.5 * self._vel + 0.5 * (centre - self._centre)
                speed, limit = float(np.hypot(*self._vel)), 0.25 * float(size.max())
                if speed > limit:
                    self._vel *= limit / speed
            self._centre = centre
            box = self._valid(np.concatenate([centre + self.motion * self._vel - size / 2, size]))
        if box is None:
            self.reinits += 1
            logger.debug("tracker: pose lost (mean confidence %.4g vs running %.4g): re-initialising",
                         mean_conf, self._conf_avg)
            self._conf_avg, self._tracked, self._absent = 0.0, 0, 0
            self._forget_motion()
            self.box = self._initial()
            self.searching = self.user_box is None
            return self.box.copy()
        self._tracked += 1
        self._conf_avg += (mean_conf - self._conf_avg) / min(self._tracked, 30)
        self.box = box
        return box.copy()
