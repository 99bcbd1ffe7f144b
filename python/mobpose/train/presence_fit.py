"""Fits the person-presence score (:mod:`mobpose.runtime.presence`) of an IPEM on real and empty crops.

Positives: LSPET person crops (``person``: the box of the labelled joints x1.15, jittered in scale and
position as a tracker's box would be) and, a fifth of them, the synthetic engine's renders of a person
(``rendered``: CMU train poses for training, CMU test poses for the report; the IPEM's own domain and that of
the demo clips). Negatives, as many, each of a named kind:

- ``background``: crops of the same LSPET photos away from the labelled person (boxes that do not meet the
  person box; other, unlabelled people can appear in them: label noise that is accepted);
- ``blank``: images of one random colour (whole frame or a random box);
- ``noise``: uniform and Gaussian noise images (per channel or grey);
- ``gradient``: smooth linear or radial gradients between two random colours;
- ``tiny``: 1x1 to 8x8 random images, cropped whole by crop_person (so upsampled to the crop size);
- ``synthetic``: backgrounds of the synthetic engine (:func:`mobpose.data.synthetic.appearance.background`).

Training uses LSPET train rows (0-8999); the report is on LSPET val rows (9000-9999) and fresh synthetic
negatives of another seed: AUC, accuracy, true-positive rate, false-positive rate per negative kind at the
threshold (chosen on train), and the expected calibration error (10 bins).

Run ``python -m mobpose.train.presence_fit --out presence.json [--report report.json]`` (``--ship``: as the
shipped model, recorded in the weights manifest). The LSPET folder is
``--lspet``, else $MOBPOSE_LSPET_DIR, else ../shared/data/lspet next to the repository.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np

from ..lspet import default_dir as default_lspet_dir
from ..lspet import person_box
from ..runtime.image import crop_person, load_image
from ..runtime.presence import FEATURE_NAMES, IPEM_FEATURES, PresenceModel, presence_features, reliability

__all__ = ["NEGATIVE_KINDS", "POSITIVE_KINDS", "default_lspet_dir", "engine_outputs", "evaluate", "fit_presence",
           "main", "make_crops", "person_box", "rendered_crops", "synthetic_negative"]

logger = logging.getLogger(__name__)

POSITIVE_KINDS = ("person", "rendered")
NEGATIVE_KINDS = ("background", "blank", "noise", "gradient", "tiny", "synthetic")
TRAIN_ROWS = (0, 9000)
VAL_ROWS = (9000, 10000)


def _jitter(rng: np.random.Generator, box: np.ndarray) -> np.ndarray:
    """A tracker-like box: scale x0.9-1.2, centre moved by up to 8% of the box size."""
    x, y, w, h = box
    k = rng.uniform(0.9, 1.2)
    cx, cy = x + w / 2 + rng.uniform(-0.08, 0.08) * w, y + h / 2 + rng.uniform(-0.08, 0.08) * h
    return np.array([cx - k * w / 2, cy - k * h / 2, k * w, k * h])


def _away_box(rng: np.random.Generator, width: int, height: int, person: np.ndarray,
              tries: int = 40) -> np.ndarray | None:
    """A random box inside the image that does not meet the person box, or None."""
    px1, py1, px2, py2 = person[0], person[1], person[0] + person[2], person[1] + person[3]
    for _ in range(tries):
        side = rng.uniform(0.15, 0.7) * min(width, height)
        aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
        w, h = side * np.sqrt(aspect), side / np.sqrt(aspect)
        if w >= width or h >= height or min(w, h) < 16:
            continue
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        if x + w <= px1 or x >= px2 or y + h <= py1 or y >= py2:
            return np.array([x, y, w, h])
    return None


def _random_box(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """The whole frame half of the time, else a random box of 20-100% of the shorter side."""
    if rng.random() < 0.5:
        return np.array([0.0, 0.0, width, height])
    side = rng.uniform(0.2, 1.0) * min(width, height)
    x, y = rng.uniform(0, width - side), rng.uniform(0, height - side)
    return np.array([x, y, side, side])


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, 3).astype(np.float32)


def synthetic_negative(rng: np.random.Generator, kind: str) -> np.ndarray:
    """One (H, W, 3) uint8 RGB image without a person of `kind` (blank, noise, gradient, tiny, synthetic)."""
    h, w = (int(v) for v in rng.integers(48, 480, 2))
    if kind == "blank":
        return np.broadcast_to(_colour(rng).astype(np.uint8), (h, w, 3)).copy()
    if kind == "noise":
        shape = (h, w, 3) if rng.random() < 0.7 else (h, w, 1)
        if rng.random() < 0.5:
            lo = rng.uniform(0, 128)
            img = rng.uniform(lo, rng.uniform(lo + 20, 256), shape)
        else:
            img = rng.normal(rng.uniform(30, 225), rng.uniform(5, 80), shape)
        return np.broadcast_to(np.clip(img, 0, 255).round().astype(np.uint8), (h, w, 3)).copy()
    if kind == "gradient":
        a, b = _colour(rng), _colour(rng)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        if rng.random() < 0.7:
            ang = rng.uniform(0, 2 * np.pi)
            t = np.cos(ang) * xx / w + np.sin(ang) * yy / h
        else:
            t = np.hypot(xx / w - rng.uniform(0, 1), yy / h - rng.uniform(0, 1))
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        return (a * (1 - t[..., None]) + b * t[..., None]).round().astype(np.uint8)
    if kind == "tiny":
        s = int(rng.integers(1, 9))
        return rng.integers(0, 256, (s, int(rng.integers(1, 9)) if rng.random() < 0.3 else s, 3), dtype=np.uint8)
    if kind == "synthetic":
        from ..data.synthetic.appearance import background

        return (np.clip(background(rng, h, w), 0, 1) * 255).round().astype(np.uint8)
    raise ValueError(f"unknown negative kind {kind!r}")


def rendered_crops(rng: np.random.Generator, n: int, size: int, split: str, augment: bool) -> list[np.ndarray]:
    """`n` crops of a rendered person (CMU `split` poses; `augment`: mild scale/shift/occlusion, no rotation).
    Empty (logged) when the CMU data is not there."""
    from tqdm import tqdm

    from ..data import load_cmu
    from ..data.synthetic import EngineConfig, make_sample
    from ..data.synthetic.dataset import pose_pool

    if n <= 0:
        return []
    try:
        pool = pose_pool(load_cmu(split=split))
    except (FileNotFoundError, OSError) as e:
        logger.warning("no rendered positives: CMU poses not found (%s)", e)
        return []
    cfg = EngineConfig(crop_size=size, augment=augment, scale_aug=0.1, rot_prob=0.0, shift=0.06,
                       occlusion_prob=0.2, occlusion_max=0.4)
    return [make_sample(rng, pool[rng.integers(len(pool))], cfg)["crop"]
            for _ in tqdm(range(n), desc="rendered crops", unit="crop")]


def make_crops(lspet: Path, rows: tuple[int, int], n_pos: int, n_background: int, n_each: int, size: int,
               seed: int, n_rendered: int = 0, split: str = "train") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(crops (N, size, size, 3) uint8, labels (N,) 1 = person, kinds (N,) a positive or negative kind).

    `n_pos` person crops and `n_background` background crops from LSPET rows [rows[0], rows[1]) (each from
    distinct random photos; a background crop may come from a photo whose person is a positive),
    `n_each` images of each synthetic negative kind, `n_rendered` rendered people (CMU `split` poses,
    augmented for 'train')."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    data = np.load(lspet / "joints.npz")
    joints, names = data["joints"], data["images"]
    crops, labels, kinds = [], [], []
    pos_rows = rng.permutation(np.arange(*rows))[:n_pos]
    bg_rows = rng.permutation(np.arange(*rows))  # may share photos with the positives (other regions)
    for r in tqdm(pos_rows, desc="person crops", unit="crop"):
        image = load_image(lspet / "images" / str(names[r]))
        box = _jitter(rng, person_box(joints[r]))
        crops.append(crop_person(image, box, size)[0])
        labels.append(1)
        kinds.append("person")
    made = 0
    bar = tqdm(total=n_background, desc="background crops", unit="crop")
    for r in bg_rows:
        if made >= n_background:
            break
        image = load_image(lspet / "images" / str(names[r]))
        box = _away_box(rng, image.shape[1], image.shape[0], person_box(joints[r]))
        if box is None:
            continue
        crops.append(crop_person(image, box, size)[0])
        labels.append(0)
        kinds.append("background")
        made += 1
        bar.update()
    bar.close()
    if made < n_background:
        logger.warning("only %d of %d background crops found in rows %s", made, n_background, rows)
    for crop in rendered_crops(rng, n_rendered, size, split, augment=split == "train"):
        crops.append(crop)
        labels.append(1)
        kinds.append("rendered")
    for kind in NEGATIVE_KINDS[1:]:
        for _ in range(n_each):
            image = synthetic_negative(rng, kind)
            box = (np.array([0.0, 0.0, image.shape[1], image.shape[0]]) if kind == "tiny"
                   else _random_box(rng, image.shape[1], image.shape[0]))
            crops.append(crop_person(image, box, size)[0])
            labels.append(0)
            kinds.append(kind)
    return np.stack(crops), np.asarray(labels, np.int64), kinds


def engine_outputs(model, crops: np.ndarray, batch: int = 64, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The torch IPEM on crops (N, S, S, 3) uint8, batched: (xyz (N, J, 3), conf (N, J)), as the torch
    backend's engine gives them one crop at a time (checked equal to ~1e-6)."""
    import torch
    from tqdm import tqdm

    from ..functional import soft_argmax_3d
    from ..models.convnextpose import IMAGENET_MEAN, IMAGENET_STD

    mean = np.asarray(IMAGENET_MEAN, np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(IMAGENET_STD, np.float32) * 255.0)
    model.eval()
    xyzs, confs = [], []
    for i in tqdm(range(0, len(crops), batch), desc="IPEM", unit="batch", disable=not progress):
        x = ((crops[i:i + batch].astype(np.float32) - mean) * inv_std).transpose(0, 3, 1, 2)
        with torch.inference_mode():
            heat = model.forward_heatmaps(torch.from_numpy(np.ascontiguousarray(x)))
            xyz, peak = soft_argmax_3d(heat, model.softargmax_mode, backend="torch", return_peak=True)
        xyzs.append(xyz.numpy())
        confs.append(peak.numpy())
    return np.concatenate(xyzs), np.concatenate(confs)


def _auc(p: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    pos, neg = p[y == 1], p[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    allv = np.concatenate([pos, neg])[order]
    # average ranks of ties
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    r_pos = ranks[: len(pos)].sum()
    return float((r_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def evaluate(model: PresenceModel, X: np.ndarray, y: np.ndarray, kinds: list[str]) -> dict:
    """AUC (all; LSPET person vs background only), accuracy, TPR per positive kind and FPR per negative kind
    at the model's threshold, and the reliability summary."""
    p = model.probabilities(X)
    pred = p >= model.threshold
    kinds_a = np.asarray(kinds)
    out = {"n": int(len(y)), "n_person": int(y.sum()), "auc": _auc(p, y),
           "auc_background": _auc(p[np.isin(kinds_a, ["person", "background"])],
                                  y[np.isin(kinds_a, ["person", "background"])]),
           "accuracy": float((pred == (y == 1)).mean()), "tpr": float(pred[y == 1].mean()),
           "fpr": float(pred[y == 0].mean()), "threshold": model.threshold}
    out["tpr_by_kind"] = {k: float(pred[kinds_a == k].mean()) for k in POSITIVE_KINDS if (kinds_a == k).any()}
    out["fpr_by_kind"] = {k: float(pred[kinds_a == k].mean()) for k in NEGATIVE_KINDS if (kinds_a == k).any()}
    out["n_by_kind"] = {k: int((kinds_a == k).sum()) for k in (*POSITIVE_KINDS, *NEGATIVE_KINDS)}
    out["max_probability_by_kind"] = {k: float(p[kinds_a == k].max()) for k in NEGATIVE_KINDS
                                      if (kinds_a == k).any()}
    out["reliability"] = reliability(p, y)
    return out


def fit_presence(model_name: str = "ipem-xs", n_train: int = 2000, n_val: int = 1250, seed: int = 0,
                 lspet: str | os.PathLike | None = None, threshold: str = "balanced",
                 l2: float = 1e-3) -> tuple[PresenceModel, dict]:
    """Fits the presence score of `model_name` on LSPET train and reports it on LSPET val.

    Args:
        model_name: a shipped IPEM (mobpose.load_model).
        n_train: positive crops for training (n_train // 5 rendered, the rest LSPET); as many negatives:
            n_train // 2 LSPET background crops and n_train // 10 images of each of the five other kinds.
        n_val: the same for the report, from LSPET val (1000 photos: n_val - n_val // 5 <= 1000) and CMU-test
            renders, with a different seed.
        seed: the seed of the train crops (the val crops use seed + 1000).
        lspet: the LSPET folder (default: :func:`default_lspet_dir`).
        threshold: 'balanced' (the point maximising balanced accuracy on train) or 'half' (p = 0.5).
        l2: the L2 penalty of the logistic regression (on standardised features).

    Returns:
        (the fitted PresenceModel, a JSON-able report with the train and val figures).
    """
    from ..pretrained import load_model

    t0 = time.perf_counter()
    folder = Path(lspet) if lspet is not None else default_lspet_dir()
    if not (folder / "joints.npz").is_file():
        raise FileNotFoundError(f"LSPET not found in {folder} (set --lspet or MOBPOSE_LSPET_DIR)")
    model = load_model(model_name)
    size, hm = model.config.input_size, tuple(model.heatmap_size)

    def featurise(rows, n, s, split):
        crops, y, kinds = make_crops(folder, rows, n - n // 5, n // 2, max(n // 10, 1), size, s, n // 5, split)
        xyz, conf = engine_outputs(model, crops)
        X = np.stack([presence_features(a, b, c, hm) for a, b, c in zip(xyz, conf, crops, strict=True)])
        return X, y, kinds

    X_tr, y_tr, k_tr = featurise(TRAIN_ROWS, n_train, seed, "train")
    X_va, y_va, k_va = featurise(VAL_ROWS, n_val, seed + 1000, "test")
    meta = {"ipem": model_name, "trained_on": f"LSPET rows {TRAIN_ROWS[0]}-{TRAIN_ROWS[1] - 1} and CMU-train renders"
            f" ({n_train} positive crops), {n_train} negatives of {', '.join(NEGATIVE_KINDS)}; seed {seed}",
            "command": f"python -m mobpose.train.presence_fit --model {model_name} --n-train {n_train} "
                       f"--n-val {n_val} --seed {seed} --threshold {threshold}",
            "calibration": "logistic probability for an even prior of person and empty crops; threshold maximises "
                           "balanced accuracy on the train crops"}
    pm = PresenceModel.fit(X_tr, y_tr, l2=l2, threshold=threshold, meta=meta)
    report = {"model": model_name, "features": list(FEATURE_NAMES), "weights": dict(zip(FEATURE_NAMES,
              (float(w) for w in pm.weights), strict=True)), "bias": pm.bias, "threshold": pm.threshold,
              "train": evaluate(pm, X_tr, y_tr, k_tr), "val": evaluate(pm, X_va, y_va, k_va),
              "command": meta["command"]}
    # how much each source of evidence carries alone (same recipe, a subset of the features)
    report["ablation_val"] = {}
    for name, subset in (("ipem_outputs_only", IPEM_FEATURES),
                         ("pixels_only", tuple(f for f in FEATURE_NAMES if f not in IPEM_FEATURES))):
        idx = [FEATURE_NAMES.index(f) for f in subset]
        sub = PresenceModel.fit(X_tr[:, idx], y_tr, l2=l2, threshold=threshold, feature_names=subset)
        ev = evaluate(sub, X_va[:, idx], y_va, k_va)
        report["ablation_val"][name] = {k: ev[k] for k in ("auc", "auc_background", "tpr", "fpr", "fpr_by_kind")}
    report["seconds"] = round(time.perf_counter() - t0, 1)
    pm.meta["val"] = {k: report["val"][k] for k in ("auc", "auc_background", "tpr", "tpr_by_kind", "fpr",
                                                     "fpr_by_kind")}
    pm.meta["val"]["ece"] = report["val"]["reliability"]["ece"]
    return pm, report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mobpose.train.presence_fit", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="ipem-xs")
    p.add_argument("--out", help="the fitted PresenceModel (JSON); default with --ship: the shipped file")
    p.add_argument("--ship", action="store_true",
                   help="write it as the shipped presence model of --model and record it in the weights manifest")
    p.add_argument("--report", help="the report (JSON); printed in any case")
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-val", type=int, default=1250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lspet", help="the LSPET folder (default $MOBPOSE_LSPET_DIR or ../shared/data/lspet)")
    p.add_argument("--threshold", choices=("balanced", "half"), default="balanced")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    args = p.parse_args(argv)
    if not args.out and not args.ship:
        p.error("give --out or --ship")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(max(1, args.threads))
    cv2.setNumThreads(1)
    pm, report = fit_presence(args.model, args.n_train, args.n_val, args.seed, args.lspet, args.threshold)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(pm.to_dict(), indent=1) + "\n")
    if args.ship:
        from ..pretrained import record_presence
        from ..runtime.presence import shipped_path

        shipped_path(args.model).write_text(json.dumps(pm.to_dict(), indent=1) + "\n")
        record_presence(args.model)
    text = json.dumps(report, indent=1)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(text + "\n")
    logger.info("presence report:\n%s", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
