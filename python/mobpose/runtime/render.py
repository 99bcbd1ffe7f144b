"""Looking at results: a frame with its 2D skeleton beside the 3D pose, written as images or videos.

:func:`render_frame` puts the RGB frame with the detected skeleton (:func:`mobpose.viz.draw_skeleton`) next to
the root-relative 3D pose in a fixed view (:func:`mobpose.viz.draw_pose_3d`, same axes and ground grid for
every frame, so a video of it does not jump). :class:`VideoWriter`, :func:`render_video` and
:func:`render_image` write them with OpenCV (the headless wheel, already a dependency: its bundled FFmpeg
encodes MP4/MKV/MOV/AVI without a second media library).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from ..skeleton import H36M_17, H36M_18, Skeleton
from ..viz import draw_pose_3d, draw_skeleton
from .image import to_rgb8

__all__ = [
    "CONFIDENCE_THRESHOLD",
    "FAINT_ALPHA",
    "FOURCC",
    "VideoWriter",
    "render_frame",
    "render_image",
    "render_people",
    "render_video",
]

logger = logging.getLogger(__name__)

CONFIDENCE_THRESHOLD = 0.3
"""Joints whose confidence is below this fraction of the frame's median joint confidence (or NaN) are drawn
faint: hollow circles and thin bones, blended in. Relative, because the IPEM's confidence (the peak bin
probability) scales with the heatmap size and the model."""

FAINT_ALPHA = 0.35
"""Opacity of the low-confidence joints and their bones."""

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
"""Video codec (fourcc) per file extension: MPEG-4 part 2 and Motion JPEG, which every OpenCV FFmpeg build
encodes (H.264 needs an encoder the wheels do not ship) and every player decodes."""

BOX_RGB = (255, 210, 0)


def _skeleton_for(num_joints: int, what: str) -> Skeleton:
    if num_joints == 18:
        return H36M_18
    if num_joints == 17:
        return H36M_17
    raise ValueError(f"{what} must have 17 or 18 joints (H36M_17 / H36M_18), got {num_joints}")


def _joints(arr, dims: int, what: str, skeleton: Skeleton | None) -> tuple[np.ndarray, Skeleton]:
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != dims:
        raise ValueError(f"{what} must have shape (J, {dims}), got {a.shape}")
    if skeleton is None:
        return a, _skeleton_for(len(a), what)
    if len(a) != skeleton.num_joints:
        raise ValueError(f"{what} has {len(a)} joints, the skeleton {skeleton.name} {skeleton.num_joints}")
    return a, skeleton


def render_frame(
    image: np.ndarray,
    pixels: np.ndarray,
    pose_mm: np.ndarray,
    *,
    confidence: np.ndarray | None = None,
    box=None,
    skeleton: Skeleton | None = None,
    size: int | None = None,
    title: str | None = None,
) -> np.ndarray:
    """The frame with its 2D skeleton and, to its right, the 3D pose in a fixed view.

    Parameters
    ----------
    image : np.ndarray
        The frame, (H, W, 3) uint8 RGB (gray, RGBA and uint16 are converted as by :func:`to_rgb8`).
    pixels : np.ndarray
        (J, 2) joint pixel coordinates in `image`, J = 17 or 18. NaN rows are not drawn, nor joints more than
        a frame size outside the frame.
    pose_mm : np.ndarray
        (J, 3) root-relative camera-frame pose in mm (X right, Y down, Z forward), J = 17 or 18; NaN rows
        are not drawn.
    confidence : np.ndarray | None
        (J,) per-joint confidence of `pixels`; joints below ``CONFIDENCE_THRESHOLD`` x the median (or NaN), and their
        bones, are drawn faint (hollow circles, thin bones, ``FAINT_ALPHA`` opaque).
    box : array-like | None
        Person box (x, y, w, h) in pixels, drawn as a thin rectangle (not drawn if None or not finite).
    skeleton : Skeleton | None
        The joints' skeleton; None picks H36M_18 or H36M_17 by each array's joint count.
    size : int | None
        Output height in pixels: the frame (with its joints and box) is scaled to it first. None keeps the
        frame's height.
    title : str | None
        Text written in the corner of the 3D view.

    Returns
    -------
    np.ndarray
        (H', W', 3) uint8 RGB: the frame (H x W after scaling) then the H x H 3D view, padded with black to an
        even width and height (video encoders need them).
    """
    img = to_rgb8(np.asarray(image), bgr=False, name="image")
    px, sk2 = _joints(pixels, 2, "pixels", skeleton)
    pose, sk3 = _joints(pose_mm, 3, "pose_mm", skeleton)
    h, w = img.shape[:2]
    scale = 1.0
    if size is not None:
        if int(size) < 2:
            raise ValueError(f"size must be at least 2 pixels, got {size}")
        scale = int(size) / h
        nw = max(1, round(w * scale))
        img = cv2.resize(img, (nw, int(size)), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        h, w = img.shape[:2]
    px = px * scale
    far = max(h, w)
    px[~((px >= -far) & (px <= [w + far, h + far])).all(1)] = np.nan  # also drops NaN rows (all False)
    out = draw_skeleton(img, px, skeleton=sk2)
    if confidence is not None:
        conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
        if len(conf) != len(px):
            raise ValueError(f"confidence has {len(conf)} values for {len(px)} joints")
        finite = conf[np.isfinite(conf)]
        with np.errstate(invalid="ignore"):
            sure = conf >= CONFIDENCE_THRESHOLD * (float(np.median(finite)) if finite.size else np.inf)
        if not sure.all():
            # everything hollow/thin and blended in at FAINT_ALPHA, then the confident part drawn over it in full
            faint = cv2.addWeighted(img, 1 - FAINT_ALPHA, draw_skeleton(img, px, sure, skeleton=sk2), FAINT_ALPHA, 0)
            strong = draw_skeleton(img, np.where(sure[:, None], px, np.nan), skeleton=sk2)
            mask = (strong != img).any(2)
            faint[mask] = strong[mask]
            out = faint
    if box is not None:
        b = np.asarray(box, dtype=np.float64).reshape(-1)
        if b.shape != (4,):
            raise ValueError(f"box must be (x, y, w, h), got {b.shape[0]} values")
        b = b * scale
        if np.isfinite(b).all() and np.abs(b).max() < 1e6:
            x0, y0 = int(round(b[0])), int(round(b[1]))
            x1, y1 = int(round(b[0] + b[2])), int(round(b[1] + b[3]))
            cv2.rectangle(out, (x0, y0), (x1, y1), BOX_RGB, 1, cv2.LINE_8)
    panel = draw_pose_3d(pose, size=h, skeleton=sk3, title=title)
    canvas = np.zeros((h + h % 2, w + h + (w + h) % 2, 3), np.uint8)
    canvas[:h, :w] = out
    canvas[:h, w : w + h] = panel
    return canvas


def render_people(image: np.ndarray, people: dict, *, size: int | None = None) -> np.ndarray:
    """Every person of a frame drawn: each one's 2D skeleton and box with its track id, and beside the frame the
    3D pose of the one with the largest box (its id in the 3D view's title).

    Args:
        image: the frame, (H, W, 3) uint8 RGB.
        people: {track id: pose} with ``pixels`` (J, 2), ``refined`` (J, 3) mm and ``box`` (x, y, w, h) (a
            mobpose.runtime.pipeline.FramePose); may be empty (an empty 3D view).
        size: output height (None keeps the frame's).

    Returns:
        (H', W', 3) uint8 RGB as :func:`render_frame`.
    """
    img = to_rgb8(np.asarray(image), bgr=False, name="image")
    if not people:
        return render_frame(img, np.full((17, 2), np.nan), np.full((17, 3), np.nan), size=size, title="nobody")
    ids = sorted(people)
    main = max(ids, key=lambda i: float(np.prod(np.asarray(people[i].box, np.float64)[2:])))
    h = img.shape[0]
    scale = 1.0 if size is None else int(size) / h
    out = render_frame(img, people[main].pixels, people[main].refined, box=people[main].box, size=size,
                       title=f"person {main}")
    w = max(1, round(img.shape[1] * scale))
    frame = out[: round(h * scale), :w].copy()
    for i in ids:
        p = people[i]
        if i != main:
            px = np.asarray(p.pixels, np.float64) * scale
            frame = draw_skeleton(frame, px, skeleton=_skeleton_for(len(px), "pixels"))
        b = np.asarray(p.box, np.float64) * scale
        if np.isfinite(b).all() and np.abs(b).max() < 1e6:
            x0, y0 = int(round(b[0])), int(round(b[1]))
            cv2.rectangle(frame, (x0, y0), (int(round(b[0] + b[2])), int(round(b[1] + b[3]))), BOX_RGB, 1)
            cv2.putText(frame, str(i), (x0 + 2, max(y0 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, BOX_RGB, 1,
                        cv2.LINE_AA)
    out[: frame.shape[0], :w] = frame
    return out


class VideoWriter:
    """Writes RGB frames to a video file with OpenCV; a context manager (closes on exit).

    The codec follows the extension (``FOURCC``). The file is opened at the first frame, whose size every
    later frame must have; odd widths or heights are padded by one black column or row (encoders need even
    sizes, and cv2 would otherwise crop them silently).

    Parameters
    ----------
    path : str | os.PathLike
        Output file; its folder must exist. Extension one of ``FOURCC``.
    fps : float
        Frame rate written in the file.

    Attributes
    ----------
    count : int
        Frames written so far.
    """

    def __init__(self, path: str | os.PathLike, fps: float) -> None:
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in FOURCC:
            raise ValueError(f"{self.path}: unsupported video extension {ext or '(none)'}, use one of "
                             f"{', '.join(FOURCC)}")
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"{self.path}: the folder {self.path.parent} does not exist")
        fps = float(fps)
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"{self.path}: fps must be a positive number, got {fps}")
        self.fps = fps
        self.fourcc = FOURCC[ext]
        self.count = 0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None  # (width, height) of the frames given
        self._closed = False

    def write(self, rgb: np.ndarray) -> None:
        """Appends one (H, W, 3) uint8 RGB frame (gray, RGBA, uint16 converted as by :func:`to_rgb8`)."""
        if self._closed:
            raise ValueError(f"{self.path}: the video writer is closed")
        img = to_rgb8(np.asarray(rgb), bgr=False, name=f"{self.path} frame {self.count}")
        h, w = img.shape[:2]
        if self._writer is None:
            ew, eh = w + w % 2, h + h % 2
            writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (ew, eh))
            if not writer.isOpened():
                writer.release()
                raise OSError(f"{self.path}: cv2 cannot open a {self.fourcc} video writer for {ew}x{eh} frames")
            self._writer, self._size = writer, (w, h)
        elif (w, h) != self._size:
            raise ValueError(f"{self.path}: frame {self.count} is {w}x{h}, the video's frames are "
                             f"{self._size[0]}x{self._size[1]}")
        if w % 2 or h % 2:
            img = cv2.copyMakeBorder(img, 0, h % 2, 0, w % 2, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        self._writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        self.count += 1

    def close(self) -> None:
        """Finishes the file. Idempotent; raises OSError if frames were written but no file appeared."""
        if self._closed:
            return
        self._closed = True
        if self._writer is None:
            logger.warning("%s: no frames written, no file made", self.path)
            return
        self._writer.release()
        self._writer = None
        if not self.path.is_file() or self.path.stat().st_size == 0:
            raise OSError(f"{self.path}: cv2 wrote {self.count} frames but the file is missing or empty")

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def render_video(
    frames: Iterable,
    out_path: str | os.PathLike,
    fps: float,
    *,
    skeleton: Skeleton | None = None,
    size: int | None = None,
) -> int:
    """Renders poses over frames (:func:`render_frame`) into a video file (:class:`VideoWriter`).

    Parameters
    ----------
    frames : Iterable
        Tuples (image, pixels, pose_mm, confidence, box); confidence and box may be None or left off.
    out_path : str | os.PathLike
        Video file (extension in ``FOURCC``).
    fps : float
        Frame rate of the video.
    skeleton, size
        As :func:`render_frame`.

    Returns
    -------
    int
        Frames written. Raises ValueError if `frames` is empty (no file is made).
    """
    with VideoWriter(out_path, fps) as writer:
        for i, item in enumerate(frames):
            item = tuple(item)
            if not 3 <= len(item) <= 5:
                raise ValueError(f"frame {i}: expected (image, pixels, pose_mm[, confidence[, box]]), "
                                 f"got {len(item)} items")
            image, pixels, pose_mm, confidence, box = item + (None,) * (5 - len(item))
            writer.write(render_frame(image, pixels, pose_mm, confidence=confidence, box=box, skeleton=skeleton,
                                      size=size))
        if writer.count == 0:
            raise ValueError(f"{out_path}: no frames to render")
        return writer.count


def render_image(
    image: np.ndarray,
    pixels: np.ndarray,
    pose_mm: np.ndarray,
    out_path: str | os.PathLike,
    *,
    confidence: np.ndarray | None = None,
    box=None,
    skeleton: Skeleton | None = None,
    size: int | None = None,
    title: str | None = None,
) -> np.ndarray:
    """Renders one frame (:func:`render_frame`, same arguments) and writes it as an image, PNG by default.

    `out_path`'s extension picks the format (``.png``, or any other cv2 writes, e.g. ``.jpg``); its folder
    must exist. Returns the rendered RGB image. Raises ValueError for an extension cv2 cannot write and
    OSError if writing fails.
    """
    out = render_frame(image, pixels, pose_mm, confidence=confidence, box=box, skeleton=skeleton, size=size,
                       title=title)
    path = Path(out_path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: the folder {path.parent} does not exist")
    try:
        ok = cv2.imwrite(str(path), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    except cv2.error as e:
        raise ValueError(f"{path}: cv2 cannot write this image format ({path.suffix or 'no extension'})") from e
    if not ok:
        raise OSError(f"{path}: cv2 could not write the image")
    return out
