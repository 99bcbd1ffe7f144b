"""Finding the person of a one-person stream with a people detector (RTMO, mobpose.runtime.people), and keeping
them with the pose tracker between detections.

:class:`DetectorFinder` is a :class:`~mobpose.runtime.tracker.PoseTracker` that also sees the frames
(``sees_image``): the pipeline calls :meth:`DetectorFinder.observe` with each frame before cropping it.

- The detector runs on the first frame, then every `every` frames, and on every frame while nobody is tracked.
- Nobody tracked (the start of a stream without a box, or the person lost): the most prominent person whose score
  reaches `take_score` is taken, the largest score x sqrt(box area) (a near, sure person before a far, unsure
  one).
- Somebody tracked: each detection whose score reaches `keep_score` (lower: a person half hidden behind another
  scores lower, ByteTrack's second threshold) is scored by how well it continues them (:func:`continuation`):
  the mean of the IoU of its box with the tracked box (the largest of the IoUs with the pose-tracked box, the last
  detected box and that box moved on by the person's velocity), the OKS of its keypoints against the tracked 2D
  pose, and the similarity of its colours to the person's (:func:`appearance`: hue-saturation histograms of the
  upper and lower body, kept as a slow average), each in [0, 1]; the best one
  scoring at least `min_match` becomes the tracked box (the detector's box is the person's, as the IPEM's training
  crops were made from: the labelled joints' box x1.15). No detection matches: the box follows the pose (a
  short occlusion); after `patience` frames without a match the person is lost, and the most prominent person is
  taken again.
- Between detection frames the box follows the pose (PoseTracker.next: the joints' box, expanded, smoothed); a
  pose that gives no usable box leaves the detected one (moved on by the velocity). The IPEM's presence verdict
  marks frames as found or not, but does not end the tracking: the detections do.

A box given by the user (``bbox``) is the tracked person of the first frame: the detector then keeps *that*
person rather than the most prominent. The time the detector takes is the pipeline's ``search`` stage.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .tracker import PoseTracker, check_box

__all__ = ["DetectorFinder", "appearance", "continuation", "prominence"]

logger = logging.getLogger(__name__)


def prominence(people) -> np.ndarray:
    """(N,) score x sqrt(box area) of detected people (mobpose.runtime.people.People)."""
    wh = np.clip(people.boxes[:, 2:] - people.boxes[:, :2], 0, None)
    return people.scores * np.sqrt(wh[:, 0] * wh[:, 1])


def _oks(pred: np.ndarray, pose: np.ndarray, box: np.ndarray) -> np.ndarray:
    """(N,) OKS of detected keypoints (N, J, 2) against one pose (J, 2) (finite joints), area = box w x h."""
    from ..oks import SIGMAS

    ok = np.isfinite(pose).all(1)
    if not ok.any():
        return np.zeros(len(pred))
    d2 = ((pred[:, ok] - pose[ok]) ** 2).sum(-1)
    var = (2 * SIGMAS[: pose.shape[0]][ok]) ** 2
    return np.exp(-d2 / (2 * max(float(box[2] * box[3]), 1.0) * var)).mean(1)


def appearance(image: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
    """(N, 64) colour descriptors of people: hue x saturation histograms (8 x 4 bins) of the upper and of the lower
    half of each box's middle 60 % (clothes, not background), each half summing to 1 (zeros for an empty box)."""
    import cv2

    h, w = image.shape[:2]
    out = np.zeros((len(boxes_xyxy), 64), np.float32)
    if not len(boxes_xyxy):
        return out
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes_xyxy, np.float64)):
        cx, half = (x0 + x1) / 2, 0.3 * (x1 - x0)
        xa, xb = int(np.clip(cx - half, 0, w)), int(np.clip(cx + half, 0, w))
        ya, ym, yb = int(np.clip(y0, 0, h)), int(np.clip((y0 + y1) / 2, 0, h)), int(np.clip(y1, 0, h))
        for k, (a, b) in enumerate(((ya, ym), (ym, yb))):
            patch = hsv[a:b, xa:xb]
            if patch.size:
                hist = cv2.calcHist([patch], [0, 1], None, [8, 4], [0, 180, 0, 256]).ravel()
                out[i, 32 * k:32 * (k + 1)] = hist / max(hist.sum(), 1.0)
    return out


def continuation(people, image: np.ndarray, refs: list[np.ndarray], pose: np.ndarray | None,
                 box: np.ndarray | None, look: np.ndarray | None) -> np.ndarray:
    """(N,) how well each detected person continues a tracked one, in [0, 1]: the mean of the box IoU (the largest
    with the `refs` boxes, x, y, w, h), the OKS of the keypoints against the tracked 2D `pose` (area of `box`) and
    the colour similarity to the tracked `look` (:func:`appearance`: histogram intersection), of those known; 0 for a
    box that overlaps none of the `refs` (a person does not jump)."""
    from ..oks import box_iou

    iou = box_iou(people.boxes, np.stack([np.concatenate([r[:2], r[:2] + r[2:]]) for r in refs])).max(1)
    terms = [iou]
    if pose is not None and box is not None:
        terms.append(_oks(people.keypoints, pose, box))
    if look is not None:
        terms.append(np.minimum(appearance(image, people.boxes), look[None]).sum(1) / 2)
    return np.where(iou > 0, np.mean(terms, axis=0), 0.0)  # nobody jumps: no overlap, no continuation


class DetectorFinder(PoseTracker):
    """A PersonFinder that runs a people detector (see the module docstring).

    Args:
        detector: what :class:`~mobpose.runtime.people.PeopleDetector` takes as ``model`` (a shipped name, an RTMO
            checkpoint path or module; built here with score threshold `keep_score`), or any callable image ->
            :class:`~mobpose.runtime.people.People` (a PeopleDetector, another detector).
        bbox: the person's box (x, y, w, h) in the first frame, or None for the most prominent person.
        every: frames between detections while somebody is tracked (1: every frame).
        min_match: the least continuation score for a detection to be the tracked person.
        patience: frames in a row without a matching detection before the person is lost (the box meanwhile
            follows the pose, and the next detections may still find them).
        take_score: the least person score to start tracking someone (the most prominent of them).
        keep_score: the least person score to continue the tracked person (lower than `take_score`: a person
            half hidden behind another scores lower and is still the same person; ByteTrack's two thresholds).
        backend, threads: the detector's, when it is built here.
        **tracker: PoseTracker's settings for the frames between detections (expand, smoothing, ...).
    """

    sees_image = True

    def __init__(self, detector: Any = "rtmo-mnv2", *, bbox=None, every: int = 5, min_match: float = 0.3,
                 patience: int = 30, take_score: float = 0.3, keep_score: float = 0.1, backend: str = "auto",
                 threads: int = 1, **tracker) -> None:
        super().__init__(bbox, **tracker)
        if isinstance(every, bool) or int(every) < 1:
            raise ValueError(f"every must be >= 1 frame, got {every!r}")
        if not 0.0 <= min_match <= 1.0:
            raise ValueError(f"min_match must be in [0, 1], got {min_match}")
        if isinstance(patience, bool) or int(patience) < 1:
            raise ValueError(f"patience must be >= 1 frame, got {patience!r}")
        if not 0.0 <= keep_score <= take_score <= 1.0:
            raise ValueError(f"need 0 <= keep_score <= take_score <= 1, got {keep_score}, {take_score}")
        from .people import PeopleDetector

        model_like = isinstance(detector, str) or hasattr(detector, "__fspath__") or hasattr(detector, "state_dict")
        self.detector = (PeopleDetector(detector, backend=backend, threads=threads, score_threshold=keep_score)
                         if model_like else detector)
        if not callable(self.detector):
            raise TypeError(f"detector must be a model (name, path, module) or callable image -> People, "
                            f"got {type(detector).__name__}")
        self.every, self.min_match, self.detect_patience = int(every), float(min_match), int(patience)
        self.take_score, self.keep_score = float(take_score), float(keep_score)
        self.tracking = False
        self.detections = 0  # detector runs since the stream started
        self._since = 0  # frames since the last detection
        self._unmatched = 0  # frames since the last matching detection
        self._pose: np.ndarray | None = None
        self._detected: np.ndarray | None = None  # the person's last detected box
        self._velocity = np.zeros(2)  # of the detected box's centre, pixels a frame
        self._look: np.ndarray | None = None  # the person's colours (appearance)
        self.last_people = None

    def reset(self) -> None:
        super().reset()
        self._lose()
        self.detections, self._since, self.last_people = 0, 0, None

    def _lose(self) -> None:
        self.tracking, self._unmatched, self._pose, self._detected = False, 0, None, None
        self._velocity, self._look = np.zeros(2), None

    def first(self, image_size: tuple[int, int]) -> np.ndarray:
        box = super().first(image_size)
        self.searching = False  # the detector finds the person, not the window search
        self.tracking = self.user_box is not None
        self._since = self.every  # detect on the first frame
        return box

    def found(self, box) -> None:
        super().found(box)
        self.tracking = True

    def observe(self, image: np.ndarray) -> np.ndarray | None:
        """This frame's person box (x, y, w, h), running the detector when it is due; None when nobody is
        tracked (the detector found no one)."""
        due = not self.tracking or self._since >= self.every
        self._since += 1
        if self.tracking:
            self._unmatched += 1
        if due:
            self._detect(image)
        if self.tracking and self._unmatched > self.detect_patience:
            logger.debug("finder: no detection matched the person for %d frames: lost", self._unmatched - 1)
            self._lose()
            self._detect(image)
        return self.box.copy() if self.tracking and self.box is not None else None

    def _predicted(self) -> np.ndarray | None:
        """The last detected box moved on by its velocity to this frame."""
        if self._detected is None:
            return None
        b = self._detected.copy()
        b[:2] += self._velocity * self._unmatched
        return b

    def _detect(self, image: np.ndarray) -> None:
        people = self.detector(image)
        self.detections += 1
        self._since = 1
        self.last_people = people
        if not len(people):
            return
        xywh = people.xywh()
        if not self.tracking:
            sure = np.flatnonzero(people.scores >= self.take_score)
            if not len(sure):
                return
            best = int(sure[np.argmax(prominence(people)[sure])])
            self._take(xywh[best])
            self._look = None
            self._remember(image, people.boxes[best])
            logger.debug("finder: took person %s (score %.2f) of %d", np.round(xywh[best]).tolist(),
                         people.scores[best], len(people))
            return
        refs = [r for r in (self.box, self._detected, self._predicted()) if r is not None]
        score = continuation(people, image, refs, self._pose, self.box, self._look)
        best = int(np.argmax(score))
        if score[best] >= self.min_match:
            self._take(xywh[best], keep_motion=True)
            self._remember(image, people.boxes[best])

    def _remember(self, image: np.ndarray, box_xyxy: np.ndarray) -> None:
        """The tracked person's colours: the first look, then a slow average (a turn or a shadow changes little)."""
        look = appearance(image, box_xyxy[None])[0]
        self._look = look if self._look is None else 0.9 * self._look + 0.1 * look

    def _take(self, box: np.ndarray, keep_motion: bool = False) -> None:
        box = check_box(box, self.image_size)
        if keep_motion and self._detected is not None:  # the same person: their velocity, smoothed
            step = ((box[:2] + box[2:] / 2) - (self._detected[:2] + self._detected[2:] / 2)) / max(self._unmatched, 1)
            self._velocity = 0.5 * self._velocity + 0.5 * step
        if keep_motion:  # the tracker's statistics go on
            self.box = box
        else:
            super().found(box)
            self._velocity = np.zeros(2)
        self._detected, self._unmatched = box.copy(), 0
        self.tracking = True

    def next(self, pixels: np.ndarray, confidence: np.ndarray, present: bool | None = None) -> np.ndarray:
        """The next frame's box from this frame's pose (PoseTracker.next) while somebody is tracked."""
        if not self.tracking:
            return self.box.copy()
        self._pose = np.asarray(pixels, np.float64).copy()
        before, reinits = self.box.copy(), self.reinits
        # who is there is the detector's call (the person is lost after `patience` frames without a matching
        # detection), not the presence verdict of one crop: a person the IPEM sees badly for a few frames is kept
        box = super().next(pixels, confidence, present=True)
        if self.reinits > reinits:  # no usable box from this pose: the detected box, moved on, else the last one
            self.searching = False
            predicted = self._predicted()
            try:
                self.box = check_box(predicted, self.image_size) if predicted is not None else before
            except ValueError:  # moved on out of the image: the person has left
                self.box = before
                self._lose()
            box = self.box.copy()
        return box
