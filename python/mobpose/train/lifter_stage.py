"""The VideoPose3D lifter trained on CMU 2D projections, and its CMU-17 evaluation.

Inputs are 2D keypoints in normalised camera coordinates, ((u - cx) / fx, (v - cy) / fy): the
projection divided out, so one network serves every camera and image size (VideoPose3D normalises
pixels by the image width instead, which ties it to the Human3.6M cameras). Targets are root-relative
camera-space poses in metres (reported in mm). Training windows have exactly the receptive field R
and train the strided (optimised) path on the window's output frame (its centre, or its last frame for
the causal model); evaluation runs the dilated path over whole clips with edge replication.

Training data: the CMU train split at `fps`, `views` random cameras per sequence with random bone
lengths; 2D either ground truth or, per window and epoch, corrupted by `mobpose.data.DetectorNoise`
(a detector's jitter, swaps and outliers, scaled by the person's size); random flips.
CMU-17 protocol: the same clips and cameras as the PRM's (`prm_stage.protocol_set`), evaluated with
ground-truth 2D and with noisy 2D (one fixed draw per clip and camera, seed 0).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..data import DetectorNoise, corrupt_2d, make_views, protocol_cameras
from ..data.motion import resample
from ..losses import mpjpe_loss
from ..models import create_model
from ..models.videopose3d import TemporalModel
from ..skeleton import H36M_17
from .evaluation import report_by_action
from .loop import TrainConfig, fit
from .prm_stage import final_report, test_sequences, training_views

__all__ = ["LifterDataConfig", "evaluate_lifter", "lift_clip", "lifter_protocol_set", "load_lifter", "train_lifter"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LifterDataConfig:
    """How lifter data is made (see the module docstring)."""

    fps: float = 30.0
    views: int = 4
    bone_sigma: float = 0.05
    stride: int = 2
    noisy_2d: bool = True
    flip: bool = True
    noise: DetectorNoise = field(default_factory=DetectorNoise)
    max_sequences: int = 0
    seed: int = 0

    def describe(self) -> dict:
        d = asdict(self)
        d["noise"] = self.noise.describe()
        d["input"] = "noisy-2d" if self.noisy_2d else "gt-2d"
        return d


def normalise_keypoints(pixels: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """(T, J, 2) pixels -> normalised camera coordinates with the camera's fx, fy, cx, cy."""
    fx, fy, cx, cy = intrinsics[:4]
    return ((pixels - [cx, cy]) / [fx, fy]).astype(np.float32)


def _lifter_pair(views) -> tuple[np.ndarray, np.ndarray]:
    """(normalised 2D (T,J,2), root-relative 3D mm (T,J,3)) of one PoseViews."""
    k = views.camera.intrinsics
    rel = views.positions_rel - views.positions_rel[:, :1]
    return normalise_keypoints(views.keypoints_2d, k), rel.astype(np.float32)


def build_lifter_set(data: LifterDataConfig, window: int, causal: bool):
    from ..data import PoseWindowDataset

    inputs, targets = [], []
    for views in training_views(data.fps, data.views, data.bone_sigma, data.seed, data.max_sequences):
        x, y = _lifter_pair(views)
        inputs.append(x)
        targets.append(y / 1000.0)
    flip_idx = H36M_17.flip_indices

    def transform(x: np.ndarray, y: np.ndarray, item_rng: np.random.Generator):
        if data.noisy_2d:
            x = corrupt_2d(x, item_rng, data.noise)
        if data.flip and item_rng.random() < 0.5:
            x, y = x[:, flip_idx] * [-1, 1], y[:, flip_idx] * [-1, 1, 1]
        return x, y

    return PoseWindowDataset(inputs, targets, window, mode="causal" if causal else "centred", stride=data.stride,
                             transform=transform, seed=data.seed)


def lifter_protocol_set(fps: float = 30.0, noise: DetectorNoise | None = None, seed: int = 0, max_sequences: int = 0,
                        h36m_3d: str | None = None):
    """Protocol clips for the lifter: list of (action, clean 3D mm (T,17,3), gt 2D, noisy 2D) (normalised).

    CMU test split by default; Human3.6M S9/S11 with `h36m_3d` (see `prm_stage.test_sequences`)."""
    noise = noise or DetectorNoise()
    sequences = [resample(s, fps) for s in test_sequences(h36m_3d)]
    if max_sequences:
        sequences = sequences[:max_sequences]
    out = []
    for si, seq in enumerate(sequences):
        for ci, cam in enumerate(protocol_cameras(seed=seed)):
            x, y = _lifter_pair(make_views(seq.positions, cam, fit=True))
            out.append((seq.action, y, x, corrupt_2d(x, np.random.default_rng((seed, si, ci)), noise)))
    return out


def lift_clip(model: TemporalModel, keypoints: np.ndarray) -> np.ndarray:
    """(T, J, 2) normalised keypoints -> (T, J, 3) mm, one output per frame (edges replicated)."""
    r, offset = model.receptive_field, model.frame_offset
    t_len = keypoints.shape[0]
    idx = np.clip(np.arange(-offset, t_len + r - 1 - offset), 0, t_len - 1)
    x = torch.from_numpy(np.ascontiguousarray(keypoints[idx], dtype=np.float32))[None]
    with torch.no_grad():
        out = model(x)[0].numpy() * 1000.0
    out -= out[:, :1]
    return out


def evaluate_lifter(model: TemporalModel, clips) -> dict:
    """Report with ground-truth 2D ('gt-2d') and noisy 2D ('noisy-2d') inputs."""
    model.eval()
    return report_by_action(
        (action, clean, {"gt-2d": lift_clip(model, gt), "noisy-2d": lift_clip(model, noisy)})
        for action, clean, gt, noisy in clips
    )


def load_lifter(path: str) -> TemporalModel:
    """The (dilated, sequence) lifter from a checkpoint written by `train_lifter`."""
    from .. import checkpoint as ck

    tensors, meta = ck.load(path)
    model = TemporalModel(**meta["config"])
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")} or tensors)
    return model.eval()


def train_lifter(
    out_dir: str,
    *,
    model_name: str = "videopose3d_27",
    model_kwargs: dict | None = None,
    data: LifterDataConfig | None = None,
    train: TrainConfig | None = None,
    eval_sequences: int = 0,
    progress: bool = True,
) -> dict:
    """Trains the strided path on single output frames; validates the dilated path on CMU-17 each epoch."""
    data = data or LifterDataConfig()
    train = train or TrainConfig(epochs=10, batch_size=256, lr=1e-3, weight_decay=0.0, schedule="exponential",
                                 decay=0.95)
    model = create_model(model_name, optimized=True, **(model_kwargs or {}))
    dataset = build_lifter_set(data, model.receptive_field, model.causal)
    clips = lifter_protocol_set(data.fps, data.noise, max_sequences=eval_sequences)

    def collate(items):
        return torch.stack([i["input"] for i in items]), torch.stack([i["target"][i["anchor"]] for i in items])

    def loss_fn(net, batch):
        x, y = batch
        return mpjpe_loss(net(x)[:, 0], y)

    def validate(m):
        seq_model = TemporalModel(**m.config)
        seq_model.load_state_dict(m.state_dict())
        rep = evaluate_lifter(seq_model, clips)["all"]
        return {f"{kind}_{k}": v for kind, vals in rep.items() for k, v in vals.items()}

    summary = fit(
        model, model_name=model_name, model_config=model.config, dataset=dataset, collate=collate,
        loss_fn=loss_fn, config=train, out_dir=out_dir, validate=validate, best_metric="noisy-2d_MPJPE",
        run_info={"stage": "lifter", "data": data.describe()}, progress=progress,
    )
    return final_report(summary, out_dir, lambda path: evaluate_lifter(load_lifter(path), clips))
