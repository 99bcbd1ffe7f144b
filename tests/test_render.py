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


# The mean CMU pose (test split, root-relative, a level camera: X right, Y down, Z forward), mm; 1334 mm from
# head top to ankle. Scaled to 1700 mm below: a tall person with long legs.
MEAN_CMU_17 = np.array([
    [0, 0, 0], [-92, 98, -29], [-86, 478, -156], [-83, 830, -7], [87, 106, -30], [85, 501, -128], [85, 857, 22],
    [3, -111, -17], [2, -222, -38], [7, -307, -30], [-3, -477, -57], [190, -276, -35], [231, -21, 11],
    [258, 135, -60], [-188, -261, -25], [-217, -34, -35], [-240, 81, -124]], np.float64)
HEAD_TOP, ANKLES, WRISTS, ELBOWS, SHOULDERS = 10, (3, 6), (13, 16), (12, 15), (11, 14)


def _standing(height_mm: float = 1700.0) -> np.ndarray:
    pose = MEAN_CMU_17 * height_mm / (MEAN_CMU_17[:, 1].max() - MEAN_CMU_17[:, 1].min())
    return pose - pose[0]


def _arms_raised(height_mm: float = 1700.0) -> np.ndarray:
    pose = _standing(height_mm)
    for s, e, w in zip(SHOULDERS, ELBOWS, WRISTS, strict=True):
        pose[e] = pose[s] + [0.3 * (pose[s, 0]), -0.19 * height_mm, 0]
        pose[w] = pose[s] + [0.5 * (pose[s, 0]), -0.38 * height_mm, 0]  # hands well above the head
    return pose


def _pitched(pose: np.ndarray, deg: float) -> np.ndarray:
    """The pose seen by a camera pitched by `deg` (down > 0): the body's vertical tilts into depth."""
    a = np.radians(deg)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    return pose @ rot.T


def _drawn_box(panel: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the skeleton's coloured pixels (the background and grid are grey)."""
    c = panel.astype(int)
    ys, xs = np.nonzero(c.max(2) - c.min(2) > 40)
    return xs.min(), ys.min(), xs.max(), ys.max()


POSES = {
    "standing 1700 mm": _standing(),
    "standing 1900 mm": _standing(1900.0),
    "arms raised 1700 mm": _arms_raised(),
    "arms raised 1900 mm, camera pitched down 25 deg": _pitched(_arms_raised(1900.0), 25.0),
    "standing 1900 mm, camera pitched up 25 deg": _pitched(_standing(1900.0), -25.0),
    "arms out sideways": np.where(np.isin(np.arange(17), WRISTS + ELBOWS)[:, None],
                                  _standing() * [3.0, 0, 1] + [0, -350, 0], _standing()),
}


@pytest.mark.parametrize("name", list(POSES))
@pytest.mark.parametrize("size", [480, 160])
def test_3d_panel_shows_the_whole_person_with_a_margin(name, size):
    pose = POSES[name]
    out = render_frame(grey(size, size), np.full((17, 2), np.nan), pose)
    panel = out[:size, size : 2 * size]
    x0, y0, x1, y1 = _drawn_box(panel)
    margin = 0.04 * size
    assert x0 >= margin and y0 >= margin and x1 <= size - 1 - margin and y1 <= size - 1 - margin, (
        f"{name}: drawn box {(x0, y0, x1, y1)} in a {size} px panel leaves less than {margin:.0f} px")
    # the extreme joints themselves are drawn (not cut): a coloured pixel at each
    c = panel.astype(int)
    coloured = c.max(2) - c.min(2) > 40
    alone = draw_pose_3d(pose, size=size, skeleton=H36M_17)
    np.testing.assert_array_equal(alone, panel)
    lowest, highest = int(np.argmax(pose[:, 1])), int(np.argmin(pose[:, 1]))
    for j in {HEAD_TOP, *ANKLES, *WRISTS, lowest, highest}:
        only = np.full_like(pose, np.nan)
        only[j] = pose[j]
        dot = draw_pose_3d(only, size=size, skeleton=H36M_17)  # the same fixed view: where joint j lands
        d = dot.astype(int)
        ys, xs = np.nonzero(d.max(2) - d.min(2) > 40)
        assert len(ys) and coloured[ys, xs].all()
        assert margin <= ys.min() and ys.max() <= size - 1 - margin, f"{name}: joint {j} at rows {ys.min()}-{ys.max()}"
        assert margin <= xs.min() and xs.max() <= size - 1 - margin, f"{name}: joint {j} at cols {xs.min()}-{xs.max()}"
    if "sideways" not in name:
        assert y1 - y0 >= 0.5 * size, f"{name}: the person is drawn only {y1 - y0} px tall in {size} px"


def test_3d_view_is_fixed_for_ordinary_poses_and_fits_extraordinary_ones():
    """Poses of people stay in the same view (a video does not jump); a pose beyond it is shrunk to fit."""
    size = 320
    ref = draw_pose_3d(_standing(), size=size, skeleton=H36M_17)
    # the same scale for two ordinary poses: the 1700 mm person's drawing is 1700/1500 the 1500 mm one's
    h17 = np.subtract(*_drawn_box(ref)[3:1:-1])
    h15 = np.subtract(*_drawn_box(draw_pose_3d(_standing(1500.0), size=size, skeleton=H36M_17))[3:1:-1])
    assert h17 / h15 == pytest.approx(1700 / 1500, rel=0.06)
    giant = _standing(5000.0)
    x0, y0, x1, y1 = _drawn_box(draw_pose_3d(giant, size=size, skeleton=H36M_17))
    assert min(x0, y0) >= 0.04 * size and max(x1, y1) <= 0.96 * size
