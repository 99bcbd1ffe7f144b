"""No person, no pose; a bounded search; a still person searched for once (the shipped default IPEM and its
presence model, on the runtime's fastest backend; the window search, finder "none", except where a test says).

The real photos are LSPET val rows (../shared/data/lspet, or MOBPOSE_LSPET_DIR); the empty images are
made here (blank, black, noise, a gradient, 1x1)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import mobpose
from mobpose.runtime.image import load_image
from mobpose.runtime.pipeline import DEFAULT_IPEM, SEARCH_BUDGET, Pipeline
from mobpose.runtime.presence import shipped_path

pytestmark = pytest.mark.skipif(not {DEFAULT_IPEM, "prm-causal"} <= set(mobpose.list_pretrained())
                                or not shipped_path(DEFAULT_IPEM).is_file(),
                                reason="the default models or the presence model are not shipped in this tree")


def _lspet() -> tuple[Path, np.lib.npyio.NpzFile]:
    env = os.environ.get("MOBPOSE_LSPET_DIR")
    folder = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lspet"
    if not (folder / "joints.npz").is_file():
        pytest.skip(f"LSPET not found in {folder} (set MOBPOSE_LSPET_DIR)")
    return folder, np.load(folder / "joints.npz")


def _empty_images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    ramp = np.linspace(0, 255, 320, dtype=np.float32)
    return {
        "blank": np.full((240, 320, 3), (90, 140, 200), np.uint8),
        "black": np.zeros((240, 320, 3), np.uint8),
        "uniform noise": rng.integers(0, 256, (240, 320, 3), dtype=np.uint8),
        "gradient": np.repeat(np.stack([ramp, ramp[::-1], np.full(320, 128.0)], -1)[None], 240, 0).astype(np.uint8),
        "1x1": np.array([[[200, 30, 70]]], np.uint8),
    }


@pytest.mark.parametrize("name", list(_empty_images()))
def test_an_empty_image_has_no_person(name):
    res = mobpose.infer(_empty_images()[name])
    assert len(res) == 1
    assert not res.found[0], f"{name}: found a person (presence {res.presence[0]:.3f})"
    assert res.presence[0] < res.info["presence_threshold"]
    assert res.info["frames_found"] == 0


def test_real_photos_have_a_person():
    """Twelve LSPET val photos (every 80th row from 9040), no box: the whole search runs on each. The
    presence model's val true-positive rate on LSPET crops is 0.96 (ipem-mnv2); the search's best window
    scores above 0.98 on all twelve, but its two re-crops around the joints found lose the person on some
    (the joints of a crop without a clear person make a box on something else): at least 8 of 12
    (measured: 9 with ipem-mnv2; 11 with ipem-xs, whose tracker expansion is 1.2)."""
    folder, data = _lspet()
    found, probs = [], []
    for r in range(9040, 10000, 80):
        res = mobpose.infer(load_image(folder / "images" / str(data["images"][r])), finder="none")
        assert res.info["search_budget"] is None  # a single image: the whole search at once
        found.append(bool(res.found[0]))
        probs.append(round(float(res.presence[0]), 3))
    assert sum(found) >= 8, f"presence {probs}"


def test_a_still_person_is_searched_for_once():
    """A real photo repeated 120 times as a stream: each frame's search stays within the budget, the
    search ends once, and the person is never lost (no re-search)."""
    folder, data = _lspet()
    img = load_image(folder / "images" / str(data["images"][9040]))
    with Pipeline(backend="auto", finder="none") as pipe:
        poses = [pipe.update(img) for _ in range(120)]
    runs = np.array([p.searches for p in poses])
    assert runs.max() <= SEARCH_BUDGET, f"a frame spent {runs.max()} IPEM runs on the search"
    searching = np.flatnonzero(runs)
    assert len(searching) >= 1 and np.array_equal(searching, np.arange(len(searching))), \
        f"the search ran again later: frames {searching.tolist()}"
    assert pipe.tracker.reinits == 0
    assert all(p.found for p in poses[len(searching):]), "the person was lost after being found"


def test_a_blank_stream_keeps_searching_within_the_budget():
    img = _empty_images()["blank"]
    with Pipeline(backend="auto", finder="none") as pipe:
        poses = [pipe.update(img) for _ in range(40)]
    runs = np.array([p.searches for p in poses])
    assert runs.max() <= SEARCH_BUDGET and runs.sum() >= 40  # searched over and over, a share a frame
    assert not any(p.found for p in poses)


def test_a_bad_search_budget_is_named():
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="search_budget"):
            Pipeline(search_budget=bad)


def test_found_and_presence_survive_save_and_load(tmp_path):
    res = mobpose.infer(_empty_images()["blank"])
    for suffix in (".npz", ".json"):
        back = mobpose.PoseResult.load(res.save(tmp_path / f"r{suffix}"))
        assert back.found.dtype == bool and not back.found[0]
        np.testing.assert_allclose(back.presence, res.presence, rtol=1e-6)


def test_the_people_finder_puts_the_crop_on_the_person():
    """The same twelve LSPET val photos with the shipped people finder (RTMO, the default): the crop box lies on
    the labelled person (IoU >= 0.5 with LSPET's person box) in at least 7 (measured: 8; the window search above
    finds a person in 9 but its box lies on the labelled one far less often: docs/MODELS.md#rtmo-mnv2, 38 % against
    70 % on 100 val photos), and a person is found in at least 8 (measured: 9)."""
    if "rtmo-mnv2" not in mobpose.list_pretrained():
        pytest.skip("the people finder is not shipped in this tree")
    from mobpose.lspet import person_box
    from mobpose.oks import box_iou

    folder, data = _lspet()
    on, found = 0, 0
    for r in range(9040, 10000, 80):
        res = mobpose.infer(load_image(folder / "images" / str(data["images"][r])), prm=None)
        assert res.info["finder"] == "rtmo-mnv2" and res.info["finder_runs"] == 1
        b, p = res.boxes[0].astype(np.float64), person_box(data["joints"][r])
        on += box_iou(np.array([[*b[:2], *(b[:2] + b[2:])]]), np.array([[*p[:2], *(p[:2] + p[2:])]]))[0, 0] >= 0.5
        found += bool(res.found[0])
    assert on >= 7 and found >= 8, f"on the person in {on} of 12, found in {found}"
