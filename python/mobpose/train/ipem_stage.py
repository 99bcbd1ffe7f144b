"""Stage 1: the IPEM (ConvNeXtPose) trained alone, per frame, with L1 on joint coordinates.

Samples are dicts: `image` (3, S, S) float32 normalised crop, `target` (J, 3) joint coordinates in
heatmap units (x, y, z as the soft-argmax returns them; `mobpose.models.decode.encode_pose` makes them
from camera-space millimetres), and optionally `mask` (J, 3) (0 where a coordinate is unknown, e.g.
z for 2D-only data, as the ConvNeXtPose recipe mixes 2D datasets in). The loss is the mean absolute
error over the kept coordinates (DESIGN.md section 2). The image source (the synthetic engine) and its
augmentations live in mobpose.data; this module is the recipe around `loop.fit`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict

import torch

from ..losses import l1_coordinate_loss
from ..models import create_model
from .loop import TrainConfig, fit

__all__ = ["collate_ipem", "ipem_recipe", "train_ipem"]

logger = logging.getLogger(__name__)


def ipem_recipe(epochs: int = 70, batch_size: int = 32) -> TrainConfig:
    """ConvNeXtPose's published schedule: AdamW lr 1e-3, weight decay 0.1, 5 warm-up epochs, cosine to 1e-6."""
    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=1e-3, weight_decay=0.1, schedule="cosine",
                       warmup_epochs=min(5.0, epochs / 4), min_lr=1e-6)


def collate_ipem(items: list[dict]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Stacks samples into (images (B, 3, S, S), targets (B, J, 3), masks (B, J, 3) or None)."""
    images = torch.stack([torch.as_tensor(i["image"], dtype=torch.float32) for i in items])
    targets = torch.stack([torch.as_tensor(i["target"], dtype=torch.float32) for i in items])
    masks = None
    if "mask" in items[0]:
        masks = torch.stack([torch.as_tensor(i["mask"], dtype=torch.float32) for i in items])
    return images, targets, masks


def train_ipem(
    out_dir: str,
    dataset: Sequence[dict],
    *,
    model_name: str = "convnextpose_xs",
    model_kwargs: dict | None = None,
    train: TrainConfig | None = None,
    validate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    best_metric: str | None = None,
    run_info: dict | None = None,
    progress: bool = True,
) -> dict:
    """Trains an IPEM on `dataset` (resumable in `out_dir`); returns the loop's summary."""
    model = create_model(model_name, **(model_kwargs or {}))
    train = train or ipem_recipe()

    def loss_fn(net, batch):
        images, targets, masks = batch
        return l1_coordinate_loss(net(images), targets, masks)

    return fit(
        model, model_name=model_name, model_config=_jsonable(asdict(model.config)), dataset=dataset,
        collate=collate_ipem, loss_fn=loss_fn, config=train, out_dir=out_dir, validate=validate,
        best_metric=best_metric, run_info={"stage": 1, **(run_info or {})}, progress=progress,
    )


def _jsonable(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
