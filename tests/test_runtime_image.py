"""Images in, poses out for known boxes: reading images, the crop, decoding; the drawing helpers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mobpose.data.synthetic import EngineConfig, make_sample
from mobpose.models import create_model
from mobpose.runtime import crop_person, estimate_root_depth, load_image, predict_image
from mobpose.viz import draw_pose_3d, draw_skeleton, grid


def test_load_image_converts_every_layout(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "c.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(load_image(tmp_path / "c.png"), rgb)
    cv2.imwrite(str(tmp_path / "g.png"), rgb[..., 0])
    g = load_image(tmp_path / "g.png")
    assert g.shape == (20, 30, 3) and (g[..., 0] == g[..., 2]).all()
    cv2.imwrite(str(tmp_path / "a.png"), np.dstack([rgb[..., ::-1], np.full((20, 30), 255, np.uint8)]))
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), rgb)
    cv2.imwrite(str(tmp_path / "d.png"), rgb[..., ::-1].astype(np.uint16) * 257)
    np.testing.assert_array_equal(load_image(tmp_path / "d.png"), rgb)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        load_image(tmp_path / "bad.png")


def test_crop_person_is_the_engine_crop():
    """The inference crop of a rendered image equals the engine's crop of the same box."""
    cfg = EngineConfig(augment=False, blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.0)
    from mobpose.data.cmu import load_cmu

    pose = load_cmu(split="test")[0].positions[100]
    s = make_sample(np.random.default_rng(4), pose, cfg, full_image=True)
    crop, box = crop_person(s["image"], s["bbox"])
    np.testing.assert_allclose(box, s["crop_box"], rtol=1e-5)
    assert np.abs(crop.astype(int) - s["crop"].astype(int)).mean() < 1.0


def test_predict_image_shapes_and_decoding():
    model = create_model("convnextpose_test")
    img = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    out = predict_image(model, img, [(10, 10, 50, 100), (80, 5, 60, 110)])
    assert out["pixels"].shape == (2, 18, 2) and out["root_relative_mm"].shape == (2, 18, 3)
    assert out["crops"].shape == (2, 64, 64, 3)
    np.testing.assert_allclose(out["root_relative_mm"][:, 0], 0, atol=1e-9)
    np.testing.assert_allclose(out["root_depths"], [estimate_root_depth(b, out["intrinsics"])
                                                    for b in ((10, 10, 50, 100), (80, 5, 60, 110))])
    # joints decode inside the crop boxes (the soft-argmax stays in its volume)
    x0, y0, w, h = out["crop_boxes"][0]
    assert ((out["pixels"][0] >= [x0, y0]) & (out["pixels"][0] <= [x0 + w, y0 + h])).all()
    with pytest.raises(ValueError, match="uint8"):
        predict_image(model, img.astype(np.float32), [(0, 0, 10, 10)])
    with pytest.raises(ValueError, match="does not overlap"):
        predict_image(model, img, [(500, 500, 10, 10)])


def test_drawing_helpers():
    img = np.zeros((64, 64, 3), np.uint8)
    pts = np.random.default_rng(1).uniform(5, 60, (18, 2))
    drawn = draw_skeleton(img, pts)
    assert drawn.shape == img.shape and drawn.any() and not img.any()
    pts[3] = np.nan  # skipped, no crash
    draw_skeleton(img, pts, visibility=np.arange(18) % 2 == 0)
    with pytest.raises(ValueError, match="uint8"):
        draw_skeleton(img.astype(np.float32), pts)
    view = draw_pose_3d(np.random.default_rng(2).normal(0, 300, (18, 3)), 128, 90.0, title="x")
    assert view.shape == (128, 128, 3) and (view != 250).any()
    sheet = grid([img, np.zeros((30, 60, 3), np.uint8)], tile=32)
    assert sheet.shape == (32, 64, 3)


def test_real_photo_sheet_on_the_astronaut(tmp_path):
    from mobpose.train.real_photos import real_photo_sheet

    sheet, records = real_photo_sheet(create_model("convnextpose_test"), opencv_doc=str(tmp_path), height=120)
    assert [r["photo"] for r in records] == ["astronaut"]  # opencv-doc's photos are absent from tmp_path
    assert sheet.shape[0] == 124 and len(records[0]["pixels"]) == 18
    with pytest.raises(FileNotFoundError, match="none of the real photos"):
        import mobpose.train.real_photos as rp

        saved = rp.REAL_PHOTOS
        try:
            rp.REAL_PHOTOS = (("x", "opencv-doc", "nothing.png", [(0, 0, 1, 1)]),)
            rp.real_photo_sheet(create_model("convnextpose_test"), opencv_doc=str(tmp_path))
        finally:
            rp.REAL_PHOTOS = saved
