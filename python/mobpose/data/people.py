"""Multi-person images for the 2D systems (RTMO, PoseResNet): real LSPET people composed into scenes, and the
engine's rendered multi-person scenes.

Three kinds of image, each a square of `size` pixels with every person's H36M-17 joints and box:

- ``mosaic``: 2-9 LSPET photos on a grid (1x2 up to 3x3), each scaled into its cell (0.6-1 of the largest
  fit, at a random place in it, mirrored at random), the rest of the canvas an engine background.
- ``paste``: 1-8 LSPET people cut from their photos (the person box x1.3 with the photo's own surroundings,
  blended in through a feathered ellipse) and pasted at log-uniform heights of 8-90 % of the image onto an
  engine background (:func:`mobpose.data.synthetic.appearance.background`), each placement tried up to 10
  times to keep its box's IoU with earlier boxes below 0.3; a joint a later paste covers is no longer
  visible, and a person whose box later pastes cover by more than half (:data:`HIDDEN`) is no longer a label
  (it cannot be seen: a small person under a large later cut-out).
- ``render``: :func:`mobpose.data.synthetic.scene.make_scene` with 2-6 CMU poses, letterboxed into the square
  (needs the CMU data; its joints are complete, visibility from the depth buffer).

The person box of an LSPET person is :func:`mobpose.lspet.person_box` (its labelled joints' box x1.15, as the
LSPET evaluation uses), moved with the image; a rendered person's box is the engine's (its spheres' box). Boxes
are (x0, y0, x1, y1) in the square's pixels, clipped to it. Joints: LSPET's 14 are mapped to H36M-17 as in
:mod:`mobpose.lspet` (its ``neck`` is the ``thorax``); ``pelvis``, ``spine`` and ``neck_nose`` have no LSP
label and are masked (``labelled`` False), as are invisible LSP joints (LSPET marks them 0). A photo's other,
unlabelled people (LSPET photos are one labelled person each; a few show bystanders) are background to the
loss: a known source of false-negative labels.

Items are a pure function of (seed, index) (and the epoch for training sets): the validation compositions
of LSPET val rows (:func:`val_set`) are the same on every machine. Train sets draw rows 0-8999 only.

Mirroring swaps the left and right labels (H36M_17.flip_indices); colour, blur, noise and JPEG come from the
engine's ``_finish``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..lspet import H36M_OF_LSP, TRAIN_ROWS, VAL_ROWS, load, person_box
from ..skeleton import H36M_17

__all__ = ["KINDS", "PeopleConfig", "PeopleDataset", "collate_people", "compose", "val_set"]

KINDS = ("mosaic", "paste", "render")
J = H36M_17.num_joints
HIDDEN = 0.5  # a pasted person whose box later pastes cover by more than this share is dropped from the labels


@dataclass(frozen=True)
class PeopleConfig:
    """Sizes and mix of the composed images."""

    size: int = 320
    kinds: tuple[str, ...] = ("mosaic", "paste", "render")
    weights: tuple[float, ...] = (0.4, 0.45, 0.15)
    max_people: int = 9
    augment: bool = True  # colour, blur, noise, JPEG (the engine's _finish); mirroring of the photos

    def __post_init__(self) -> None:
        if self.size < 64 or self.size % 32:
            raise ValueError(f"size must be a multiple of 32, at least 64, got {self.size}")
        if len(self.kinds) != len(self.weights) or not self.kinds or any(k not in KINDS for k in self.kinds):
            raise ValueError(f"kinds must be some of {KINDS} with one weight each, got {self.kinds}, {self.weights}")
        if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
            raise ValueError(f"weights must be >= 0 and not all 0, got {self.weights}")


class _LSPET:
    """The LSPET labels in H36M-17 order, and the photos (read on demand)."""

    def __init__(self, folder=None) -> None:
        data = load(folder)
        self.folder = data["folder"]
        self.images = data["images"]
        names = list(H36M_17.joint_names)
        index = np.array([names.index(H36M_OF_LSP[n]) for n in data["names"]])
        lab = data["joints"]
        self.raw = lab
        self.xy = np.zeros((len(lab), J, 2), np.float32)
        self.xy[:, index] = lab[:, :, :2]
        self.labelled = np.zeros((len(lab), J), bool)
        self.labelled[:, index] = lab[:, :, 2] > 0
        self.defined = np.zeros(J, bool)
        self.defined[index] = True

    def photo(self, row: int) -> np.ndarray:
        from ..runtime.image import load_image

        return load_image(self.folder / "images" / self.images[row])


def _mirror(xy: np.ndarray, labelled: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """x -> width - 1 - x (pixel centres, as cv2.flip) with left and right swapped."""
    flip = np.asarray(H36M_17.flip_indices)
    xy = xy.copy()
    xy[:, 0] = width - 1 - xy[:, 0]
    return xy[flip], labelled[flip]


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a (4,) against b (N, 4), (x0, y0, x1, y1)."""
    if len(b) == 0:
        return np.zeros(0)
    w = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return inter / np.maximum(union, 1e-9)


def _xyxy(box_xywh: np.ndarray) -> np.ndarray:
    return np.array([box_xywh[0], box_xywh[1], box_xywh[0] + box_xywh[2], box_xywh[1] + box_xywh[3]], np.float32)


def _place(img: np.ndarray, patch: np.ndarray, alpha: np.ndarray, x: int, y: int) -> np.ndarray:
    """Blends `patch` (h, w, 3) float with `alpha` (h, w) into `img` at (x, y), clipped to the image; returns
    the alpha actually laid on `img` (H, W)."""
    hh, ww = img.shape[:2]
    h, w = patch.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, ww), min(y + h, hh)
    cover = np.zeros((hh, ww), np.float32)
    if x1 <= x0 or y1 <= y0:
        return cover
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]
    img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - a) + patch[y0 - y:y1 - y, x0 - x:x1 - x] * a
    cover[y0:y1, x0:x1] = a[..., 0]
    return cover


def _grid(n: int, rng: np.random.Generator) -> tuple[int, int]:
    if n <= 3:
        return (1, n) if rng.random() < 0.5 else (n, 1)
    if n == 4:
        return 2, 2
    if n <= 6:
        return (2, 3) if rng.random() < 0.5 else (3, 2)
    return 3, 3


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    from .synthetic.appearance import background

    return background(rng, size, size)


def _mosaic(rng: np.random.Generator, src: _LSPET, rows: np.ndarray, size: int, max_people: int,
            mirror: bool, count: int | None = None) -> tuple[np.ndarray, list]:
    n = int(rng.integers(2, min(9, max_people) + 1)) if count is None else int(count)
    gr, gc = _grid(n, rng)
    img = _background(rng, size)
    cw, ch = size / gc, size / gr
    people = []
    cells = rng.permutation(gr * gc)[:n]
    for cell in cells:
        row = int(rows[rng.integers(len(rows))])
        photo = src.photo(row).astype(np.float32) / 255.0
        h, w = photo.shape[:2]
        s = min(cw / w, ch / h) * rng.uniform(0.6, 1.0)
        nw, nh = max(int(round(w * s)), 1), max(int(round(h * s)), 1)
        cx0, cy0 = (cell % gc) * cw, (cell // gc) * ch
        x = int(cx0 + rng.uniform(0, max(cw - nw, 0)))
        y = int(cy0 + rng.uniform(0, max(ch - nh, 0)))
        patch = cv2.resize(photo, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        xy, lab = src.xy[row] * [nw / w, nh / h], src.labelled[row].copy()
        box = person_box(src.raw[row]) * np.array([nw / w, nh / h, nw / w, nh / h])
        if mirror and rng.random() < 0.5:
            patch = patch[:, ::-1]
            xy, lab = _mirror(xy, lab, nw)
            box = np.array([nw - box[0] - box[2], box[1], box[2], box[3]])
        _place(img, patch, np.ones((nh, nw), np.float32), x, y)
        b = _xyxy(box) + [x, y, x, y]
        b = np.array([max(b[0], x), max(b[1], y), min(b[2], x + nw), min(b[3], y + nh)], np.float32)
        people.append((xy + [x, y], lab, b))
    return img, people


def _feather(h: int, w: int) -> np.ndarray:
    """An ellipse filling (h, w), 1 inside, falling to 0 at the edge over the outer fifth."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((xx + 0.5) / w * 2 - 1) ** 2 + ((yy + 0.5) / h * 2 - 1) ** 2)
    return np.clip((1.0 - r) / 0.2, 0, 1).astype(np.float32)


def _paste(rng: np.random.Generator, src: _LSPET, rows: np.ndarray, size: int, max_people: int,
           mirror: bool, count: int | None = None) -> tuple[np.ndarray, list]:
    n = int(rng.integers(1, min(8, max_people) + 1)) if count is None else int(count)
    img = _background(rng, size)
    people: list = []
    hidden: list[np.ndarray] = []  # per person, the pixels of its box that later pastes cover
    for _ in range(n):
        row = int(rows[rng.integers(len(rows))])
        photo = src.photo(row).astype(np.float32) / 255.0
        box = person_box(src.raw[row])
        # the person box x1.3 (its centre kept), cut from the photo with black outside it
        cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
        cw, chh = box[2] * 1.3, box[3] * 1.3
        height = size * math.exp(rng.uniform(math.log(0.08), math.log(0.9)))
        s = min(height / box[3], size / cw, size / chh)  # the cut-out fits the image
        pw, ph = max(int(round(cw * s)), 2), max(int(round(chh * s)), 2)
        a = np.array([[s, 0, pw / 2 - s * cx], [0, s, ph / 2 - s * cy]], np.float32)
        patch = cv2.warpAffine(photo, a, (pw, ph), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        xy = src.xy[row] * s + a[:, 2]
        lab = src.labelled[row].copy()
        pbox = np.array([(box[0] - cx) * s + pw / 2, (box[1] - cy) * s + ph / 2, box[2] * s, box[3] * s])
        if mirror and rng.random() < 0.5:
            patch = patch[:, ::-1]
            xy, lab = _mirror(xy, lab, pw)
            pbox = np.array([pw - pbox[0] - pbox[2], pbox[1], pbox[2], pbox[3]])
        boxes = np.array([p[2] for p in people], np.float32).reshape(-1, 4)
        for _try in range(10):
            x = int(rng.uniform(-0.1 * pw, size - 0.9 * pw))
            y = int(rng.uniform(-0.1 * ph, size - 0.9 * ph))
            b = _xyxy(pbox) + [x, y, x, y]
            if (_box_iou(b, boxes) < 0.3).all():
                break
        else:
            continue
        cover = _place(img, patch, _feather(ph, pw), x, y) >= 0.5
        for (pxy, plab, pb), hid in zip(people, hidden, strict=True):  # what the new paste covers is hidden
            u = np.clip(np.round(pxy).astype(int), 0, size - 1)
            plab &= ~cover[u[:, 1], u[:, 0]]
            x0, y0, x1, y1 = (int(round(v)) for v in pb)
            hid |= cover[y0:y1, x0:x1]
        b = np.clip(b, 0, size).astype(np.float32)
        people.append((xy + [x, y], lab, b))
        x0, y0, x1, y1 = (int(round(v)) for v in b)
        hidden.append(np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), bool))
    # a person whose box later pastes cover by more than HIDDEN is no longer in the picture: not a label
    return img, [p for p, hid in zip(people, hidden, strict=True) if not hid.size or hid.mean() <= HIDDEN]


def _render(rng: np.random.Generator, poses: np.ndarray, size: int, max_people: int) -> tuple[np.ndarray, list]:
    from .synthetic.scene import make_scene

    n = int(rng.integers(2, min(6, max_people) + 1))
    picks = [poses[int(rng.integers(len(poses)))] for _ in range(n)]
    wh = [(480, 360), (360, 480), (400, 400), (512, 288)][int(rng.integers(4))]
    scene = make_scene(rng, picks, image_size=wh)
    w, h = wh
    s = size / max(w, h)
    ox, oy = (size - w * s) / 2, (size - h * s) / 2
    a = np.array([[s, 0, ox], [0, s, oy]], np.float32)
    img = cv2.warpAffine(scene["image"].astype(np.float32) / 255.0, a, (size, size), flags=cv2.INTER_AREA,
                         borderValue=(0.0, 0.0, 0.0))
    people = []
    for j2, vis, box in zip(scene["joints_2d"], scene["visibility"], scene["bbox"], strict=True):
        if box[2] < 2 or box[3] < 2:
            continue
        b = np.array([box[0], box[1], box[0] + box[2], box[1] + box[3]]) * s + [ox, oy, ox, oy]
        people.append((j2[:J] * s + [ox, oy], vis[:J].copy(), b.astype(np.float32)))
    return img, people


def compose(kind: str, rng: np.random.Generator, src, rows: np.ndarray, config: PeopleConfig,
            poses: np.ndarray | None = None, count: int | None = None) -> dict:
    """One image of `kind` drawn with `rng` from LSPET `rows` (or CMU `poses` for renders); `count`: the people to
    place (mosaic, paste; default drawn; a paste may place fewer when it finds no free spot).

    Returns ``image`` (S, S, 3) uint8 RGB; ``keypoints`` (P, 17, 2) float32 pixels; ``labelled`` (P, 17) bool
    (labelled, visible and inside the image); ``defined`` (P, 17) bool (the joints the source labels at all:
    LSPET's 14, a render's 17; the visibility target of the others is unknown); ``boxes`` (P, 4) float32
    (x0, y0, x1, y1); ``kind``.
    """
    from .synthetic.scene import EngineConfig, _finish

    size = config.size
    if kind == "mosaic":
        img, people = _mosaic(rng, src, rows, size, config.max_people, config.augment, count)
    elif kind == "paste":
        img, people = _paste(rng, src, rows, size, config.max_people, config.augment, count)
    elif kind == "render":
        if poses is None:
            raise ValueError("render images need CMU poses (mobpose.data.synthetic.dataset.pose_pool)")
        img, people = _render(rng, poses, size, config.max_people)
    else:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    people = [p for p in people if p[2][2] - p[2][0] >= 2 and p[2][3] - p[2][1] >= 2]
    engine = EngineConfig(augment=config.augment)
    if not config.augment:
        engine = EngineConfig(augment=False, blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.0)
    image = _finish(rng, np.clip(img, 0, 1).astype(np.float32), engine)
    p = len(people)
    kp = np.array([q[0] for q in people], np.float32).reshape(p, J, 2)
    lab = np.array([q[1] for q in people], bool).reshape(p, J)
    lab &= (kp[..., 0] >= 0) & (kp[..., 0] <= size - 1) & (kp[..., 1] >= 0) & (kp[..., 1] <= size - 1)
    boxes = np.array([q[2] for q in people], np.float32).reshape(p, 4)
    defined = np.broadcast_to(np.ones(J, bool) if kind == "render" else src.defined, (p, J)).copy()
    return {"image": image, "keypoints": kp, "labelled": lab, "defined": defined, "boxes": boxes, "kind": kind}


class PeopleDataset:
    """Composed multi-person images as training items: each index draws its kind (by `config.weights`) and its
    content from (seed, epoch, index).

    Args:
        length: items per epoch.
        seed: base seed.
        config: the PeopleConfig.
        rows: LSPET rows to draw from (default the train rows; never the val rows for training).
        poses: CMU world poses (N, 17, 3) for the ``render`` kind (None: that kind's weight must be 0).
        folder: the LSPET folder.
    """

    def __init__(self, length: int, seed: int = 0, config: PeopleConfig | None = None, rows=TRAIN_ROWS,
                 poses: np.ndarray | None = None, folder=None, fixed: bool = False) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.config = config or PeopleConfig()
        self.rows = np.asarray(list(rows), np.int64)
        if len(self.rows) == 0:
            raise ValueError("no LSPET rows to draw from")
        weights = dict(zip(self.config.kinds, self.config.weights, strict=True))
        if weights.get("render", 0) > 0 and poses is None:
            raise ValueError("the render kind has a weight but no CMU poses were given")
        self.src = _LSPET(folder)
        self.poses = poses
        self.length, self.seed, self.epoch, self.fixed = int(length), int(seed), 0, fixed

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def sample(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        rng = np.random.default_rng([self.seed, 0 if self.fixed else self.epoch, index, 11])
        w = np.asarray(self.config.weights, np.float64)
        kind = self.config.kinds[int(rng.choice(len(w), p=w / w.sum()))]
        return compose(kind, rng, self.src, self.rows, self.config, self.poses)

    def __getitem__(self, index: int) -> dict:
        return self.sample(int(index))


def val_set(kind: str, count: int = 200, seed: int = 0, size: int = 320, folder=None) -> PeopleDataset:
    """The fixed validation compositions of one kind ('mosaic' or 'paste') from LSPET val rows 9000-9999
    (never trained on): image `i` is a pure function of (kind, seed, i); no colour or mirror augmentation."""
    if kind not in ("mosaic", "paste"):
        raise ValueError(f"validation sets are 'mosaic' or 'paste', got {kind!r}")
    cfg = PeopleConfig(size=size, kinds=(kind,), weights=(1.0,), augment=False)
    return PeopleDataset(count, seed=1_000_000 + seed + (0 if kind == "mosaic" else 7), config=cfg, rows=VAL_ROWS,
                         folder=folder, fixed=True)


def collate_people(items: list[dict]) -> dict:
    """A batch: ``image`` (B, 3, S, S) float32 ImageNet-normalised, and per image lists of ``keypoints``,
    ``labelled`` and ``boxes`` tensors (the people counts differ)."""
    import torch

    from .synthetic.dataset import normalise_crop

    return {
        "image": torch.from_numpy(np.stack([normalise_crop(it["image"]) for it in items])),
        "keypoints": [torch.from_numpy(it["keypoints"]) for it in items],
        "labelled": [torch.from_numpy(it["labelled"]) for it in items],
        "defined": [torch.from_numpy(it["defined"]) for it in items],
        "boxes": [torch.from_numpy(it["boxes"]) for it in items],
    }
