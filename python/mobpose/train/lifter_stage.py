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
from ..losses import bone_length_loss, mpjpe_loss, reprojection_loss
from ..models import create_model
from ..models.videopose3d import TemporalModel, make_trajectory_model
from ..skeleton import H36M_17
from .evaluation import progress_bar, report_by_action
from .loop import TrainConfig, fit
from .prm_stage import final_report, test_sequences, training_views

__all__ = [
    "LifterDataConfig", "evaluate_lifter", "evaluate_lifter_h36m", "h36m_lifter_clips", "lift_clip",
    "lifter_protocol_set", "load_lifter", "train_lifter",
]

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
    labelled_fraction: float = 1.0  # < 1: only this share of the clips keeps its 3D labels
    unlabelled: str = "semi"  # the rest: "semi" (2D-only, semi-supervised losses) or "drop" (baseline)
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.labelled_fraction <= 1.0:
            raise ValueError(f"labelled_fraction must be in (0, 1], got {self.labelled_fraction}")
        if self.unlabelled not in ("semi", "drop"):
            raise ValueError(f"unlabelled must be 'semi' or 'drop', got {self.unlabelled!r}")

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
    all_views = list(training_views(data.fps, data.views, data.bone_sigma, data.seed, data.max_sequences))
    if data.labelled_fraction < 1.0 and data.unlabelled == "drop":
        all_views = all_views[: labelled_count(data, len(all_views))]
    for views in all_views:
        x, y = _lifter_pair(views)
        inputs.append(x)
        # (T, 18, 3) metres: 17 root-relative joints, then the root's camera-space position (trajectory).
        targets.append(np.concatenate([y, views.positions_cam[:, :1]], axis=1) / 1000.0)
    flip_idx = H36M_17.flip_indices

    def transform(x: np.ndarray, y: np.ndarray, item_rng: np.random.Generator):
        if data.noisy_2d:
            x = corrupt_2d(x, item_rng, data.noise)
        if data.flip and item_rng.random() < 0.5:
            x = x[:, flip_idx] * [-1, 1]
            y = np.concatenate([y[:, flip_idx], y[:, 17:]], axis=1) * [-1, 1, 1]
        return x, y

    return PoseWindowDataset(inputs, targets, window, mode="causal" if causal else "centred", stride=data.stride,
                             transform=transform, seed=data.seed)


def labelled_count(data: LifterDataConfig, clips: int) -> int:
    """How many of the training clips (the first ones) keep their 3D labels."""
    return max(1, round(data.labelled_fraction * clips))


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


def _resample_array(a: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """(T, ...) linearly interpolated from src_fps to dst_fps."""
    t_src = np.arange(a.shape[0]) / src_fps
    t_dst = np.arange(0.0, t_src[-1] + 1e-9, 1.0 / dst_fps)
    flat = a.reshape(a.shape[0], -1)
    out = np.stack([np.interp(t_dst, t_src, flat[:, i]) for i in range(flat.shape[1])], axis=1)
    return out.reshape((len(t_dst),) + a.shape[1:]).astype(np.float32)


def h36m_lifter_clips(h36m_3d: str, h36m_2d: str, cameras_json: str, fps: float = 30.0, max_clips: int = 0):
    """Human3.6M S9/S11 with the user's own 2D file (e.g. CPN detections) and camera parameters.

    Returns (action, clean root-relative 3D mm (T,17,3), 2D normalised (T,17,2)) per clip and camera,
    resampled from 50 fps to `fps`; 2D and 3D are cut to the shorter of the two (detection files can
    hold a few more frames). The 2D is normalised with each camera's focal length and centre; lens
    distortion is ignored (Human3.6M's is small).
    """
    import json

    from ..data import H36M_TEST_SUBJECTS, h36m_cameras, h36m_views, load_h36m_2d, load_h36m_3d
    from ..data.h36m import H36M_FPS

    poses = load_h36m_3d(h36m_3d, subjects=H36M_TEST_SUBJECTS)
    keypoints, _ = load_h36m_2d(h36m_2d)
    with open(cameras_json) as f:
        cameras = h36m_cameras(json.load(f))
    clips = []
    for subject in H36M_TEST_SUBJECTS:
        if subject not in keypoints or subject not in cameras:
            raise ValueError(f"{subject} is missing from the 2D file or the camera parameters")
        for action, world in poses[subject].items():
            if action not in keypoints[subject]:
                raise ValueError(f"{h36m_2d}: no 2D for {subject} {action!r}")
            for ci, cam in enumerate(cameras[subject]):
                kp = keypoints[subject][action][ci]
                n = min(len(kp), len(world))
                rel = h36m_views(world[:n], cam).positions_rel
                rel = rel - rel[:, :1]
                x = normalise_keypoints(kp[:n], cam.intrinsics)
                clips.append((action.split(" ")[0], _resample_array(rel, H36M_FPS, fps),
                              _resample_array(x, H36M_FPS, fps)))
                if max_clips and len(clips) >= max_clips:
                    return clips
    return clips


def evaluate_lifter_h36m(model: TemporalModel, clips, progress: bool = False) -> dict:
    """Report of the lifter on `h36m_lifter_clips` (prediction kind 'h36m-2d'); `progress`: a tqdm bar."""
    model.eval()
    clips = progress_bar(clips, total=len(clips), desc="lifter on clips", unit="clip", enabled=progress)
    return report_by_action((action, clean, {"h36m-2d": lift_clip(model, x)}) for action, clean, x in clips)


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


def evaluate_lifter(model: TemporalModel, clips, progress: bool = False) -> dict:
    """Report with ground-truth 2D ('gt-2d') and noisy 2D ('noisy-2d') inputs; `progress`: a tqdm bar
    over the clips."""
    model.eval()
    return report_by_action(
        (action, clean, {"gt-2d": lift_clip(model, gt), "noisy-2d": lift_clip(model, noisy)})
        for action, clean, gt, noisy in progress_bar(clips, total=len(clips), desc="lifter on clips", unit="clip",
                                                     enabled=progress)
    )


class SemiSupervisedLifter(torch.nn.Module):
    """A pose lifter and its trajectory model (VideoPose3D's semi-supervised pair): x -> (poses, roots)."""

    def __init__(self, pose: TemporalModel) -> None:
        super().__init__()
        self.pose = pose
        self.trajectory = make_trajectory_model(pose)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pose(x), self.trajectory(x)


def load_lifter(path: str) -> TemporalModel:
    """The (dilated, sequence) pose lifter from a checkpoint written by `train_lifter`, in eval mode.

    Of a semi-supervised run's checkpoint, the pose model alone (mobpose.pretrained.model_from_checkpoint).
    """
    from ..pretrained import model_from_file

    model = model_from_file(path)
    if type(model) is not TemporalModel:
        raise ValueError(f"{path} holds a {type(model).__name__}, not a (dilated) TemporalModel")
    return model


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
    torch.manual_seed(train.seed)  # before the models are built: their initial weights follow the seed
    pose = create_model(model_name, optimized=True, **(model_kwargs or {}))
    dataset = build_lifter_set(data, pose.receptive_field, pose.causal)
    clips = lifter_protocol_set(data.fps, data.noise, max_sequences=eval_sequences)
    semi = data.labelled_fraction < 1.0 and data.unlabelled == "semi"
    # Clips (sequence x view) in the labelled share keep their 3D; the others give only 2D.
    n_clips = len(dataset.inputs)
    labelled = np.arange(n_clips) < (labelled_count(data, n_clips) if semi else n_clips)
    model = SemiSupervisedLifter(pose) if semi else pose

    def collate(items):
        x = torch.stack([i["input"] for i in items])
        y = torch.stack([i["target"][i["anchor"]] for i in items])  # (B, 18, 3)
        lab = torch.tensor([bool(labelled[int(i["sequence"])]) for i in items])
        kp = torch.stack([i["input"][i["anchor"]] for i in items])  # (B, 17, 2) the output frame's 2D
        return x, y, lab, kp

    def loss_fn(net, batch):
        x, y, lab, kp = batch
        if not semi:
            return mpjpe_loss(net(x)[:, 0], y[:, :17])
        pred, traj = net(x)
        pred, traj = pred[:, 0], traj[:, 0, 0]  # (B, 17, 3), (B, 3)
        loss = pred.new_zeros(())
        if lab.any():
            loss = loss + mpjpe_loss(pred[lab], y[lab, :17])
            # VideoPose3D weights the trajectory error by 1 / depth: far roots are harder.
            w = 1.0 / y[lab, 17, 2]
            loss = loss + (w * (traj[lab] - y[lab, 17]).norm(dim=-1)).mean()
        if (~lab).any():
            ident = torch.tensor([1.0, 1.0, 0, 0, 0, 0, 0, 0, 0])  # inputs are normalised coordinates
            root = traj[~lab]
            root = torch.cat([root[:, :2], root[:, 2:].clamp_min(0.5)], dim=-1)  # keep Z in front (m)
            loss = loss + reprojection_loss(pred[~lab], root, kp[~lab], ident)
            if lab.any():
                loss = loss + bone_length_loss(pred[~lab], H36M_17, reference=pred[lab].detach(), squared=False)
        return loss

    def validate(m):
        seq_model = TemporalModel(**pose.config)
        seq_model.load_state_dict(pose.state_dict())
        rep = evaluate_lifter(seq_model, clips)["all"]
        return {f"{kind}_{k}": v for kind, vals in rep.items() for k, v in vals.items()}

    summary = fit(
        model, model_name=model_name, model_config=pose.config, dataset=dataset, collate=collate,
        loss_fn=loss_fn, config=train, out_dir=out_dir, validate=validate, best_metric="noisy-2d_MPJPE",
        run_info={"stage": "lifter", "data": data.describe()}, progress=progress,
    )
    return final_report(summary, out_dir, lambda path: evaluate_lifter(load_lifter(path), clips))
