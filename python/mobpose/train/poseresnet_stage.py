"""PoseResNet (SimpleBaseline) trained top-down on LSPET train crops, and its evaluation.

Loss: the paper's, the mean squared error of the heatmaps against Gaussian targets, each joint weighted by its
target weight (labelled, visible, inside the crop; mobpose.data.topdown), x 0.5. Schedule: AdamW (the paper
uses Adam at 1e-3 with steps; mobpose's runs are cosine) with a short warm-up.

Evaluation (:func:`evaluate_lspet`): LSPET val photos with the labelled person's box given
(mobpose.lspet.person_box), the runtime's crop and decoding (mobpose.runtime.topdown.TopDown), PCK@0.2 of the
torso by mobpose.lspet.pck (the same code and boxes as ``mobpose eval lspet``), beside the average-pose
control. :func:`evaluate_people` scores the fixed val mosaics and pastes (mobpose.data.people.val_set) by
COCO-style AP (OKS) with the labelled boxes given, or with a detector's boxes.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import numpy as np
import torch

from ..models import create_model
from .loop import TrainConfig, fit

__all__ = ["collate_stack", "evaluate_lspet", "evaluate_people", "heatmap_loss", "train_poseresnet"]

logger = logging.getLogger(__name__)


def collate_stack(items: list[dict]) -> dict[str, torch.Tensor]:
    """Stacks items key by key (a module-level function: data-loader processes pickle it)."""
    return {k: torch.stack([i[k] for i in items]) for k in items[0]}


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """0.5 x mean over batch, joints and pixels of weight_j (pred - target)^2: pred, target (B, J, h, w),
    weight (B, J)."""
    return 0.5 * (((pred - target) ** 2).mean((2, 3)) * weight).mean()


def _lspet_rows(rows, count: int) -> list[int]:
    rows = list(rows)
    if count and count < len(rows):
        rows = rows[:: max(len(rows) // count, 1)][:count]
    return rows


def evaluate_lspet(model, *, rows=None, count: int = 0, threads: int = 1, progress: bool = False,
                   keep: int = 0) -> dict:
    """PCK@0.2 (torso) on LSPET val (or `rows`; `count` > 0: evenly spaced ones), box given: ``model`` and
    ``control`` (mobpose.lspet.pck dicts), and the predictions in LSP order (``pixels``, ``rows``, ``boxes``:
    the npz of a ``--peer`` of ``mobpose eval lspet``)."""
    from ..lspet import H36M_OF_LSP, TRAIN_ROWS, VAL_ROWS, load, mean_pose, pck, person_box
    from ..runtime.image import load_image
    from ..runtime.topdown import TopDown
    from ..skeleton import H36M_17
    from .evaluation import progress_bar

    data = load()
    names = data["names"]
    to_h36 = [list(H36M_17.joint_names).index(H36M_OF_LSP[n]) for n in names]
    rows = _lspet_rows(VAL_ROWS if rows is None else rows, count)
    td = TopDown(model, threads=threads, fill=False)
    joints = data["joints"]
    preds, boxes, examples = [], [], []
    for r in progress_bar(rows, total=len(rows), desc="LSPET", unit="photo", enabled=progress):
        img = load_image(data["folder"] / "images" / data["images"][r])
        box = person_box(joints[r])
        kp, _ = td(img, box[None])
        preds.append(kp[0, to_h36])
        boxes.append(box)
        if len(examples) < keep:
            examples.append({"row": r, "image": img, "pixels_h36m": kp[0], "box": box})
    gt = joints[rows]
    control_pose = mean_pose(joints[list(TRAIN_ROWS)])
    control = np.stack([control_pose * b[2:] + b[:2] for b in boxes])
    return {"model": pck(np.stack(preds), gt, names), "control": pck(control, gt, names),
            "pixels": np.stack(preds).astype(np.float32), "rows": np.asarray(rows), "boxes": np.stack(boxes),
            "examples": examples}


def evaluate_people(model, *, count: int = 200, size: int = 320, boxes_from=None, threads: int = 1) -> dict:
    """COCO-style AP (OKS) of the top-down model on `count` fixed val mosaics and as many pastes: with the
    labelled boxes (``boxes_from`` None) or with a detector's (a callable image -> mobpose.runtime.people.People,
    its boxes and scores used)."""
    from ..data.people import val_set
    from ..oks import average_precision
    from ..runtime.topdown import TopDown

    td = TopDown(model, threads=threads)
    report = {}
    for kind in ("mosaic", "paste"):
        ds = val_set(kind, count=count, size=size)
        ims = []
        for i in range(len(ds)):
            it = ds[i]
            if boxes_from is None:
                xyxy, scores = it["boxes"], np.ones(len(it["boxes"]))
            else:
                found = boxes_from(it["image"])
                xyxy, scores = found.boxes, found.scores
            xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], 1) if len(xyxy) else np.zeros((0, 4))
            kp, ks = td(it["image"], xywh)
            ims.append({"scores": scores * (ks.mean(1) if len(ks) else 1.0), "keypoints": kp,
                        "gt_keypoints": it["keypoints"], "gt_labelled": it["labelled"], "gt_boxes": it["boxes"]})
        ap = average_precision(ims)
        report[f"{kind}_ap"], report[f"{kind}_ap50"] = ap["AP"], ap["AP50"]
    return report


def train_poseresnet(out_dir: str, *, model_name: str = "poseresnet_mnv2", model_kwargs: dict | None = None,
                     train: TrainConfig, samples_per_epoch: int = 9000, imagenet: str | None = "fetch",
                     init: str | None = None, eval_count: int = 200, seed: int = 0, progress: bool = True) -> dict:
    """Trains PoseResNet on LSPET train crops (resumable in `out_dir`); validates each epoch on `eval_count`
    evenly spaced LSPET val photos (best by 1 - PCK@0.2)."""
    from ..data.topdown import TopDownLSPET

    torch.manual_seed(train.seed)
    model = create_model(model_name, **(model_kwargs or {}))
    if init:
        from ..pretrained import model_from_file

        model.load_state_dict(model_from_file(init).state_dict())
        logger.info("initialised from %s", init)
    elif imagenet and model.config.backbone == "mobilenetv2":
        model.load_imagenet(None if imagenet == "fetch" else imagenet)
        logger.info("backbone initialised from ImageNet (%s)", imagenet)
    c = model.config
    dataset = TopDownLSPET(samples_per_epoch, (c.input_height, c.input_width), c.heatmap_size, sigma=c.sigma,
                           seed=seed)

    def loss_fn(net, batch):
        return heatmap_loss(net(batch["image"]), batch["target"], batch["weight"])

    def validate(m):
        r = evaluate_lspet(m, count=eval_count)
        return {"lspet_pck": r["model"]["pck"], "lspet_limbs": r["model"]["limbs"],
                "one_minus_pck": 1.0 - r["model"]["pck"]}

    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(c).items()}
    return fit(model, model_name=model_name, model_config=cfg, dataset=dataset, collate=collate_stack, loss_fn=loss_fn,
               config=train, out_dir=out_dir, validate=validate if eval_count else None,
               best_metric="one_minus_pck" if eval_count else None, progress=progress,
               run_info={"stage": "poseresnet", "data": "LSPET train rows 0-8999",
                         "samples_per_epoch": samples_per_epoch})
