"""Rendering results: the frame with its skeleton beside the 3D view, and real video and PNG files read back."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mobpose.runtime.render import BOX_RGB, VideoWriter, render_frame, render_image, render_video
from mobpose.skeleton import H36M_17, H36M_18
from mobpose.viz import draw_pose_3d

H, W = 65, 97  # odd on purpose


def person(j: int = 18, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Joint pixels inside an H x W frame and a root-relative pose (mm)."""
    rng = np.random.default_rng(seed)
    pixels = rng.uniform([20, 10], [W - 20, H - 10], (j, 2))
    pose = rng.normal(0, 250, (j, 3))
    pose[0] = 0
    return pixels, pose


def grey(h: int = H, w: int = W) -> np.ndarray:
    return np.full((h, w, 3), 128, np.uint8)


@pytest.mark.parametrize("j", [17, 18])
def test_render_frame_layout_and_even_size(j):
    pixels, pose = person(j)
    out = render_frame(grey(), pixels, pose, title="frame 0")
    assert out.dtype == np.uint8 and out.shape == (H + 1, W + H, 3)  # padded to even sizes
    np.testing.assert_array_equal(out[H:], 0)
    # the right part is the fixed-axes 3D view at the frame's height
    view = draw_pose_3d(pose, size=H, skeleton=H36M_18 if j == 18 else H36M_17, title="frame 0")
    np.testing.assert_array_equal(out[:H, W : W + H], view)
    # the skeleton is drawn where the joints are
    drawn = (out[:H, :W] != 128).any(2)
    for x, y in np.round(pixels).astype(int):
        assert drawn[y, x]
    scaled = render_frame(grey(), pixels, pose, size=130)
    assert scaled.shape == (130, 194 + 130, 3)


def test_missing_and_unsure_joints_and_box():
    pixels, pose = person()
    img = grey()
    nothing = np.full_like(pixels, np.nan)
    out = render_frame(img, nothing, np.full_like(pose, np.nan))
    np.testing.assert_array_equal(out[:H, :W], img)  # NaN rows are not drawn
    one = nothing.copy()
    one[5] = pixels[5]  # a lone joint: its circle, no bones
    x, y = np.round(pixels[5]).astype(int)
    changed = (render_frame(img, one, pose)[:H, :W] != 128).any(2)
    assert changed[y, x] and changed.sum() < 40
    part_pose = pose.copy()
    part_pose[5] = np.nan
    assert (render_frame(img, pixels, part_pose)[:H, W:] != render_frame(img, pixels, pose)[:H, W:]).any()
    # confidence is relative to the frame's median: half the joints at 0 (or NaN) are drawn faint
    ink = {c: np.abs(render_frame(img, pixels, pose, confidence=np.r_[np.full(9, 0.02), np.full(9, c)])[:H, :W]
                     .astype(int) - 128).sum() for c in (0.02, 0.0, np.nan)}
    assert 0 < ink[0.0] < ink[0.02] and ink[np.nan] == ink[0.0]  # unsure joints drawn faint
    np.testing.assert_array_equal(render_frame(img, pixels, pose, confidence=np.ones(18)),
                                  render_frame(img, pixels, pose))
    far = pixels.copy()
    far[3] = (1e12, -1e12)  # far off the frame: not drawn, no overflow
    render_frame(img, far, pose)
    boxed = render_frame(img, nothing, pose, box=(10, 12, 40, 30))
    np.testing.assert_array_equal(boxed[12, 20:40], np.broadcast_to(BOX_RGB, (20, 3)))
    np.testing.assert_array_equal(boxed[30, 20:40], 128)  # thin: the inside untouched


def test_render_frame_rejects_bad_inputs():
    pixels, pose = person()
    with pytest.raises(ValueError, match="17 or 18 joints"):
        render_frame(grey(), pixels[:16], pose[:16])
    with pytest.raises(ValueError, match=r"pose_mm must have shape \(J, 3\)"):
        render_frame(grey(), pixels, pose[:, :2])
    with pytest.raises(ValueError, match="skeleton h36m17 17"):
        render_frame(grey(), pixels, pose, skeleton=H36M_17)
    with pytest.raises(TypeError, match="float64"):
        render_frame(grey().astype(float), pixels, pose)
    with pytest.raises(ValueError, match="confidence has 3 values"):
        render_frame(grey(), pixels, pose, confidence=[1, 1, 1])


def read_video(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames


@pytest.mark.parametrize("ext", [".mp4", ".avi", ".mkv"])
def test_video_writer_round_trip(tmp_path, ext):
    path = tmp_path / f"out{ext}"
    red = np.zeros((H, W, 3), np.uint8)
    red[..., 0] = 255
    with VideoWriter(path, 20) as vw:
        for _ in range(6):
            vw.write(red)
        with pytest.raises(ValueError, match=f"frame 6 is {W + 1}x{H}, the video's frames are {W}x{H}"):
            vw.write(np.zeros((H, W + 1, 3), np.uint8))
        assert vw.count == 6
    frames = read_video(path)
    assert len(frames) == 6 and frames[0].shape == (H + 1, W + 1, 3)  # odd sizes padded, not cropped
    b, g, r = frames[2][:H, :W].reshape(-1, 3).mean(0)
    assert r > 200 and g < 40 and b < 40  # written as RGB
    cap = cv2.VideoCapture(str(path))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(20)
    cap.release()


def test_video_writer_errors(tmp_path):
    with pytest.raises(ValueError, match="unsupported video extension .gif"):
        VideoWriter(tmp_path / "a.gif", 20)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        VideoWriter(tmp_path / "no" / "a.mp4", 20)
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "a.mp4", 0)
    vw = VideoWriter(tmp_path / "a.mp4", 20)
    vw.close()
    assert not (tmp_path / "a.mp4").exists()
    with pytest.raises(ValueError, match="closed"):
        vw.write(grey())


def test_render_video_and_image(tmp_path):
    items = []
    for i in range(5):
        pixels, pose = person(seed=i)
        items.append((grey(), pixels, pose, np.ones(18), (10, 10, 40, 40)) if i % 2 else (grey(), pixels, pose))
    path = tmp_path / "poses.mp4"
    assert render_video(iter(items), path, 10, size=64) == 5
    frames = read_video(path)
    assert len(frames) == 5 and frames[0].shape == (64, 96 + 64, 3)
    with pytest.raises(ValueError, match="no frames to render"):
        render_video([], tmp_path / "none.avi", 10)
    assert not (tmp_path / "none.avi").exists()

    pixels, pose = person()
    png = tmp_path / "pose.png"
    out = render_image(grey(), pixels, pose, png, title="still")
    back = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    assert back is not None
    np.testing.assert_array_equal(cv2.cvtColor(back, cv2.COLOR_BGR2RGB), out)  # lossless, RGB order kept
    with pytest.raises(ValueError, match="cannot write this image format"):
        render_image(grey(), pixels, pose, tmp_path / "pose.xyz")
    with pytest.raises(FileNotFoundError):
        render_image(grey(), pixels, pose, tmp_path / "no" / "pose.png")
