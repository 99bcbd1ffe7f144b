"""Is there a person in the crop? A calibrated score from what every IPEM backend returns.

The IPEM always returns a pose, even for a blank frame: its per-joint confidence alone does not tell an
empty crop from a person. This module scores presence from the engine's two outputs (the joints ``xyz``
(J, 3) in heatmap units and the per-joint peak probability ``conf`` (J,)) and cheap statistics of the crop
pixels, the same on the torch, tflite and native backends (they agree within ~1e-3):

    p = PresenceModel.load_shipped("ipem-xs").probability(presence_features(xyz, conf, crop, heatmap_size))

``p`` is a logistic regression's probability, calibrated on held-out real photos (LSPET val) and empty
images; ``p >= model.threshold`` means "a person". The features are listed in :data:`FEATURE_NAMES`
(documented in :func:`presence_features`); the fit is :func:`mobpose.train.presence_fit.fit_presence`.
Pure numpy (no torch).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

__all__ = ["FEATURE_NAMES", "IPEM_FEATURES", "PresenceModel", "presence_features", "reliability", "shipped_path"]

logger = logging.getLogger(__name__)

FORMAT = "mobpose-presence-v1"

FEATURE_NAMES: tuple[str, ...] = (
    "med_log_conf", "std_log_conf", "log_depth_std", "extent_y",
    "log_grad", "log_noise", "hf_ratio", "autocorr", "hp_channel_corr", "centre_grad_ratio", "log_centre_hist_dist",
)
"""The names of :func:`presence_features`' outputs, in order (documented there)."""

IPEM_FEATURES: tuple[str, ...] = FEATURE_NAMES[:4]
"""The features computed from the IPEM's outputs (xyz, conf); the others are crop pixel statistics."""

_GREY = np.array([0.299, 0.587, 0.114], np.float32)
_EPS = 0.1  # grey levels: keeps the logs of flat images finite
_MIN_PART = 0.15  # the centre and the rest must each be this fraction of the crop's part inside the image


def _inside(crop: np.ndarray) -> tuple[slice, slice]:
    """The rows and columns of the crop that lie in the image: crop_person fills what falls outside the
    image with exact black, whole rows and columns at the edges (the crop is an axis-aligned warp); the
    first lit row or column on a cut side, blended with the black by the bilinear warp, is cut too.
    The whole crop when that part is smaller than 8 x 8 pixels."""
    c = crop.reshape(crop.shape[0], crop.shape[1], -1)
    lit = c[..., 0] != 0
    for i in range(1, c.shape[2]):  # a bitwise test per channel: ~20x faster than any(axis=2)
        lit |= c[..., i] != 0
    rows, cols = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    h, w = crop.shape[:2]
    full = (slice(0, h), slice(0, w))
    if len(rows) == 0:
        return full
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    r0, c0 = r0 + (r0 > 0), c0 + (c0 > 0)
    r1, c1 = r1 - (r1 < h), c1 - (c1 < w)
    if r1 - r0 < 8 or c1 - c0 < 8:
        return full
    return slice(r0, r1), slice(c0, c1)


_BINOMIAL = np.array([0.25, 0.5, 0.25], np.float32)


def _blur(a: np.ndarray) -> np.ndarray:
    """The separable [1, 2, 1] / 4 binomial blur of the first two axes (edges replicated), float32."""
    import cv2

    a = np.ascontiguousarray(a, np.float32)
    out = cv2.sepFilter2D(a, -1, _BINOMIAL, _BINOMIAL, borderType=cv2.BORDER_REPLICATE)
    return out.reshape(a.shape)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Uncentred correlation of two zero-mean signals (0 when both are flat)."""
    return float(np.mean(a * b) / np.sqrt(np.mean(a * a) * np.mean(b * b) + 1e-3))


def presence_features(xyz, conf, crop, heatmap_size) -> np.ndarray:
    """The presence features (F,) float64 of one IPEM output, in the order of :data:`FEATURE_NAMES`.

    Args:
        xyz: (J, 3) joints in heatmap units (x, y, z in [0, size - 1]), as every IPEM engine returns them.
        conf: (J,) the largest normalised bin probability per joint.
        crop: (S, S, 3) uint8 RGB, the engine's input (:func:`mobpose.runtime.image.crop_person`), S >= 8.
        heatmap_size: (D, H, W) of the IPEM (``model.heatmap_size``).

    From the IPEM's outputs:

    - ``med_log_conf``: the median over joints of log(conf);
    - ``std_log_conf``: the spread (std) over joints of log(conf);
    - ``log_depth_std``: log(std of z / (D - 1) + 1e-6), how much depth the skeleton has (flat on empty crops);
    - ``extent_y``: (max y - min y) / (H - 1), the skeleton's height in the crop.

    From the crop's pixels, on its part inside the image (the black fill of crop_person outside the image
    is cut off: whole black rows and columns at the crop's edges), grey = 0.299 R + 0.587 G + 0.114 B:

    - ``log_grad``: log(mean |neighbour difference| + 0.1), the texture (blank and smooth images: low);
    - ``log_noise``: log(mean |grey - blur(grey)| + 0.1) with the 3x3 binomial blur, fine detail;
    - ``hf_ratio``: log((mean |4-neighbour Laplacian| + 0.1) / (mean |neighbour difference| + 0.1)): how
      much of the texture is at the finest scale (high for noise, low for upsampled tiny images);
    - ``autocorr``: the correlation of neighbouring grey pixels (about 0 for pixel noise, near 1 for photos);
    - ``hp_channel_corr``: the mean correlation between the R, G and B high-pass residuals (edges are in
      all channels of a photo; colour noise is not);
    - ``centre_grad_ratio``: log of the mean gradient magnitude in the crop's centre (rows 10-90 %, columns
      25-75 %, where the person stands) over that of the rest, + 0.5 each (0 when either part is under
      15 % of the pixels inside the image: a narrow strip of image in a whole-frame crop);
    - ``log_centre_hist_dist``: log(d + 0.02), d the total-variation distance between the 64-bin colour
      histograms (4 levels a channel) of the centre and of the rest (d = 0 when either part is under 15 %):
      a person differs from what surrounds them; noise, blank and smooth images are the same everywhere
      (in the log, "the same everywhere" stands far from any photo).

    All are cheap (about a millisecond for a 128 px crop) and identical on every backend except for the
    four IPEM features, which move by the backends' float differences (~1e-5 in conf, ~1e-4 bins in xyz).
    """
    xyz = np.asarray(xyz, np.float64).reshape(-1, 3)
    conf = np.asarray(conf, np.float64).reshape(-1)
    crop = np.asarray(crop)
    if crop.ndim != 3 or crop.shape[2] != 3 or min(crop.shape[:2]) < 8:
        raise ValueError(f"crop must be (S, S, 3) RGB with S >= 8 (the engine's input), got shape {crop.shape}")
    d, h, _ = (int(v) for v in heatmap_size)
    with np.errstate(divide="ignore", invalid="ignore"):
        lc = np.log(np.maximum(conf, 1e-30))
    lc = np.where(np.isnan(conf), np.nan, lc)
    z, y = xyz[:, 2] / max(d - 1, 1), xyz[:, 1] / max(h - 1, 1)

    rows, cols = _inside(crop)
    sub = crop[rows, cols].astype(np.float32)
    grey = sub @ _GREY
    gx, gy = np.diff(grey, axis=1), np.diff(grey, axis=0)
    grad = 0.5 * (np.abs(gx).mean() + np.abs(gy).mean())
    p = np.pad(grey, 1, mode="edge")
    lap = np.abs(p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * grey).mean()
    g0 = grey - grey.mean()
    var = float(np.mean(g0 * g0)) + 1e-3
    autocorr = 0.5 * (np.mean(g0[:, :-1] * g0[:, 1:]) + np.mean(g0[:-1] * g0[1:])) / var
    hp = sub - _blur(sub)
    r, g, b = hp[..., 0], hp[..., 1], hp[..., 2]
    hp_corr = (_corr(r, g) + _corr(g, b) + _corr(r, b)) / 3

    s_h, s_w = crop.shape[:2]
    yy = np.arange(s_h)[rows][:, None]
    xx = np.arange(s_w)[cols][None, :]
    centre = ((yy >= s_h // 10) & (yy < s_h - s_h // 10)) & ((xx >= s_w // 4) & (xx < s_w - s_w // 4))
    n_in = centre.size
    if not (_MIN_PART * n_in <= centre.sum() <= (1 - _MIN_PART) * n_in):
        grad_ratio = hist_dist = 0.0
    else:
        mag = np.zeros_like(grey)
        mag[:, :-1] += np.abs(gx)
        mag[:-1, :] += np.abs(gy)
        grad_ratio = float(np.log((mag[centre].mean() + 0.5) / (mag[~centre].mean() + 0.5)))
        q = crop[rows, cols] // 64
        code = (q[..., 0].astype(np.int32) * 16 + q[..., 1] * 4 + q[..., 2]).ravel()
        c_mask = centre.ravel()
        hc = np.bincount(code[c_mask], minlength=64) / c_mask.sum()
        hs = np.bincount(code[~c_mask], minlength=64) / (~c_mask).sum()
        hist_dist = 0.5 * float(np.abs(hc - hs).sum())

    return np.array([
        np.median(lc), np.std(lc), np.log(np.std(z) + 1e-6), np.max(y) - np.min(y),
        np.log(grad + _EPS), np.log(np.abs(grey - _blur(grey)).mean() + _EPS), np.log((lap + _EPS) / (grad + _EPS)),
        autocorr, hp_corr, grad_ratio, np.log(hist_dist + 0.02),
    ], np.float64)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def reliability(p, y, bins: int = 10) -> dict:
    """Reliability summary of probabilities `p` against labels `y` (0/1) over `bins` equal-width bins.

    Returns ``ece`` (expected calibration error: the count-weighted mean |mean p - fraction positive|),
    ``mce`` (the largest bin gap), ``brier`` (mean (p - y)^2) and per bin its ``count``, ``mean_p`` and
    ``frac_pos`` (None for an empty bin)."""
    p, y = np.asarray(p, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    idx = np.clip((p * bins).astype(int), 0, bins - 1)
    table, ece, mce = [], 0.0, 0.0
    for b in range(bins):
        m = idx == b
        n = int(m.sum())
        if n == 0:
            table.append({"bin": [b / bins, (b + 1) / bins], "count": 0, "mean_p": None, "frac_pos": None})
            continue
        mp, fp = float(p[m].mean()), float(y[m].mean())
        ece += n / len(p) * abs(mp - fp)
        mce = max(mce, abs(mp - fp))
        table.append({"bin": [b / bins, (b + 1) / bins], "count": n, "mean_p": round(mp, 4), "frac_pos": round(fp, 4)})
    return {"ece": float(ece), "mce": float(mce), "brier": float(np.mean((p - y) ** 2)), "bins": table}


class PresenceModel:
    """Logistic regression on standardised features: p = sigmoid(w . (x - mean) / std + b).

    Attributes:
        feature_names: the features it expects, in order (checked against :data:`FEATURE_NAMES` by
            :func:`probability` callers through :meth:`check_features`).
        mean, std: (F,) standardisation.
        weights: (F,), bias: float.
        threshold: p >= threshold means "a person".
        version: an integer bumped when the features' definitions change.
        meta: free JSON-able information (what it was fitted on, its figures).
    """

    VERSION = 1

    def __init__(self, feature_names, mean, std, weights, bias: float, threshold: float = 0.5,
                 version: int = VERSION, meta: dict | None = None) -> None:
        self.feature_names = tuple(str(n) for n in feature_names)
        self.mean = np.asarray(mean, np.float64).reshape(-1)
        self.std = np.asarray(std, np.float64).reshape(-1)
        self.weights = np.asarray(weights, np.float64).reshape(-1)
        f = len(self.feature_names)
        if not (len(self.mean) == len(self.std) == len(self.weights) == f):
            raise ValueError(f"presence model: {f} feature names but mean {self.mean.shape}, std {self.std.shape}, "
                             f"weights {self.weights.shape}")
        if not (np.all(np.isfinite(self.std)) and np.all(self.std > 0)):
            raise ValueError("presence model: std must be positive and finite")
        self.bias = float(bias)
        self.threshold = float(threshold)
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"presence model: threshold must be in (0, 1), got {threshold}")
        self.version = int(version)
        self.meta = dict(meta or {})

    # ------------------------------------------------------------------------------------------- scoring

    def logits(self, X) -> np.ndarray:
        """(N,) logits of features (N, F) (or (F,) -> (1,)). A row with a non-finite feature (a NaN pose from
        a NaN heatmap) gets -inf: probability 0, no usable person."""
        X = np.atleast_2d(np.asarray(X, np.float64))
        if X.shape[1] != len(self.feature_names):
            raise ValueError(f"expected {len(self.feature_names)} features {self.feature_names}, got {X.shape[1]}")
        ok = np.isfinite(X).all(axis=1)
        Z = (np.where(ok[:, None], X, self.mean) - self.mean) / self.std
        return np.where(ok, Z @ self.weights + self.bias, -np.inf)

    def probabilities(self, X) -> np.ndarray:
        """(N,) probabilities of a person for features (N, F)."""
        return _sigmoid(self.logits(X))

    def probability(self, features) -> float:
        """The probability of a person for one feature vector (F,)."""
        return float(self.probabilities(np.asarray(features, np.float64).reshape(1, -1))[0])

    def is_person(self, features) -> bool:
        """probability(features) >= threshold."""
        return self.probability(features) >= self.threshold

    def check_features(self, names=None) -> None:
        """Raises ValueError when the model's features are not `names` (default :data:`FEATURE_NAMES`)."""
        names = tuple(FEATURE_NAMES if names is None else names)
        if self.feature_names != names:
            raise ValueError(f"presence model expects features {self.feature_names}, this code computes {names} "
                             f"(refit with mobpose.train.presence_fit)")

    # ------------------------------------------------------------------------------------------- fitting

    @classmethod
    def fit(cls, X, y, *, l2: float = 1e-3, balance: bool = True, sample_weight=None,
            threshold: str | float = "balanced", feature_names=None, max_iter: int = 100, tol: float = 1e-10,
            meta: dict | None = None) -> PresenceModel:
        """Standardises X (N, F) and fits an L2-regularised logistic regression to y (N,) 0/1 by Newton's method.

        The loss is the (weighted) mean log loss + l2 / 2 * |w|^2 on the standardised features (the bias is not
        penalised). `balance`: weight the classes equally, so that the probability is calibrated for an even
        prior of person and empty crops (whatever the mix of X). `sample_weight` (N,): relative weights of
        the rows (within each class when balancing). `threshold`: a number, 'half' (0.5) or
        'balanced' (the probability maximising balanced accuracy (TPR + TNR) / 2 on X, y, midway between
        neighbouring scores). Rows with a non-finite feature are left out (logged).
        """
        X = np.atleast_2d(np.asarray(X, np.float64))
        y = np.asarray(y, np.float64).reshape(-1)
        n, f = X.shape
        if len(y) != n:
            raise ValueError(f"X has {n} rows but y has {len(y)}")
        w0 = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64).reshape(-1)
        if len(w0) != n or not (np.isfinite(w0).all() and (w0 >= 0).all() and w0.sum() > 0):
            raise ValueError(f"sample_weight must be {n} finite non-negative numbers, not all 0")
        names = tuple(FEATURE_NAMES if feature_names is None else feature_names)
        if feature_names is None and len(names) != f:
            names = tuple(f"f{i}" for i in range(f))
        if len(names) != f:
            raise ValueError(f"{len(names)} feature names for {f} features")
        ok = np.isfinite(X).all(axis=1)
        if not ok.all():
            logger.warning("presence fit: %d of %d rows have non-finite features: left out", int((~ok).sum()), n)
            X, y, w0 = X[ok], y[ok], w0[ok]
            n = len(y)
        if n == 0 or not np.isin(y, (0.0, 1.0)).all() or y.min() == y.max():
            raise ValueError("y must be 0/1 with both classes present")
        mean, std = X.mean(axis=0), X.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        A = np.concatenate([(X - mean) / std, np.ones((n, 1))], axis=1)
        if balance:
            sw = np.where(y == 1, 0.5 * w0 / max(w0[y == 1].sum(), 1e-300), 0.5 * w0 / max(w0[y == 0].sum(), 1e-300))
        else:
            sw = w0
        sw = sw / sw.sum()
        reg = np.full(f + 1, float(l2))
        reg[-1] = 0.0

        def objective(th: np.ndarray) -> float:
            z = A @ th
            return float(np.sum(sw * (np.logaddexp(0.0, z) - y * z)) + 0.5 * np.sum(reg * th**2))

        theta = np.zeros(f + 1)
        loss = objective(theta)
        steps = 0
        for _ in range(max_iter):
            steps += 1
            p = _sigmoid(A @ theta)
            grad = A.T @ (sw * (p - y)) + reg * theta
            hess = (A * (sw * p * (1 - p))[:, None]).T @ A + np.diag(reg + 1e-9)
            step = np.linalg.solve(hess, grad)
            t, new = 1.0, loss
            while t > 1e-6:  # backtracking: a full Newton step can overshoot on nearly separable data
                cand = theta - t * step
                new = objective(cand)
                if new <= loss:
                    break
                t *= 0.5
            else:
                break
            theta, done = cand, loss - new < tol
            loss = new
            if done:
                break
        logger.debug("presence fit: %d Newton steps, loss %.5f", steps, loss)
        model = cls(names, mean, std, theta[:-1], theta[-1], 0.5, meta=meta)
        if isinstance(threshold, str):
            if threshold == "half":
                thr = 0.5
            elif threshold == "balanced":
                thr = _balanced_threshold(model.probabilities(X), y)
            else:
                raise ValueError(f"threshold must be a number, 'half' or 'balanced', got {threshold!r}")
        else:
            thr = float(threshold)
        model.threshold = float(np.clip(thr, 1e-6, 1 - 1e-6))
        return model

    # --------------------------------------------------------------------------------------- persistence

    def to_dict(self) -> dict:
        """A JSON-able dict (:meth:`from_dict` reads it back)."""
        return {"format": FORMAT, "version": self.version, "feature_names": list(self.feature_names),
                "mean": self.mean.tolist(), "std": self.std.tolist(), "weights": self.weights.tolist(),
                "bias": self.bias, "threshold": self.threshold, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict) -> PresenceModel:
        """The model of a :meth:`to_dict` dict. Raises ValueError on another format."""
        if d.get("format") != FORMAT:
            raise ValueError(f"not a presence model (format {d.get('format')!r}, expected {FORMAT!r})")
        return cls(d["feature_names"], d["mean"], d["std"], d["weights"], d["bias"], d["threshold"],
                   d.get("version", cls.VERSION), d.get("meta"))

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> PresenceModel:
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def load_shipped(cls, ipem: str = "ipem-xs") -> PresenceModel:
        """The shipped presence model of a shipped IPEM (python/mobpose/weights/presence-<ipem>.json), its
        size and sha256 verified against the weights manifest first."""
        from ..pretrained import verify_presence

        model = cls.load(verify_presence(ipem))
        model.check_features()
        return model

    def __repr__(self) -> str:
        return (f"PresenceModel({len(self.feature_names)} features, threshold {self.threshold:.3f}, "
                f"version {self.version})")


def shipped_path(ipem: str = "ipem-xs") -> Path:
    """Where the shipped presence model of `ipem` is (it may not exist)."""
    return Path(__file__).resolve().parents[1] / "weights" / f"presence-{ipem}.json"


def _balanced_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The probability threshold maximising (TPR + TNR) / 2 on (p, y), midway between neighbouring scores."""
    order = np.argsort(p)
    ps, ys = p[order], y[order]
    n_pos, n_neg = ys.sum(), len(ys) - ys.sum()
    # threshold just above ps[k-1]: predicted negative = first k
    neg_below = np.concatenate([[0], np.cumsum(1 - ys)])
    pos_below = np.concatenate([[0], np.cumsum(ys)])
    bal = 0.5 * ((n_pos - pos_below) / n_pos + neg_below / n_neg)
    # only cut between distinct scores
    valid = np.ones(len(ps) + 1, bool)
    valid[1:-1] = ps[1:] > ps[:-1]
    k = int(np.argmax(np.where(valid, bal, -1)))
    if k == 0:
        return float(ps[0]) / 2
    if k == len(ps):
        return float((ps[-1] + 1.0) / 2)
    return float((ps[k - 1] + ps[k]) / 2)
