"""The person-presence score (mobpose.runtime.presence): the logistic regression's fit, scoring and JSON round
trip on synthetic data; with the shipped ipem-xs and its shipped presence model, empty images (blank, noise,
1x1) score "no person" and real LSPET val people mostly score "person"."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import mobpose
from mobpose.runtime.image import crop_person, load_image
from mobpose.runtime.presence import (
    FEATURE_NAMES,
    PresenceModel,
    presence_features,
    reliability,
    shipped_path,
)

HEATMAP = (32, 16, 16)


def _separable(rng, n=400, f=3):
    y = (rng.random(n) < 0.4).astype(int)
    X = rng.normal(size=(n, f)) + np.where(y[:, None] == 1, 3.0, -3.0) * np.array([1.0, 0.5, 0.0])[:f]
    return X, y


# ------------------------------------------------------------------------------------------- the model


def test_fit_separates_and_round_trips():
    rng = np.random.default_rng(0)
    X, y = _separable(rng)
    m = PresenceModel.fit(X, y, feature_names=["a", "b", "c"])
    p = m.probabilities(X)
    assert ((p >= m.threshold) == (y == 1)).mean() > 0.95
    assert m.weights[0] > m.weights[1] > abs(m.weights[2])  # the informative features carry the weight
    assert 0 < m.threshold < 1
    d = json.loads(json.dumps(m.to_dict()))
    m2 = PresenceModel.from_dict(d)
    np.testing.assert_array_equal(m2.probabilities(X), p)
    assert m2.feature_names == ("a", "b", "c") and m2.threshold == m.threshold and m2.version == m.version
    assert m.probability(X[0]) == pytest.approx(p[0])
    assert m.is_person(X[0]) == (p[0] >= m.threshold)


def test_fit_is_calibrated_on_logistic_data():
    """Data drawn from a logistic model: the fit recovers it and its held-out probabilities are calibrated."""
    rng = np.random.default_rng(1)
    w, b = np.array([2.0, -1.0]), 0.3
    X = rng.normal(size=(6000, 2))
    y = (rng.random(6000) < 1 / (1 + np.exp(-(X @ w + b)))).astype(int)
    m = PresenceModel.fit(X[:4000], y[:4000], balance=False, l2=0.0, threshold="half", feature_names=["u", "v"])
    np.testing.assert_allclose(m.weights / m.std, w, atol=0.2)
    assert m.threshold == 0.5
    assert reliability(m.probabilities(X[4000:]), y[4000:])["ece"] < 0.04


def test_balanced_threshold_and_weights():
    rng = np.random.default_rng(2)
    X, y = _separable(rng, n=1000, f=2)
    X[:, 0] += rng.normal(scale=2.0, size=len(y))  # overlap, so the threshold matters
    m = PresenceModel.fit(X, y, feature_names=["a", "b"])
    p = m.probabilities(X)
    pred = p >= m.threshold
    bal = 0.5 * (pred[y == 1].mean() + (~pred[y == 0]).mean())
    for t in np.linspace(0.05, 0.95, 19):  # no other cut does better on the fitted data
        q = p >= t
        assert 0.5 * (q[y == 1].mean() + (~q[y == 0]).mean()) <= bal + 1e-12
    w = np.where(y == 0, 5.0, 1.0)
    same = PresenceModel.fit(X, y, feature_names=["a", "b"], sample_weight=w)  # balanced: classes reweighted to 1/2
    np.testing.assert_allclose(same.probabilities(X), p, atol=1e-9)
    plain = PresenceModel.fit(X, y, feature_names=["a", "b"], balance=False)
    heavy = PresenceModel.fit(X, y, feature_names=["a", "b"], balance=False, sample_weight=w)
    assert heavy.probabilities(X).mean() < plain.probabilities(X).mean()


def test_non_finite_and_bad_input():
    rng = np.random.default_rng(3)
    X, y = _separable(rng)
    Xn = X.copy()
    Xn[0, 1] = np.nan
    m = PresenceModel.fit(Xn, y, feature_names=["a", "b", "c"])  # the NaN row is left out (logged)
    assert np.isfinite(m.weights).all()
    assert m.probability(Xn[0]) == 0.0  # a NaN pose is no usable person
    with pytest.raises(ValueError, match="expected 3 features"):
        m.probabilities(X[:, :2])
    with pytest.raises(ValueError, match="both classes"):
        PresenceModel.fit(X, np.zeros(len(X)), feature_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="not a presence model"):
        PresenceModel.from_dict({"format": "other"})
    with pytest.raises(ValueError, match="threshold"):
        PresenceModel(["a"], [0.0], [1.0], [1.0], 0.0, threshold=1.5)
    with pytest.raises(ValueError, match="features"):
        m.check_features()


def test_reliability_summary():
    r = reliability([0.05, 0.05, 0.95, 0.95], [0, 0, 1, 1])
    assert r["ece"] == pytest.approx(0.05)
    assert len(r["bins"]) == 10 and sum(b["count"] for b in r["bins"]) == 4
    assert r["brier"] == pytest.approx(0.0025)


@pytest.mark.parametrize("shape", [(128, 128, 3), (64, 64, 3), (8, 128, 3)])
def test_features_are_finite_on_degenerate_crops(shape):
    rng = np.random.default_rng(4)
    xyz = rng.uniform(0, 15, (18, 3))
    conf = rng.uniform(1e-3, 2e-3, 18)
    for crop in (np.zeros(shape, np.uint8), np.full(shape, 200, np.uint8), rng.integers(0, 256, shape, dtype=np.uint8)):
        f = presence_features(xyz, conf, crop, HEATMAP)
        assert f.shape == (len(FEATURE_NAMES),) and np.isfinite(f).all()
    f = presence_features(xyz, np.full(18, np.nan), np.zeros((128, 128, 3), np.uint8), HEATMAP)
    assert np.isnan(f[0])
    with pytest.raises(ValueError, match="S >= 8"):
        presence_features(xyz, conf, np.zeros((1, 1, 3), np.uint8), HEATMAP)
    with pytest.raises(ValueError, match="RGB"):
        presence_features(xyz, conf, np.zeros((64, 64), np.uint8), HEATMAP)


def test_black_fill_is_cut_off():
    """The black fill of crop_person outside the image does not count as picture: a textured patch scores
    the same pixel features whether the crop shows it whole or with black bands around it."""
    rng = np.random.default_rng(5)
    patch = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    padded = np.zeros((128, 128, 3), np.uint8)
    padded[20:84, 30:94] = patch
    a = presence_features(np.zeros((18, 3)), np.ones(18), patch, HEATMAP)
    b = presence_features(np.zeros((18, 3)), np.ones(18), padded, HEATMAP)
    i = FEATURE_NAMES.index("log_grad")
    # the padded crop loses a one-pixel rim; grey level statistics stay close
    assert abs(a[i] - b[i]) < 0.05


# ------------------------------------------------------------------ the shipped model on images

shipped = pytest.mark.skipif("ipem-xs" not in mobpose.list_pretrained() or not shipped_path("ipem-xs").is_file(),
                             reason="ipem-xs or its presence model is not shipped in this tree")


def _lspet_dir() -> Path:
    env = os.environ.get("MOBPOSE_LSPET_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lspet"


@pytest.fixture(scope="module")
def scorer():
    """(probability of crops (N, S, S, 3), presence model, input size) with the shipped ipem-xs (torch)."""
    from mobpose.train.presence_fit import engine_outputs

    model = mobpose.load_model("ipem-xs")
    pm = PresenceModel.load_shipped("ipem-xs")
    hm = tuple(model.heatmap_size)

    def score(crops):
        xyz, conf = engine_outputs(model, np.stack(crops), progress=False)
        return pm.probabilities(np.stack([presence_features(a, b, c, hm) for a, b, c in zip(xyz, conf, crops,
                                                                                             strict=True)]))

    return score, pm, model.config.input_size


@shipped
def test_shipped_presence_model_matches_the_code():
    pm = PresenceModel.load_shipped("ipem-xs")
    pm.check_features()
    assert pm.meta["ipem"] == "ipem-xs"
    assert pm.meta["val"]["fpr_by_kind"]["noise"] == 0.0 and pm.meta["val"]["fpr_by_kind"]["blank"] == 0.0


@shipped
def test_empty_images_score_no_person(scorer):
    score, pm, size = scorer
    rng = np.random.default_rng(123)
    images = {
        "blank": np.full((240, 320, 3), (90, 140, 200), np.uint8),
        "black": np.zeros((240, 320, 3), np.uint8),
        "uniform noise": rng.integers(0, 256, (240, 320, 3), dtype=np.uint8),
        "gaussian noise": np.clip(rng.normal(128, 40, (240, 320, 3)), 0, 255).astype(np.uint8),
        "1x1": np.array([[[200, 30, 70]]], np.uint8),
    }
    crops = [crop_person(img, (0, 0, img.shape[1], img.shape[0]), size)[0] for img in images.values()]
    p = score(crops)
    for name, pi in zip(images, p, strict=True):
        assert pi < pm.threshold, f"{name}: p = {pi:.3f} >= threshold {pm.threshold:.3f}"
        assert pi < 0.2, f"{name}: p = {pi:.3f}, no clear margin"


@shipped
def test_real_people_mostly_score_person(scorer):
    """Eight LSPET val photos at fixed rows (every 125th from 9000), the box of the labelled joints. The
    fit's val true-positive rate on LSPET people is 0.92 (docs/presence-ipem-xs.json): at least 6 of 8."""
    from mobpose.train.presence_fit import person_box

    folder = _lspet_dir()
    if not (folder / "joints.npz").is_file():
        pytest.skip(f"LSPET not found in {folder} (set MOBPOSE_LSPET_DIR)")
    score, pm, size = scorer
    data = np.load(folder / "joints.npz")
    rows = range(9000, 10000, 125)
    crops = [crop_person(load_image(folder / "images" / str(data["images"][r])), person_box(data["joints"][r]),
                         size)[0] for r in rows]
    p = score(crops)
    assert (p >= pm.threshold).sum() >= 6, f"probabilities {np.round(p, 3).tolist()}, threshold {pm.threshold:.3f}"


@shipped
def test_shipped_presence_model_is_verified_against_the_manifest(tmp_path):
    import shutil

    from mobpose import pretrained
    from mobpose.safetensors_np import CheckpointError

    folder = tmp_path / "weights"
    shutil.copytree(pretrained.WEIGHTS_DIR, folder)
    assert pretrained.verify_presence("ipem-xs", folder) == folder / "presence-ipem-xs.json"
    path = folder / "presence-ipem-xs.json"
    path.write_text(path.read_text().replace('"threshold": 0.', '"threshold": 0.0'))  # one byte more
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        pretrained.verify_presence("ipem-xs", folder)
    with pytest.raises(ValueError, match="no presence model"):
        pretrained.verify_presence("prm-causal", folder)
