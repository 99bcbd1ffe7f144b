"""Finding people with RTMO, outside the network graph, in numpy: the letterbox, box decoding, the score
threshold, NMS, and the Dynamic Coordinate Classifier of the kept people.

The exported RTMO graph (mobpose.models.rtmo.RTMO.forward) is convolutions only and returns every cell's raw
predictions (A, C). :func:`postprocess` turns them into people: the cells whose score passes
`score_threshold` are decoded (box = cell centre -/+ exp(log distances) x stride), at most `max_candidates`
of them by score are kept, overlapping boxes are suppressed (greedy NMS at `nms_iou`), and the DCC
(:func:`dcc_forward`, the numpy twin of mobpose.models.rtmo.DCC, checked against it in tests/test_rtmo.py)
places the keypoints of at most `max_people` people. Its cost therefore grows with the people found, the
network's does not.

Units: the network sees a square of `size` pixels (:func:`letterbox`: the image scaled to fit, centred, padded
with grey 114 as YOLOX); everything returned is in the original image's pixels. Boxes are (x0, y0, x1, y1).
Joints: H36M-17 (mobpose.skeleton.H36M_17).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import numpy as np

from ..models.rtmo_layout import layout

__all__ = ["People", "PeopleDetector", "dcc_forward", "letterbox", "nms", "postprocess", "priors_np"]

logger = logging.getLogger(__name__)

STRIDES = (16, 32)
PAD_VALUE = 114


@dataclasses.dataclass
class People:
    """The people found in one image (N of them, by falling score; J = 17).

    Attributes:
        boxes: (N, 4) float32 x0, y0, x1, y1 image pixels.
        scores: (N,) float32 person scores in [0, 1].
        keypoints: (N, J, 2) float32 image pixels (the DCC's).
        keypoint_scores: (N, J) float32 visibility probabilities.
    """

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray
    keypoint_scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def xywh(self) -> np.ndarray:
        """(N, 4) boxes as x, y, w, h (the 3D pipeline's form)."""
        b = self.boxes.astype(np.float64)
        return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], 1)

    @staticmethod
    def empty(joints: int = 17) -> People:
        return People(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, joints, 2), np.float32),
                      np.zeros((0, joints), np.float32))


def priors_np(size: int) -> np.ndarray:
    """(A, 3) float32 cell centres x, y (pixels) and strides of a square input of `size` px (as
    mobpose.models.rtmo.priors)."""
    rows = []
    for s in STRIDES:
        n = size // s
        yy, xx = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        rows.append(np.stack([(xx.ravel() + 0.5) * s, (yy.ravel() + 0.5) * s, np.full(n * n, float(s))], 1))
    return np.concatenate(rows).astype(np.float32)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, np.ndarray]:
    """(H, W, 3) uint8 -> ((size, size, 3) uint8, scale, (2,) offset): the image scaled by `scale` to fit the
    square, centred; input pixel = image pixel * scale + offset."""
    import cv2

    h, w = image.shape[:2]
    scale = min(size / w, size / h)
    nw, nh = max(int(round(w * scale)), 1), max(int(round(h * scale)), 1)
    ox, oy = (size - nw) // 2, (size - nh) // 2
    canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    canvas[oy:oy + nh, ox:ox + nw] = cv2.resize(image, (nw, nh), interpolation=interp)
    # the exact scale per axis of the resize, so that pixel centres map back where they came from
    return canvas, float(scale), np.array([ox, oy], np.float64)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, inside: float = 1.0) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the kept boxes (N, 4) xyxy, by falling score. A box goes when its
    IoU with a kept one exceeds `iou`, or when a kept one covers more than `inside` of its own area (a box on a
    part of a person already found: 1.0 turns that off)."""
    order = np.argsort(-scores, kind="stable")
    b = boxes.astype(np.float64)
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    keep = []
    while len(order):
        i = order[0]
        keep.append(i)
        rest = order[1:]
        lt = np.maximum(b[i, :2], b[rest, :2])
        rb = np.minimum(b[i, 2:], b[rest, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), 1)
        overlap = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        covered = inter / np.maximum(area[rest], 1e-9)
        order = rest[(overlap <= iou) & (covered <= inside)]
    return np.asarray(keep, np.int64)


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _linear(x: np.ndarray, w: dict[str, np.ndarray], name: str) -> np.ndarray:
    return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]


def dcc_forward(w: dict[str, np.ndarray], config: Any, pose: np.ndarray, boxes: np.ndarray,
                cells: np.ndarray) -> np.ndarray:
    """The DCC in numpy (float32): pose vectors (N, P), boxes (N, 4) xyxy and cell centres (N, 2), all in input
    pixels -> keypoints (N, J, 2) input pixels. `w` holds the ``dcc.`` tensors of an RTMO state dict without the
    prefix; `config` is its RTMOConfig (or a dict of it)."""
    c = config if isinstance(config, dict) else dataclasses.asdict(config)
    n, jn, d = len(pose), int(c["num_joints"]), int(c["dcc_dim"])
    if n == 0:
        return np.zeros((0, jn, 2), np.float32)
    f = _linear(pose.astype(np.float32), w, "to_joints").reshape(n, jn, d)
    mu = f.mean(-1, keepdims=True)
    var = ((f - mu) ** 2).mean(-1, keepdims=True)
    f = (f - mu) / np.sqrt(var + 1e-5) * w["norm.weight"] + w["norm.bias"]
    # the GAU (mobpose.models.rtmo.GAU)
    norm = np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-5) / math.sqrt(d)
    uvz = _silu(_linear(f / norm * w["gau.g"], w, "gau.uv"))
    e, s = 2 * d, int(c["gau_s"])
    u, v, z = uvz[..., :e], uvz[..., e:2 * e], uvz[..., 2 * e:]
    q = z * w["gau.gamma"][0] + w["gau.beta"][0]
    k = z * w["gau.gamma"][1] + w["gau.beta"][1]
    kernel = np.maximum(q @ k.transpose(0, 2, 1) / math.sqrt(s), 0) ** 2 / jn
    f = f + _linear(u * (kernel @ v), w, "gau.out")
    # bins over the enlarged box, their sine encodings relative to the cell
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = np.maximum(boxes[:, 2:] - boxes[:, :2], 1.0) * float(c["bbox_padding"])
    out = []
    for axis, bins, fc in ((0, int(c["x_bins"]), "x_fc"), (1, int(c["y_bins"]), "y_fc")):
        pos = centre[:, axis:axis + 1] + np.linspace(-0.5, 0.5, bins, dtype=np.float32) * size[:, axis:axis + 1]
        half = int(c["spe_channels"]) // 2
        t = float(c["spe_temperature"]) ** (2 * np.arange(half, dtype=np.float32) / int(c["spe_channels"]))
        ang = (pos - cells[:, axis:axis + 1])[..., None] / t
        feat = np.concatenate([np.cos(ang), np.sin(ang)], -1).astype(np.float32)  # (N, bins, C)
        # f . enc(bin) with enc = feat W^T + b, as (f W) . feat + f . b: the same sum, without encoding every bin
        # into D channels first (the costliest product of the DCC when several people are found)
        logits = (f @ w[f"{fc}.weight"]) @ feat.transpose(0, 2, 1) + (f @ w[f"{fc}.bias"])[..., None]
        prob = _softmax(logits)  # (N, J, bins)
        out.append((prob * pos[:, None]).sum(-1))
    return np.stack(out, -1).astype(np.float32)


def postprocess(dense: np.ndarray, config: Any, dcc_weights: dict[str, np.ndarray], size: int, *,
                score_threshold: float = 0.3, nms_iou: float = 0.65, nms_inside: float = 1.0, max_candidates: int = 100,
                max_people: int = 20) -> People:
    """One image's dense output (A, C) -> the people in input pixels (see the module docstring)."""
    c = config if isinstance(config, dict) else dataclasses.asdict(config)
    lay = layout(c)
    jn = int(c["num_joints"])
    prior = priors_np(size)
    if dense.shape != (len(prior), lay["pose"].stop):
        raise ValueError(f"dense output must be ({len(prior)}, {lay['pose'].stop}) for a {size} px input, "
                         f"got {dense.shape}")
    dense = dense.astype(np.float32)
    logit = dense[:, 0]
    score = 1.0 / (1.0 + np.exp(-logit))
    idx = np.flatnonzero(score >= score_threshold)
    if len(idx) > max_candidates:
        idx = idx[np.argsort(-score[idx], kind="stable")[:max_candidates]]
    if not len(idx):
        return People.empty(jn)
    p = prior[idx]
    dist = np.exp(np.minimum(dense[idx, lay["box"]], 8.0)) * p[:, 2:3]
    boxes = np.stack([p[:, 0] - dist[:, 0], p[:, 1] - dist[:, 1], p[:, 0] + dist[:, 2], p[:, 1] + dist[:, 3]], 1)
    keep = nms(boxes, score[idx], nms_iou, nms_inside)[:max_people]
    idx, boxes, p = idx[keep], boxes[keep], p[keep]
    kp = dcc_forward(dcc_weights, c, dense[idx, lay["pose"]], boxes, p[:, :2])
    vis = 1.0 / (1.0 + np.exp(-dense[idx, lay["visibility"]]))
    return People(boxes.astype(np.float32), score[idx].astype(np.float32), kp, vis.astype(np.float32))


def to_image(people: People, scale: float, offset: np.ndarray, image_size: tuple[int, int]) -> People:
    """People in letterboxed input pixels -> original image pixels (boxes clipped to the (w, h) image)."""
    w, h = image_size
    boxes = (people.boxes - np.tile(offset, 2)) / scale
    boxes = np.clip(boxes, 0, [w, h, w, h])
    kp = (people.keypoints - offset) / scale
    return People(boxes.astype(np.float32), people.scores, kp.astype(np.float32), people.keypoint_scores)


class PeopleDetector:
    """RTMO as a people finder: ``people = detector(image)`` on (H, W, 3) uint8 RGB images.

    Args:
        model: a shipped name, an RTMO checkpoint path, or an RTMO module.
        backend: "auto" (TFLite when the model ships or can export its file, else torch), "tflite" (its dense
            graph on XNNPACK; the DCC in numpy) or "torch".
        threads: CPU threads.
        score_threshold, nms_iou, nms_inside, max_people: see :func:`postprocess` (here ``nms_iou`` 0.5, and
            ``nms_inside`` 0.8: a box mostly inside a surer one is a part of that person, not another one).

    The network runs at the model's input size (a square; the TFLite file's, else the config's).
    """

    def __init__(self, model: Any = "rtmo-mnv2", *, backend: str = "auto", threads: int = 1,
                 score_threshold: float = 0.3, nms_iou: float = 0.5, nms_inside: float = 0.8,
                 max_people: int = 20) -> None:
        from .backends import _have, _have_torch, _Runner, _tflite_of, model_ref

        if backend not in ("auto", "torch", "tflite"):
            raise ValueError(f"backend must be 'auto', 'tflite' or 'torch', got {backend!r}")
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if max_people < 1:
            raise ValueError(f"max_people must be >= 1, got {max_people}")
        self.score_threshold, self.nms_iou, self.max_people = float(score_threshold), float(nms_iou), int(max_people)
        self.nms_inside = float(nms_inside)
        self.threads = max(1, int(threads))
        self.ref = model_ref(model, "rtmo")
        if backend == "auto":
            backend = "tflite" if (self.ref.tflite is not None or (_have("litert_torch") and _have_torch())) \
                else "torch"
        self.backend = backend
        if backend == "torch" or not self.ref.facts:
            self.ref.load()
        if backend == "tflite":
            self._runner = _Runner(_tflite_of(self.ref), self.threads)
        self.config = dict(self.ref.facts["config"])
        self.input_size = int(self.ref.facts["input_size"])
        if self.ref.module is not None:
            self.dcc_weights = {k[4:]: v.detach().float().numpy() for k, v in self.ref.module.state_dict().items()
                                if k.startswith("dcc.")}
        else:  # the shipped weights file, read with numpy (checksum-verified)
            from ..safetensors_np import load_tensors

            self.dcc_weights = {k[4:]: v for k, v in load_tensors(self.ref.path, "dcc.").items()}
        self.label = self.ref.label

    def _dense(self, canvas: np.ndarray) -> np.ndarray:
        if self.backend == "tflite":
            out = self._runner(image=canvas[None].astype(np.float32))
            return next(iter(out.values()))[0]
        import torch

        from ..models.convnextpose import normalize_images

        with torch.no_grad():
            torch.set_num_threads(self.threads)
            return self.ref.module(normalize_images(canvas)).numpy()[0]

    def __call__(self, image: np.ndarray) -> People:
        """The people in one (H, W, 3) uint8 RGB image, by falling score."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be a uint8 (H, W, 3) RGB array, got "
                             f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"image is empty ({image.shape[1]}x{image.shape[0]} pixels)")
        canvas, scale, offset = letterbox(image, self.input_size)
        people = postprocess(self._dense(canvas), self.config, self.dcc_weights, self.input_size,
                             score_threshold=self.score_threshold, nms_iou=self.nms_iou, nms_inside=self.nms_inside,
                             max_people=self.max_people)
        return to_image(people, scale, offset, (image.shape[1], image.shape[0]))

    def __repr__(self) -> str:
        return (f"PeopleDetector({self.label!r}, backend={self.backend!r}, input={self.input_size}, "
                f"threads={self.threads}, score_threshold={self.score_threshold})")
