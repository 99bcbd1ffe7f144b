"""RTMO trained on composed multi-person images (mobpose.data.people): assignment, losses, evaluation.

**Assignment** (SimOTA, as YOLOX and RTMO; OKS in the cost as RTMO's pose assigner): a labelled person's
candidate cells are those whose centre lies inside its box or within `center_radius` (2.5) strides of its box
centre; the cost of cell i for person g is the BCE of the cell's score against their box IoU, plus
3 x (-log IoU), plus `oks_weight` x (-log OKS of the cell's coarse keypoints), plus 1e5 unless the centre is
both inside the box and in the centre region. Each person takes its k cheapest cells, k = the sum of its 10
largest IoUs (at least 1); a cell claimed twice goes to its cheapest person.

**Losses** over the positive cells (P of them; sums divided by P):

- score: BCE over every cell, the target 0 for negatives and, for positives, the mean of the box IoU and the
  OKS of the DCC's keypoints (RTMO uses the OKS alone; with the short training a CPU allows, the OKS of a young
  DCC is near 0 and the score would not learn to find anyone: *simplification 5*), weight 1;
- box: 1 - GIoU, weight 5;
- coarse keypoints: 1 - OKS (per person, over its labelled joints), weight 5 (RTMO's proxy branch);
- visibility: BCE against "labelled and visible" on the joints the source defines (LSPET's 14; every joint of
  a render), weight 1;
- DCC: the maximum-likelihood loss of RTMO: -log of the likelihood of the labelled position under the
  predicted bin distribution smoothed by a Laplacian whose scale is the predicted sigma x sqrt(box area),
  per labelled joint and axis pair, weight 1. The DCC's bins lie over the predicted (detached) box.

OKS (mobpose.oks): COCO's per-joint constants, the area of the labelled person's box.

**Evaluation** (:func:`evaluate_rtmo`): the runtime's numpy post-processing (mobpose.runtime.people) on the fixed
LSPET val compositions (mobpose.data.people.val_set): person recall at box IoU 0.5, COCO-style AP (OKS) and
AP50, for mosaics and pastes.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F

from ..models import create_model
from ..models.rtmo import decode_dense, priors
from .loop import TrainConfig, fit

__all__ = ["LossWeights", "evaluate_rtmo", "giou", "oks_torch", "rtmo_loss", "simota", "train_rtmo"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LossWeights:
    score: float = 1.0
    box: float = 5.0
    oks: float = 5.0
    visibility: float = 1.0
    mle: float = 1.0


def _sigmas() -> torch.Tensor:
    from ..oks import SIGMAS

    return torch.as_tensor(SIGMAS, dtype=torch.float32)


def oks_torch(pred: torch.Tensor, gt: torch.Tensor, labelled: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """OKS of keypoints pred (..., J, 2) against gt (..., J, 2) with masks (..., J) and areas (...) -> (...);
    0 where no joint is labelled (mobpose.oks)."""
    var = (2 * _sigmas().to(pred)) ** 2
    d2 = ((pred - gt) ** 2).sum(-1)
    e = torch.exp(-d2 / (2 * area.clamp(min=1.0)[..., None] * var))
    lab = labelled.to(pred)
    return (e * lab).sum(-1) / lab.sum(-1).clamp(min=1.0)


def box_iou_torch(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU (N, M) of xyxy boxes a (N, 4) and b (M, 4)."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None] - inter).clamp(min=1e-9)


def giou(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairwise (row i of a with row i of b) IoU and generalised IoU of xyxy boxes (N, 4)."""
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    union = (area_a + area_b - inter).clamp(min=1e-9)
    iou = inter / union
    hull = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).clamp(min=0).prod(-1)
    return iou, iou - (hull - union) / hull.clamp(min=1e-9)


@torch.no_grad()
def simota(prior: torch.Tensor, score_logit: torch.Tensor, boxes: torch.Tensor, coarse: torch.Tensor,
           gt_boxes: torch.Tensor, gt_kp: torch.Tensor, gt_lab: torch.Tensor, *, center_radius: float = 2.5,
           topk: int = 10, oks_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's positive cells and the person each is assigned to (see the module docstring).

    prior (A, 3); score_logit (A,); boxes (A, 4) and coarse (A, J, 2) decoded predictions; gt_boxes (M, 4),
    gt_kp (M, J, 2), gt_lab (M, J). Returns (cells (P,), people (P,)) int64."""
    m = len(gt_boxes)
    empty = torch.zeros(0, dtype=torch.long)
    if m == 0:
        return empty, empty
    cx, cy, s = prior[:, 0], prior[:, 1], prior[:, 2]
    in_box = ((cx[None] > gt_boxes[:, :1]) & (cx[None] < gt_boxes[:, 2:3]) & (cy[None] > gt_boxes[:, 1:2])
              & (cy[None] < gt_boxes[:, 3:4]))
    gcx = (gt_boxes[:, 0:1] + gt_boxes[:, 2:3]) / 2
    gcy = (gt_boxes[:, 1:2] + gt_boxes[:, 3:4]) / 2
    in_ctr = ((cx[None] - gcx).abs() < center_radius * s[None]) & ((cy[None] - gcy).abs() < center_radius * s[None])
    valid = (in_box | in_ctr).any(0)
    cells = torch.nonzero(valid).flatten()
    if len(cells) == 0:
        return empty, empty
    iou = box_iou_torch(gt_boxes, boxes[cells])  # (M, V)
    area = ((gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1]))[:, None].expand(m, len(cells))
    oks = oks_torch(coarse[cells][None].expand(m, -1, -1, -1), gt_kp[:, None].expand(-1, len(cells), -1, -1),
                    gt_lab[:, None].expand(-1, len(cells), -1), area)
    p = score_logit[cells].sigmoid()[None].expand(m, -1)
    cls_cost = F.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), iou, reduction="none")
    cost = cls_cost + 3.0 * -torch.log(iou + 1e-8) + oks_weight * -torch.log(oks + 1e-8)
    cost = cost + 1e5 * (~(in_box & in_ctr)[:, cells]).float()
    k = torch.topk(iou, min(topk, len(cells)), dim=1).values.sum(1).int().clamp(min=1)
    match = torch.zeros_like(cost, dtype=torch.bool)
    for g in range(m):
        match[g, torch.topk(cost[g], int(min(k[g], len(cells))), largest=False).indices] = True
    claimed = match.sum(0)
    if (claimed > 1).any():
        many = claimed > 1
        best = cost[:, many].argmin(0)
        match[:, many] = False
        match[best, torch.nonzero(many).flatten()] = True
    g_idx, v_idx = torch.nonzero(match, as_tuple=True)
    return cells[v_idx], g_idx


def mle_loss(dcc: dict[str, torch.Tensor], gt_kp: torch.Tensor, lab: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """RTMO's maximum-likelihood loss, summed over positives (mean over each one's labelled joints)."""
    scale = area.clamp(min=1.0).sqrt()[:, None, None]  # (P, 1, 1)
    sig = dcc["sigma"].clamp(min=1e-3)[..., None]  # (P, J, 1)
    like = 1.0
    for axis, prob, bins in ((0, dcc["prob_x"], dcc["bins_x"]), (1, dcc["prob_y"], dcc["bins_y"])):
        dist = (gt_kp[..., axis:axis + 1] - bins[:, None]).abs() / scale / sig  # (P, J, B)
        like = like * (prob * torch.exp(-dist / 2) / sig).sum(-1)
    nll = -torch.log(like + 1e-8)
    w = lab.float()
    return ((nll * w).sum(-1) / w.sum(-1).clamp(min=1.0)).sum()


def rtmo_loss(net: torch.nn.Module, batch: dict, weights: LossWeights = LossWeights(),
              oks_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch (mobpose.data.people.collate_people) and its parts (floats)."""
    model = getattr(net, "module", net)
    cfg = model.config
    images = batch["image"]
    dense = net(images)
    prior = priors(images.shape[-1]).to(dense)
    dec = decode_dense(dense, cfg, prior)
    cells, people, img = [], [], []
    for b in range(len(images)):
        gt_boxes = batch["boxes"][b]
        if len(gt_boxes) == 0:
            continue
        c, g = simota(prior, dec["score_logit"][b].detach(), dec["boxes"][b].detach(), dec["coarse"][b].detach(),
                      gt_boxes, batch["keypoints"][b], batch["labelled"][b], oks_weight=oks_weight)
        cells.append(c)
        people.append(g)
        img.append(torch.full_like(c, b))
    target = torch.zeros_like(dec["score_logit"])
    parts = {}
    n_pos = sum(len(c) for c in cells)
    total = dense.new_zeros(())
    if n_pos:
        ci, ii = torch.cat(cells), torch.cat(img)
        gi = torch.cat(people)
        gt_boxes = torch.cat([batch["boxes"][int(b)][g:g + 1] for b, g in zip(ii, gi, strict=True)])
        gt_kp = torch.cat([batch["keypoints"][int(b)][g:g + 1] for b, g in zip(ii, gi, strict=True)])
        gt_lab = torch.cat([batch["labelled"][int(b)][g:g + 1] for b, g in zip(ii, gi, strict=True)])
        gt_def = torch.cat([batch["defined"][int(b)][g:g + 1] for b, g in zip(ii, gi, strict=True)])
        area = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
        boxes = dec["boxes"][ii, ci]
        iou, g_iou = giou(boxes, gt_boxes)
        box_loss = (1 - g_iou).sum()
        oks_coarse = oks_torch(dec["coarse"][ii, ci], gt_kp, gt_lab, area)
        has = gt_lab.any(-1).float()
        oks_loss = ((1 - oks_coarse) * has).sum()
        vis_logit = dec["visibility_logit"][ii, ci]
        vis = F.binary_cross_entropy_with_logits(vis_logit, gt_lab.float(), reduction="none")
        vis_loss = ((vis * gt_def).sum(-1) / gt_def.sum(-1).clamp(min=1)).sum()
        out = model.dcc(dec["pose"][ii, ci], boxes.detach(), prior[ci, :2])
        mle = mle_loss(out, gt_kp, gt_lab, area)
        with torch.no_grad():
            oks_dcc = oks_torch(out["keypoints"], gt_kp, gt_lab, area)
            quality = torch.where(has > 0, (iou + oks_dcc) / 2, iou)
        target[ii, ci] = quality.to(target)
        total = (weights.box * box_loss + weights.oks * oks_loss + weights.visibility * vis_loss
                 + weights.mle * mle) / n_pos
        parts = {"box": box_loss.item() / n_pos, "oks": oks_loss.item() / n_pos, "vis": vis_loss.item() / n_pos,
                 "mle": mle.item() / n_pos, "iou": iou.mean().item(), "oks_dcc": oks_dcc.mean().item()}
    score_loss = F.binary_cross_entropy_with_logits(dec["score_logit"], target, reduction="sum") / max(n_pos, 1)
    total = total + weights.score * score_loss
    parts.update({"score": score_loss.item(), "positives": n_pos})
    return total, parts


def _val_items(count: int, size: int) -> list[dict]:
    from ..data.people import val_set

    items = []
    for kind in ("mosaic", "paste"):
        ds = val_set(kind, count=count, size=size)
        items += [ds[i] for i in range(len(ds))]
    return items


@torch.no_grad()
def detect_items(model: torch.nn.Module, items: list[dict], *, score_threshold: float = 0.3, nms_iou: float = 0.65,
                 batch_size: int = 16, low_threshold: float = 0.05) -> list[dict]:
    """The model on composed items (square images at the network's input: no letterbox), post-processed by
    the runtime's numpy path (mobpose.runtime.people.postprocess) at `low_threshold` (for AP); each item's
    prediction dict also gets ``found`` (scores >= `score_threshold`)."""
    from ..data.synthetic.dataset import normalise_crop
    from ..runtime.people import postprocess

    model.eval()
    cfg = dataclasses.asdict(model.config)
    w = {k[4:]: v.float().numpy() for k, v in model.state_dict().items() if k.startswith("dcc.")}
    out = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        images = torch.from_numpy(np.stack([normalise_crop(it["image"]) for it in chunk]))
        dense = model(images).numpy()
        for it, d in zip(chunk, dense, strict=True):
            p = postprocess(d, cfg, w, images.shape[-1], score_threshold=low_threshold, nms_iou=nms_iou)
            out.append({"scores": p.scores, "boxes": p.boxes, "keypoints": p.keypoints,
                        "found": p.scores >= score_threshold, "gt_keypoints": it["keypoints"],
                        "gt_labelled": it["labelled"], "gt_boxes": it["boxes"], "kind": it["kind"]})
    return out


def score_detections(preds: list[dict], score_threshold: float = 0.3) -> dict[str, float]:
    """Recall at IoU 0.5 (people found at `score_threshold`), AP, AP50 over OKS, per kind and overall."""
    from ..oks import average_precision, box_recall

    report: dict[str, float] = {}
    for kind in sorted({p["kind"] for p in preds}) + ["all"]:
        sel = [p for p in preds if kind in ("all", p["kind"])]
        ap = average_precision(sel)
        found = [{"boxes": p["boxes"][p["scores"] >= score_threshold], "gt_boxes": p["gt_boxes"]} for p in sel]
        report[f"{kind}_recall"] = box_recall(found, 0.5)
        report[f"{kind}_ap"] = ap["AP"]
        report[f"{kind}_ap50"] = ap["AP50"]
        report[f"{kind}_people"] = ap["people"]
    return report


def evaluate_rtmo(model: torch.nn.Module, *, count: int = 200, size: int | None = None,
                  score_threshold: float = 0.3) -> dict[str, float]:
    """Recall (IoU 0.5) and AP (OKS) on `count` fixed LSPET val mosaics and `count` pastes (module docstring)."""
    items = _val_items(count, size or model.config.input_size)
    return score_detections(detect_items(model, items, score_threshold=score_threshold), score_threshold)


def train_rtmo(out_dir: str, *, model_name: str = "rtmo_mnv2", model_kwargs: dict | None = None,
               train: TrainConfig, samples_per_epoch: int = 3200, size: int = 256, kinds=("mosaic", "paste", "render"),
               weights=(0.4, 0.45, 0.15), imagenet: str | None = "fetch", init: str | None = None,
               eval_count: int = 64, seed: int = 0, progress: bool = True, run_info: dict | None = None,
               loss_weights: LossWeights = LossWeights()) -> dict:
    """Trains RTMO on composed images of `size` px (resumable in `out_dir`); validates each epoch on
    `eval_count` LSPET val mosaics and as many pastes at the model's input size (best by 1 - AP)."""
    from ..data.people import PeopleConfig, PeopleDataset, collate_people

    torch.manual_seed(train.seed)
    model = create_model(model_name, **(model_kwargs or {}))
    if init:
        from ..pretrained import model_from_file

        model.load_state_dict(model_from_file(init).state_dict())
        logger.info("initialised from %s", init)
    elif imagenet and model.config.backbone == "mobilenetv2":
        model.load_imagenet(None if imagenet == "fetch" else imagenet)
        logger.info("backbone initialised from ImageNet (%s)", imagenet)
    poses = None
    if "render" in kinds and dict(zip(kinds, weights, strict=True))["render"] > 0:
        from ..data.cmu import load_cmu
        from ..data.synthetic.dataset import pose_pool

        poses = pose_pool(load_cmu(split="train"), 30.0)
    dataset = PeopleDataset(samples_per_epoch, seed=seed, config=PeopleConfig(size=size, kinds=tuple(kinds),
                                                                              weights=tuple(weights)), poses=poses)
    val = _val_items(eval_count, model.config.input_size) if eval_count else []

    def validate(m):
        r = score_detections(detect_items(m, val))
        return {**r, "one_minus_ap": 1.0 - r["all_ap"]}

    def loss_fn(net, batch):
        loss, _parts = rtmo_loss(net, batch, loss_weights)
        return loss

    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(model.config).items()}
    return fit(model, model_name=model_name, model_config=cfg, dataset=dataset, collate=collate_people,
               loss_fn=loss_fn, config=train, out_dir=out_dir, validate=validate if val else None,
               best_metric="one_minus_ap" if val else None, progress=progress,
               run_info={"stage": "rtmo", "size": size, "kinds": list(kinds), "weights": list(weights),
                         "samples_per_epoch": samples_per_epoch, **(run_info or {})})
