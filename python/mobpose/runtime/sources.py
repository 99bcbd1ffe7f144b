"""Frame sources: video files, image files, image directories, arrays and live iterables as one stream of RGB frames.

:func:`open_source` turns whatever the user points at into a :class:`FrameSource`, an iterable of
:class:`Frame` (index, timestamp in seconds, (H, W, 3) uint8 RGB image), so inference code has one loop for
every input. Everything is converted the same way (:func:`mobpose.runtime.image.to_rgb8`): grayscale and
RGBA to RGB, 16-bit to 8-bit by ``>> 8``; floats are refused rather than guessed at.

Decoding is OpenCV's (the headless wheel, already a dependency for the crops): its one wheel decodes the
common containers and codecs (MP4, MOV, MKV, AVI, WebM; H.264, HEVC, MPEG-4, MJPEG, VP8/9, ...) through
its bundled FFmpeg, honours the rotation metadata of phone videos through ``CAP_PROP_ORIENTATION_AUTO``,
and reads the image formats, so no second media library is needed.

Damaged input is tolerated where it can be without guessing: a video frame that fails to decode while the
container says frames remain, or an unreadable file in an image directory, is logged (``logger.warning``),
recorded in :attr:`FrameSource.skipped` and passed over; after ``MAX_CONSECUTIVE_FAILURES`` failed reads in
a row a video is given up on (logged), so a broken file never hangs the loop. Everything else (missing
paths, files that are neither images nor videos, videos without frames, zero-size or oversized frames,
arrays of the wrong dtype or shape) raises an exception naming the problem and the input.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .image import check_image, load_image, to_rgb8

__all__ = [
    "DEFAULT_FPS",
    "IMAGE_EXTENSIONS",
    "MAX_CONSECUTIVE_FAILURES",
    "MAX_PIXELS",
    "Frame",
    "FrameSource",
    "open_source",
]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
"""File name extensions (lower case) read as still images; any other file is opened as a video."""

MAX_PIXELS = 100_000_000
"""Largest accepted frame, in pixels (H * W): 100 megapixels, far above any camera or video frame."""

DEFAULT_FPS = 30.0
"""Frame rate assumed for images, arrays and iterables (and for timestamps of videos of unknown rate)."""

MAX_CONSECUTIVE_FAILURES = 25
"""Failed video reads in a row after which the rest of a video is given up on."""

_MAX_SANE_FPS = 1000.0  # containers without a rate sometimes report their time base (e.g. 90000) instead


@dataclass(frozen=True, eq=False, slots=True)
class Frame:
    """One frame of a :class:`FrameSource`.

    Attributes
    ----------
    index : int
        Position in the source (0-based; skipped frames keep their numbers, so indices may jump).
    timestamp : float
        Seconds from the start: the video's own clock (``CAP_PROP_POS_MSEC``) when it is available and
        increasing, else ``index / fps`` (``DEFAULT_FPS`` if the fps is unknown).
    image : np.ndarray
        (H, W, 3) uint8 RGB, C-contiguous. For array inputs already in that form it is a view of the input.
    """

    index: int
    timestamp: float
    image: np.ndarray


class FrameSource:
    """An iterable of :class:`Frame` made by :func:`open_source`; also a context manager (closes on exit).

    Files, directories and arrays can be iterated again (each iteration starts over; a video is reopened).
    A live iterator is consumed lazily, one item per frame, and a second iteration continues where the first
    stopped. An iteration raises ValueError if the source ends without ever having produced a frame.

    Attributes
    ----------
    name : str
        The path, or ``"array"`` (numpy array, list or tuple of frames), or ``"iterable"``.
    fps : float | None
        Frames per second: the `fps` given to :func:`open_source`, else the video's own rate (None if the
        container has none), else ``DEFAULT_FPS`` for images, arrays and iterables.
    length : int | None
        Number of frames if known beforehand (a video's is the container's count, an estimate for some
        containers), None for iterables and videos that do not report it.
    skipped : list[tuple[int, str]]
        (index, reason) of the frames the latest iteration passed over.
    """

    def __init__(self, name: str, fps: float | None, length: int | None) -> None:
        self.name = name
        self.fps = fps
        self.length = length
        self.skipped: list[tuple[int, str]] = []
        self._closed = False
        self._produced = 0

    def _frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame]:
        if self._closed:
            raise ValueError(f"{self.name}: the frame source is closed")
        self.skipped = []
        for frame in self._frames():
            self._produced += 1
            yield frame
        if self._produced == 0:
            why = f" ({len(self.skipped)} unreadable: {self.skipped[0][1]})" if self.skipped else ""
            raise ValueError(f"{self.name}: no frames could be read{why}")

    def close(self) -> None:
        """Releases the video decoder, if any; iterating afterwards raises ValueError. Idempotent."""
        self._closed = True

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, fps={self.fps}, length={self.length})"


def _check_frame(img, name: str) -> None:
    """Raises TypeError/ValueError unless `img` is an acceptable frame for :func:`to_rgb8` of at most MAX_PIXELS."""
    check_image(img, name, "frame")
    h, w = img.shape[:2]
    if h * w > MAX_PIXELS:
        raise ValueError(f"{name}: a {w}x{h} frame has {h * w} pixels, more than MAX_PIXELS = {MAX_PIXELS}")


def _convert(img: np.ndarray, bgr: bool, name: str) -> np.ndarray:
    _check_frame(img, name)
    return to_rgb8(img, bgr, name=name)


def _natural_key(name: str) -> tuple[list[int | str], str]:
    """Sort key putting "frame2" before "frame10" (digit runs compare as numbers, the rest case-folded)."""
    parts = re.split(r"(\d+)", name)
    return [int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)], name


VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".3gp", ".mpg", ".mpeg", ".wmv"})


def _open_capture(path: Path) -> cv2.VideoCapture:
    from ..export.runtime import native_output

    with native_output():  # FFmpeg's own lines ("moov atom not found") go to the log, not the terminal
        cap = cv2.VideoCapture(str(path))
        opened = cap.isOpened()
    if not opened:
        cap.release()
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            size = path.stat().st_size if path.exists() else 0
            raise ValueError(f"{path}: cv2 cannot open it as a video ({size} bytes): truncated or corrupt "
                             f"(an .mp4 cut short loses its index), or a codec this OpenCV build lacks")
        raise ValueError(f"{path}: not an image (extension {path.suffix or 'none'} is not one of "
                         f"{', '.join(sorted(IMAGE_EXTENSIONS))}) and cv2 cannot open it as a video "
                         f"(not a video, an unsupported codec, or an empty or truncated file)")
    auto = getattr(cv2, "CAP_PROP_ORIENTATION_AUTO", None)
    if auto is not None:
        cap.set(auto, 1)  # rotate phone videos upright as their metadata says
    return cap


class _VideoSource(FrameSource):
    def __init__(self, path: Path, fps: float | None) -> None:
        cap = _open_capture(path)
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        own_fps = cap.get(cv2.CAP_PROP_FPS)
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if w * h > MAX_PIXELS:
            cap.release()
            raise ValueError(f"{path}: {w}x{h} video frames have {w * h} pixels, more than MAX_PIXELS = {MAX_PIXELS}")
        length = int(count) if math.isfinite(count) and 0 < count < 2**31 else None
        if length is None:
            # no usable count: probe the first frame now, so an empty video fails at open time, not later
            ok = cap.grab()
            cap.release()
            if not ok:
                raise ValueError(f"{path}: the video has no frames (cv2 reports {count:g} frames and the first "
                                 f"read fails)")
            cap = None  # reopened by the first iteration
        own = own_fps if math.isfinite(own_fps) and 0 < own_fps <= _MAX_SANE_FPS else None
        super().__init__(str(path), fps if fps is not None else own, length)
        self._path = path
        self._fixed_clock = fps is not None
        self._cap: cv2.VideoCapture | None = cap
        self._active: list[cv2.VideoCapture] = []

    def close(self) -> None:
        super().close()
        for cap in [self._cap, *self._active]:
            if cap is not None:
                cap.release()
        self._cap = None
        self._active.clear()

    def _timestamp(self, cap: cv2.VideoCapture, index: int, last: float | None) -> float:
        if not self._fixed_clock:
            ms = cap.get(cv2.CAP_PROP_POS_MSEC)
            if math.isfinite(ms) and ms >= 0 and (last is None or ms / 1000.0 > last):
                return ms / 1000.0
        return index / (self.fps or DEFAULT_FPS)

    def _frames(self) -> Iterator[Frame]:
        cap = self._cap if self._cap is not None else _open_capture(self._path)
        self._cap = None
        self._active.append(cap)
        try:
            index, last = 0, None
            failed: list[tuple[int, str]] = []  # unreadable frames since the last good one
            while not self._closed:
                reason = None
                if not cap.grab():
                    reason = "the frame could not be read or decoded"
                else:
                    ok, img = cap.retrieve()
                    if not ok or img is None or img.size == 0:
                        reason = "the decoder returned an empty frame"
                if reason is not None:
                    if self.length is not None and index >= self.length:
                        break  # the end of the stream
                    failed.append((index, reason))
                    index += 1
                    if len(failed) < MAX_CONSECUTIVE_FAILURES:
                        continue
                    if self.length is not None:  # frames remain: give up, and say so
                        logger.error("%s: giving up after %d consecutive unreadable frames (%d to %d of %d)",
                                     self.name, len(failed), failed[0][0], failed[-1][0], self.length)
                        self.skipped.extend(failed)
                        failed = []
                    break
                for i, why in failed:
                    logger.warning("%s: frame %d skipped: %s", self.name, i, why)
                self.skipped.extend(failed)
                failed = []
                ts = self._timestamp(cap, index, last)
                rgb = _convert(img, bgr=True, name=f"{self.name} frame {index}")
                yield Frame(index, ts, rgb)
                last = ts
                index += 1
            if failed and self.length is not None:
                # trailing failures: a damaged end, or a container that overstates its frame count
                logger.warning("%s: the video ends after frame %d although the container reports %d frames",
                               self.name, failed[0][0] - 1, self.length)
        finally:
            cap.release()
            if cap in self._active:
                self._active.remove(cap)


class _ImageFilesSource(FrameSource):
    def __init__(self, name: str, files: Sequence[Path], fps: float, first: np.ndarray | None = None) -> None:
        super().__init__(name, fps, len(files))
        self._files = list(files)
        self._first = first  # a single image, decoded (and checked) at open time

    def _frames(self) -> Iterator[Frame]:
        for i, f in enumerate(self._files):
            if self._closed:
                return
            if self._first is not None:
                img = self._first
            else:
                try:
                    img = load_image(f)
                except (OSError, ValueError, cv2.error) as e:
                    logger.warning("%s: image %s skipped: %s", self.name, f.name, e)
                    self.skipped.append((i, str(e)))
                    continue
                _check_frame(img, str(f))
            yield Frame(i, i / self.fps, img)


class _ArraySource(FrameSource):
    def __init__(self, frames: Sequence[np.ndarray], fps: float) -> None:
        super().__init__("array", fps, len(frames))
        self._items = frames

    def _frames(self) -> Iterator[Frame]:
        for i, img in enumerate(self._items):
            if self._closed:
                return
            yield Frame(i, i / self.fps, _convert(img, bgr=False, name=f"array frame {i}"))


class _IterableSource(FrameSource):
    def __init__(self, items: Iterable, fps: float) -> None:
        super().__init__("iterable", fps, None)
        self._items = items
        self._next_index = 0

    def _frames(self) -> Iterator[Frame]:
        it = iter(self._items)
        resumes = it is self._items  # an iterator continues; a re-iterable starts over
        index = self._next_index if resumes else 0
        while not self._closed:
            try:
                img = next(it)
            except StopIteration:
                return
            frame = Frame(index, index / self.fps, _convert(img, bgr=False, name=f"iterable frame {index}"))
            index += 1
            if resumes:
                self._next_index = index
            yield frame


def _array_frames(arr: np.ndarray) -> Sequence[np.ndarray]:
    """Splits an array into frames: (H, W) and (H, W, C) with C in 1, 3, 4 are one, (T, H, W[, C]) T."""
    if arr.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"array: dtype {arr.dtype} is not accepted, only uint8 or uint16 (convert floats "
                        f"explicitly, e.g. (x * 255).round().astype(np.uint8) for values in [0, 1])")
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4)):
        frames: Sequence[np.ndarray] = [arr]
    elif arr.ndim in (3, 4):
        frames = arr
    else:
        raise ValueError(f"array: expected (H, W), (H, W, C), (T, H, W) or (T, H, W, C) with C in 1, 3, 4, "
                         f"got shape {arr.shape}")
    if len(frames) == 0:
        raise ValueError(f"array: no frames (shape {arr.shape})")
    _check_frame(frames[0], f"array of shape {arr.shape}")
    return frames


def open_source(source, *, fps: float | None = None) -> FrameSource:
    """Opens a video, image, image directory, array or iterable of frames as a :class:`FrameSource`.

    Parameters
    ----------
    source : str | os.PathLike | np.ndarray | list | tuple | Iterable
        - a path to an image file (extension in ``IMAGE_EXTENSIONS``): one frame;
        - a path to a directory: its image files (by extension; others are ignored) in natural name order
          ("frame2" before "frame10"), one frame each; unreadable ones are skipped and recorded;
        - a path to any other file: a video, decoded by cv2 (any container/codec its FFmpeg reads), upright
          as its rotation metadata says;
        - a numpy array, uint8 or uint16: (H, W) or (H, W, C) is one frame, (T, H, W) or (T, H, W, C) T frames,
          C in 1, 3, 4 (gray, RGB, RGBA; a 3-D array whose last axis is 1, 3 or 4 long is one frame). Arrays
          are taken as RGB(A), not OpenCV's BGR, and frames already RGB uint8 are views of them;
        - a list or tuple of such single-frame arrays;
        - any other iterable or iterator of such arrays (e.g. a generator over a camera): pulled one frame
          at a time as the source is iterated, never ahead.
    fps : float | None
        Frame rate. For videos it overrides the container's rate, and timestamps become ``index / fps``
        instead of the container's clock; for the other sources the default is ``DEFAULT_FPS``.

    Returns
    -------
    FrameSource
        Iterate it for :class:`Frame` s; close it (or use ``with``) to release a video decoder.

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    ValueError
        For a file that is neither a readable image nor a video cv2 can open, an empty directory, a video
        without frames, zero-size frames, frames of more than ``MAX_PIXELS`` pixels, arrays of the wrong
        shape or without frames, or a non-positive `fps`. Checks that need the frames of directories,
        lists' later items and iterables happen as the source is iterated.
    TypeError
        For arrays (or frames of an iterable) whose dtype is not uint8/uint16, e.g. floats, and sources that
        are not paths, arrays or iterables.
    """
    if fps is not None:
        fps = float(fps)
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps}")
    rate = fps if fps is not None else DEFAULT_FPS
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        if path.is_dir():
            files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                           key=lambda p: _natural_key(p.name))
            if not files:
                raise ValueError(f"{path}: the directory has no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            return _ImageFilesSource(str(path), files, rate)
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            img = load_image(path)
            _check_frame(img, str(path))
            return _ImageFilesSource(str(path), [path], rate, first=img)
        return _VideoSource(path, fps)
    if isinstance(source, np.ndarray):
        return _ArraySource(_array_frames(source), rate)
    if isinstance(source, (list, tuple)):
        if not source:
            raise ValueError(f"array: the {type(source).__name__} of frames is empty")
        for i, img in enumerate(source):
            _check_frame(img, f"array frame {i}")
        return _ArraySource(source, rate)
    if isinstance(source, (bytes, bytearray, memoryview, dict)):
        raise TypeError(f"cannot read frames from a {type(source).__name__}")
    try:
        iter(source)
    except TypeError:
        raise TypeError(f"cannot read frames from a {type(source).__name__}: expected a path, a numpy array or "
                        f"an iterable of frames") from None
    return _IterableSource(source, rate)
