"""Frame sources on real files: videos written with cv2 (MP4 and AVI, a damaged one, an empty one), image files
and folders, arrays, lists and live generators; and every kind of bad input."""

from __future__ import annotations

import itertools
import logging

import cv2
import numpy as np
import pytest

from mobpose.runtime import sources
from mobpose.runtime.sources import DEFAULT_FPS, Frame, FrameSource, open_source

N, W, H, FPS = 12, 96, 64, 25.0


def make_frames(n: int = N) -> list[np.ndarray]:
    """RGB frames told apart by their red level (20 + 15 i), with a gradient and the index written in."""
    frames = []
    for i in range(n):
        f = np.zeros((H, W, 3), np.uint8)
        f[..., 0] = 20 + 15 * i
        f[..., 1] = np.linspace(0, 255, W, dtype=np.uint8)[None, :]
        f[..., 2] = 90
        cv2.putText(f, str(i), (4, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        frames.append(f)
    return frames


def write_video(path, frames, fourcc: str, fps: float = FPS):
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (frames[0].shape[1], frames[0].shape[0]))
    assert vw.isOpened()
    for f in frames:
        vw.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    vw.release()
    return path


def which(image: np.ndarray, originals: list[np.ndarray]) -> int:
    """The original frame whose mean colour is nearest `image`'s."""
    means = np.array([o.reshape(-1, 3).mean(0) for o in originals])
    return int(np.argmin(np.abs(means - image.reshape(-1, 3).mean(0)).sum(1)))


@pytest.mark.parametrize(("ext", "fourcc"), [(".mp4", "mp4v"), (".avi", "MJPG")])
def test_video_frames_order_and_timestamps(tmp_path, ext, fourcc):
    originals = make_frames()
    path = write_video(tmp_path / f"clip{ext}", originals, fourcc)
    with open_source(path) as src:
        assert isinstance(src, FrameSource) and src.name == str(path)
        assert src.fps == pytest.approx(FPS) and src.length == N
        frames = list(src)
        assert src.skipped == []
    assert all(isinstance(f, Frame) for f in frames)
    assert [f.index for f in frames] == list(range(N))
    for f in frames:
        assert f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 and f.image.flags.c_contiguous
        assert which(f.image, originals) == f.index  # decoded in order, RGB (the red level identifies it)
    np.testing.assert_allclose(np.diff([f.timestamp for f in frames]), 1 / FPS, atol=2e-3)
    assert frames[0].timestamp == pytest.approx(0.0, abs=1e-6)


def test_video_colour_order_and_fps_override(tmp_path):
    red = np.zeros((H, W, 3), np.uint8)
    red[..., 0] = 255
    path = write_video(tmp_path / "red.avi", [red] * 3, "MJPG")
    src = open_source(path, fps=10)
    frames = list(src)
    assert len(frames) == 3 and src.fps == 10
    means = frames[1].image.reshape(-1, 3).mean(0)
    assert means[0] > 240 and means[1] < 15 and means[2] < 15
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.1, 0.2])  # the given rate's clock
    # a file source can be iterated again; a closed one cannot
    assert len(list(src)) == 3
    src.close()
    with pytest.raises(ValueError, match="closed"):
        list(src)


def test_corrupt_middle_frame_is_skipped_and_iteration_continues(tmp_path, caplog):
    originals = make_frames()
    path = write_video(tmp_path / "clip.avi", originals, "MJPG")
    data = bytearray(path.read_bytes())
    soi = [i for i in range(len(data) - 2) if data[i : i + 3] == b"\xff\xd8\xff"]  # one JPEG per frame
    assert len(soi) == N
    k = 6
    span = min(400, (soi[k + 1] - soi[k]) // 2)
    data[soi[k] : soi[k] + span] = bytes(span)  # wipe frame k's JPEG header and the start of its scan
    bad = tmp_path / "damaged.avi"
    bad.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="mobpose.runtime.sources"), open_source(bad) as src:
        frames = list(src)
        skipped = src.skipped
    assert frames[-1].index == N - 1  # the damage did not end the run
    assert all(f.image.shape == (H, W, 3) for f in frames)
    for f in frames:
        if f.index != k:
            assert which(f.image, originals) == f.index  # no frame shifted onto another's index
    if skipped:  # what cv2's FFmpeg does here: the frame's read fails
        assert [i for i, _ in skipped] == [k] and [f.index for f in frames] == [i for i in range(N) if i != k]
        assert f"frame {k} skipped" in caplog.text
    else:  # a decoder that conceals the damage instead gives a full-size frame in its place
        assert [f.index for f in frames] == list(range(N))


def test_truncated_video_ends_early_with_a_warning(tmp_path, caplog):
    path = write_video(tmp_path / "clip.avi", make_frames(), "MJPG")
    data = path.read_bytes()
    soi = [i for i in range(len(data) - 2) if data[i : i + 3] == b"\xff\xd8\xff"]
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: soi[9] + 50])  # frame 9 half there, 10 and 11 gone
    with caplog.at_level(logging.WARNING, logger="mobpose.runtime.sources"):
        frames = list(open_source(cut))
    assert 8 <= len(frames) <= 10 and [f.index for f in frames] == list(range(len(frames)))
    if len(frames) < N:
        assert "ends after frame" in caplog.text


def test_image_folder_natural_order_and_conversions(tmp_path, caplog):
    rgb = make_frames(4)
    cv2.imwrite(str(tmp_path / "frame1.png"), cv2.cvtColor(rgb[0], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "frame2.png"), rgb[1][..., 0])  # gray
    cv2.imwrite(str(tmp_path / "frame10.png"), cv2.cvtColor(rgb[2], cv2.COLOR_RGB2BGRA))  # RGBA
    cv2.imwrite(str(tmp_path / "frame9.tiff"), cv2.cvtColor(rgb[3], cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    (tmp_path / "frame3.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "sub.png").mkdir()  # a folder, ignored
    with caplog.at_level(logging.WARNING, logger="mobpose.runtime.sources"):
        src = open_source(tmp_path)
        frames = list(src)
    assert src.length == 5 and src.fps == DEFAULT_FPS and src.name == str(tmp_path)
    assert [f.index for f in frames] == [0, 1, 3, 4]  # frame1, frame2, (frame3 unreadable), frame9, frame10
    assert [i for i, _ in src.skipped] == [2] and "frame3.png" in caplog.text
    np.testing.assert_array_equal(frames[0].image, rgb[0])
    assert (frames[1].image == rgb[1][..., :1]).all()  # gray copied to the three channels
    np.testing.assert_array_equal(frames[2].image, rgb[3])  # 16-bit scaled back
    np.testing.assert_array_equal(frames[3].image, rgb[2])  # alpha dropped
    assert [f.timestamp for f in frames] == pytest.approx([i / DEFAULT_FPS for i in (0, 1, 3, 4)])
    # one image file
    one = open_source(tmp_path / "frame10.png", fps=5)
    (f,) = list(one)
    assert one.length == 1 and one.fps == 5 and f.index == 0
    np.testing.assert_array_equal(f.image, rgb[2])


def test_arrays_and_lists(tmp_path):
    rgb = np.stack(make_frames(5))
    src = open_source(rgb)
    frames = list(src)
    assert src.name == "array" and src.length == 5 and src.fps == DEFAULT_FPS
    for i, f in enumerate(frames):
        np.testing.assert_array_equal(f.image, rgb[i])  # taken as RGB: no channel swap
        assert f.timestamp == pytest.approx(i / DEFAULT_FPS)
    (one,) = list(open_source(rgb[2]))
    np.testing.assert_array_equal(one.image, rgb[2])
    gray = rgb[..., 1]
    g = list(open_source(gray))
    assert len(g) == 5 and g[3].image.shape == (H, W, 3) and (g[3].image == gray[3][..., None]).all()
    assert len(list(open_source(gray[0]))) == 1
    deep = list(open_source(rgb.astype(np.uint16) * 257))
    np.testing.assert_array_equal(deep[4].image, rgb[4])
    rgba = np.dstack([rgb[0], np.full((H, W), 7, np.uint8)])
    np.testing.assert_array_equal(list(open_source(rgba))[0].image, rgb[0])
    listed = open_source([rgb[0], gray[1], rgb[2]], fps=2)
    frames = list(listed)
    assert listed.length == 3 and [f.timestamp for f in frames] == [0.0, 0.5, 1.0]
    np.testing.assert_array_equal(frames[2].image, rgb[2])
    assert len(list(open_source(tuple(rgb)))) == 5


def test_generator_is_pulled_lazily(tmp_path):
    frames = make_frames(3)
    pulled = []

    def live():
        for i, f in enumerate(frames):
            pulled.append(i)
            yield f
        raise RuntimeError("consumed past the third frame")

    src = open_source(live(), fps=10)
    assert src.name == "iterable" and src.length is None and src.fps == 10
    got = list(itertools.islice(src, 2))
    assert [f.index for f in got] == [0, 1] and pulled == [0, 1]
    third = next(iter(src))  # a second iteration continues the live source
    assert third.index == 2 and third.timestamp == pytest.approx(0.2) and pulled == [0, 1, 2]
    np.testing.assert_array_equal(third.image, frames[2])
    with pytest.raises(RuntimeError, match="past the third"):
        list(src)


def test_empty_and_zero_frame_sources_fail_clearly(tmp_path):
    # what cv2 makes of a writer released without frames: an MP4 without its moov atom (cannot be opened),
    # an AVI that opens, reports 0 frames and fails the first read
    for ext, fourcc in ((".mp4", "mp4v"), (".avi", "MJPG")):
        path = tmp_path / f"empty{ext}"
        cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (W, H)).release()
        assert path.is_file()
        with pytest.raises(ValueError, match=f"empty{ext}.*(no frames|cannot open)"):
            list(open_source(path))
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "readme.txt").write_text("no images")
    with pytest.raises(ValueError, match="dir: the directory has no image files"):
        open_source(tmp_path / "dir")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="no frames could be read.*not a readable image"):
        list(open_source(tmp_path / "bad"))
    with pytest.raises(ValueError, match="iterable: no frames"):
        list(open_source(iter([])))
    with pytest.raises(ValueError, match="empty"):
        open_source([])
    with pytest.raises(ValueError, match="no frames"):
        open_source(np.zeros((0, H, W, 3), np.uint8))


def test_bad_inputs_raise_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="missing.mp4 does not exist"):
        open_source(tmp_path / "missing.mp4")
    (tmp_path / "text.mp4").write_text("this is not a video")
    with pytest.raises(ValueError, match="text.mp4: cv2 cannot open it as a video .*truncated or corrupt"):
        open_source(tmp_path / "text.mp4")
    (tmp_path / "text.dat").write_text("this is not a video")
    with pytest.raises(ValueError, match="text.dat: not an image .*cannot open it as a video"):
        open_source(tmp_path / "text.dat")
    (tmp_path / "text.png").write_text("nor an image")
    with pytest.raises(ValueError, match="text.png is not a readable image"):
        open_source(tmp_path / "text.png")
    with pytest.raises(ValueError, match="zero-size"):
        open_source(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="zero-size"):
        open_source([np.zeros((4, 0), np.uint8)])
    with pytest.raises(TypeError, match="float32"):
        open_source(np.random.default_rng(0).random((2, H, W, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="array frame 1: dtype float64"):
        open_source([np.zeros((H, W, 3), np.uint8), np.zeros((H, W, 3))])
    with pytest.raises(TypeError, match="iterable frame 1: dtype int64"):
        list(open_source(iter([np.zeros((H, W), np.uint8), np.zeros((H, W), np.int64)])))
    with pytest.raises(TypeError, match="expected a numpy array"):
        list(open_source(iter(["frame.png"])))
    with pytest.raises(ValueError, match="shape"):
        open_source(np.zeros((2, H, W, 2), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        open_source(np.zeros((1, 2, H, W, 3), np.uint8))
    with pytest.raises(TypeError, match="int"):
        open_source(42)
    with pytest.raises(ValueError, match="fps"):
        open_source(np.zeros((H, W, 3), np.uint8), fps=0)
    # oversized frames, with the limit lowered (no 100-megapixel arrays allocated)
    monkeypatch.setattr(sources, "MAX_PIXELS", 1000)
    with pytest.raises(ValueError, match=r"96x64 frame has 6144 pixels, more than MAX_PIXELS = 1000"):
        open_source(np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match="MAX_PIXELS"):
        list(open_source(iter([np.zeros((H, W, 3), np.uint8)])))
    video = write_video(tmp_path / "clip.avi", make_frames(2), "MJPG")
    with pytest.raises(ValueError, match="clip.avi: 96x64 video frames .* MAX_PIXELS = 1000"):
        open_source(video)
    cv2.imwrite(str(tmp_path / "big.png"), np.zeros((H, W), np.uint8))
    with pytest.raises(ValueError, match="big.png.*MAX_PIXELS"):
        open_source(tmp_path / "big.png")


def test_a_truncated_video_is_named_as_one(tmp_path, capfd):
    """A real .mp4 cut short (its index lost): a clear error, and FFmpeg's own lines stay off the terminal."""
    from mobpose.demo import demo_video

    cut = tmp_path / "cut.mp4"
    cut.write_bytes(demo_video().read_bytes()[:100_000])
    with pytest.raises(ValueError, match=r"cut.mp4: cv2 cannot open it as a video \(100000 bytes\): truncated"):
        open_source(cut)
    assert capfd.readouterr().err == ""
