"""Stage 2: the PRM trained alone on sequences of per-frame 3D estimates, and its CMU-17 evaluation.

Inputs are root-relative camera-space poses (mm) of the CMU motion seen by virtual cameras. Until a
trained IPEM exists (and as a documented option afterwards) they are the ground truth corrupted by
`mobpose.data.EstimatorNoise`, which imitates a per-frame estimator (per-joint jitter, correlated
drift, larger depth error, occasional limb swaps and outliers); the checkpoint records which input
was used ("input": "noisy-gt" with the noise parameters). Targets are the clean poses.

Training data: the CMU train split resampled to `fps`, `views` random cameras per sequence, each with
its own random bone lengths (log-normal, sigma `bone_sigma`); a new noise draw for every window in
every epoch, and a random left/right flip (p = 0.5). `noise_levels` (default (1,)): each window's noise
is the default noise scaled by a level drawn from the list (jitter, drift and outlier sizes; the rates
stay), so that one PRM sees estimators better and worse than the protocol's.

The mixed recipe (`ipem` set and `mix_noisy`): the training windows of the IPEM's outputs on rendered
clips and the noisy-ground-truth windows together, validated on both protocols (the IPEM's rendered
test clips and the noisy ground truth); the best checkpoint is the one with the lowest mean of the two
refined/input MPJPE ratios, so that one shipped PRM helps whatever it is given.

CMU-17 protocol (evaluation): the CMU test split at `fps`, the four `protocol_cameras(seed=0)`
(moved back until the whole clip is in view), one fixed noise draw per clip and camera (seed 0),
every frame an output: causal models use the window ending at the frame, centred ones the window
centred on it (clip edges replicated). Metrics per action and overall: MPJPE, P-MPJPE, PA-MPJPE,
N-MPJPE, MPJVE (mobpose.metrics; protocol names there), for the input and for the refined poses.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..data import EstimatorNoise, corrupt, load_cmu, make_views, protocol_cameras, random_bone_scale, random_camera
from ..data.motion import resample
from ..data.synthetic.scene import DEFAULT_BODIES
from ..losses import prm_loss
from ..models import create_model
from ..models.prm import PRM, config_dict
from ..skeleton import H36M_17
from .evaluation import format_report, progress_bar, report_by_action
from .loop import TrainConfig, fit

__all__ = [
    "ABLATION", "PRMDataConfig", "build_ipem_training_set", "build_training_set", "evaluate_prm", "final_report",
    "format_report", "load_prm", "protocol_set", "refine_clip", "run_ablation", "scaled_noise", "test_sequences",
    "train_prm",
    "training_views",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PRMDataConfig:
    """How stage-2 data is made (see the module docstring)."""

    fps: float = 30.0
    views: int = 4
    bone_sigma: float = 0.05
    stride: int = 2
    flip: bool = True
    noise: EstimatorNoise = field(default_factory=EstimatorNoise)
    max_sequences: int = 0  # > 0: only the first N train sequences (tests, smoke runs)
    seed: int = 0
    ipem: str = ""  # an IPEM checkpoint: train and evaluate on its outputs instead of noisy ground truth
    noise_levels: tuple[float, ...] = (1.0,)  # factors on the noise's sizes, one drawn per training window
    mix_noisy: bool = False  # with `ipem`: also the noisy-ground-truth windows (the mixed recipe)
    bodies: str = DEFAULT_BODIES  # with `ipem`: the people of the rendered clips ("mesh" or "spheres")

    def __post_init__(self) -> None:
        levels = tuple(float(v) for v in self.noise_levels)
        if not levels or any(not np.isfinite(v) or v < 0 for v in levels):
            raise ValueError(f"noise_levels must be non-negative numbers, got {self.noise_levels}")
        object.__setattr__(self, "noise_levels", levels)
        if self.mix_noisy and not self.ipem:
            raise ValueError("mix_noisy needs an IPEM (its outputs are mixed with the noisy ground truth)")

    def describe(self) -> dict:
        d = asdict(self)
        if self.ipem and not self.mix_noisy:
            d.pop("noise")
            d["input"] = "ipem"
        else:
            d["noise"] = self.noise.describe()
            d["input"] = "ipem+noisy-gt" if self.ipem else "noisy-gt"
        return d


def scaled_noise(noise: EstimatorNoise, level: float) -> EstimatorNoise:
    """`noise` with its sizes (jitter, drift, outlier) times `level`; its rates unchanged."""
    from dataclasses import replace

    return replace(noise, jitter_mm=noise.jitter_mm * level, drift_mm=noise.drift_mm * level,
                   outlier_mm=noise.outlier_mm * level)


def _root_relative(poses: np.ndarray) -> np.ndarray:
    return poses - poses[:, :1]


def training_views(fps: float, views: int, bone_sigma: float, seed: int, max_sequences: int = 0):
    """Yields PoseViews of the CMU train split at `fps`: `views` random cameras per sequence, each
    with its own random bone lengths (shared by the PRM and the lifter recipes)."""
    sequences = [resample(s, fps) for s in load_cmu(split="train")]
    if max_sequences:
        sequences = sequences[:max_sequences]
    rng = np.random.default_rng(seed)
    for seq in sequences:
        for _ in range(views):
            positions = random_bone_scale(seq.positions, H36M_17, rng, sigma=bone_sigma)
            yield make_views(positions, random_camera(rng), fit=True)


def build_ipem_training_set(clips, data: PRMDataConfig, window: int, causal: bool):
    """Windows of IPEM outputs (input) and clean poses (target) from `ipem_stage.predict_clips` tuples;
    random left/right flips per item."""
    from ..data import PoseWindowDataset

    flip_idx = H36M_17.flip_indices

    def transform(x: np.ndarray, y: np.ndarray, item_rng: np.random.Generator):
        if data.flip and item_rng.random() < 0.5:
            return x[:, flip_idx] * [-1, 1, 1], y[:, flip_idx] * [-1, 1, 1]
        return x, y

    mode = "causal" if causal else "centred"
    dataset = PoseWindowDataset([c[4] for c in clips], [c[3] for c in clips], window, mode=mode, stride=data.stride,
                                transform=transform, seed=data.seed)
    logger.info("stage-2 training set (IPEM outputs): %d clips, %d windows of %d frames", len(clips), len(dataset),
                window)
    return dataset


def build_training_set(data: PRMDataConfig, window: int, causal: bool):
    """Windows of clean root-relative poses; noise and flips are drawn per item by the transform."""
    from ..data import PoseWindowDataset

    clips = [_root_relative(v.positions_rel)
             for v in training_views(data.fps, data.views, data.bone_sigma, data.seed, data.max_sequences)]
    flip_idx = H36M_17.flip_indices
    noises = [scaled_noise(data.noise, level) for level in data.noise_levels]

    def transform(x: np.ndarray, y: np.ndarray, item_rng: np.random.Generator):
        noise = noises[int(item_rng.integers(len(noises)))] if len(noises) > 1 else noises[0]
        noisy = _root_relative(corrupt(x, item_rng, noise))
        target = y
        if data.flip and item_rng.random() < 0.5:
            noisy, target = noisy[:, flip_idx] * [-1, 1, 1], target[:, flip_idx] * [-1, 1, 1]
        return noisy, target

    mode = "causal" if causal else "centred"
    dataset = PoseWindowDataset(clips, clips, window, mode=mode, stride=data.stride, transform=transform,
                                seed=data.seed)
    logger.info("stage-2 training set: %d clips, %d windows of %d frames", len(clips), len(dataset), window)
    return dataset


def test_sequences(h36m_3d: str | None = None):
    """The protocol's motion: the CMU test split ("CMU-17"), or Human3.6M S9 and S11 from a user's
    VideoPose3D-format `data_3d_h36m.npz` ("H36M-17v": the same virtual cameras, since that file has
    no cameras)."""
    if h36m_3d is None:
        return load_cmu(split="test")
    from ..data import H36M_TEST_SUBJECTS, h36m_sequences, load_h36m_3d

    return h36m_sequences(load_h36m_3d(h36m_3d, subjects=H36M_TEST_SUBJECTS))


def protocol_set(fps: float = 30.0, noise: EstimatorNoise | None = None, seed: int = 0, max_sequences: int = 0,
                 h36m_3d: str | None = None):
    """The evaluation clips: list of (action, name, camera, clean (T,17,3), noisy (T,17,3)) in mm."""
    noise = noise or EstimatorNoise()
    sequences = [resample(s, fps) for s in test_sequences(h36m_3d)]
    if max_sequences:
        sequences = sequences[:max_sequences]
    out = []
    for si, seq in enumerate(sequences):
        for ci, cam in enumerate(protocol_cameras(seed=seed)):
            clean = _root_relative(make_views(seq, cam, fit=True).positions_rel)
            noisy = _root_relative(corrupt(clean, np.random.default_rng((seed, si, ci)), noise))
            out.append((seq.action, seq.name, ci, clean, noisy))
    return out


def _windows(clip: np.ndarray, window: int, causal: bool) -> np.ndarray:
    """(T, W, J, 3): for every frame the window the model sees (edges replicated)."""
    t_len = clip.shape[0]
    past = window - 1 if causal else window // 2
    idx = np.clip(np.arange(t_len)[:, None] - past + np.arange(window)[None, :], 0, t_len - 1)
    return clip[idx]


def refine_clip(model: PRM, clip: np.ndarray, batch: int = 256) -> np.ndarray:
    """Runs the PRM over a whole clip (T, J, 3) mm, one output per frame (its window's anchor)."""
    cfg = model.config
    wins = _windows(clip, cfg.num_frames, cfg.causal)
    anchor = cfg.num_frames - 1 if cfg.causal else cfg.num_frames // 2
    outs = []
    with torch.no_grad():
        for i in range(0, len(wins), batch):
            x = torch.from_numpy(np.ascontiguousarray(wins[i: i + batch], dtype=np.float32))
            outs.append(model(x)[:, anchor].numpy())
    return np.concatenate(outs)


def evaluate_prm(model: PRM, clips, progress: bool = False) -> dict:
    """Report (see `evaluation.report_by_action`) of the input and the PRM output over the protocol clips;
    `progress`: a tqdm bar over the clips."""
    model.eval()
    return report_by_action(
        (action, clean, {"input": noisy, "refined": refine_clip(model, noisy)})
        for action, _name, _cam, clean, noisy in progress_bar(clips, total=len(clips), desc="PRM on clips",
                                                               unit="clip", enabled=progress)
    )


def load_prm(path: str) -> PRM:
    """A PRM from a weights or training checkpoint (checksum verified), in eval mode."""
    from ..pretrained import model_from_file

    model = model_from_file(path)
    if not isinstance(model, PRM):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a PRM")
    return model


# The poster's ablation on CMU-17, plus the prior's form and Adj2 (DESIGN.md section 4).
ABLATION = {
    "spatial only (2x depth)": {"blocks": "ssssssss"},
    "temporal only (2x depth)": {"blocks": "tttttttt"},
    "spatial + temporal (mul prior, Adj2)": {},
    "spatial + temporal (add prior, Adj2)": {"prior": "add"},
    "spatial + temporal (mul prior, no Adj2)": {"learn_adj": False},
    "spatial + temporal (no prior)": {"prior": "none"},
}


def run_ablation(
    out_dir: str,
    *,
    causal: bool = True,
    data: PRMDataConfig | None = None,
    train: TrainConfig | None = None,
    eval_sequences: int = 0,
    variants: dict | None = None,
    progress: bool = True,
) -> tuple[dict, str]:
    """Trains every variant (each resumable in its own sub-folder) and tabulates CMU-17 results.

    Returns:
        ({variant: {metric: value}}, a markdown table). The first row is the PRM's input.
    """
    import re
    from pathlib import Path

    variants = variants if variants is not None else ABLATION
    clips = protocol_set((data or PRMDataConfig()).fps, (data or PRMDataConfig()).noise, max_sequences=eval_sequences)
    rows: dict[str, dict] = {}
    for name, kwargs in variants.items():
        folder = Path(out_dir) / re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        train_prm(str(folder), model_kwargs={"causal": causal, **kwargs}, data=data, train=train,
                  eval_sequences=eval_sequences, progress=progress)
        model = load_prm(str(folder / "best.safetensors"))
        rep = evaluate_prm(model, clips)["all"]
        rows.setdefault("input (noisy per-frame estimate)", rep["input"])
        rows[name] = rep["refined"] | {"params": sum(p.numel() for p in model.parameters())}
    cols = ("MPJPE", "P-MPJPE", "PA-MPJPE", "MPJVE")
    lines = ["| CMU-17, " + ("causal" if causal else "centred") + " | " + " | ".join(f"{c} mm" for c in cols)
             + " | params |", "|---" * (len(cols) + 2) + "|"]
    for name, vals in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{vals[c]:.1f}" for c in cols) + f" | {vals.get('params', '')} |")
    return rows, "\n".join(lines)


def train_prm(
    out_dir: str,
    *,
    model_name: str = "prm_small",
    model_kwargs: dict | None = None,
    data: PRMDataConfig | None = None,
    train: TrainConfig | None = None,
    eval_sequences: int = 0,
    val_stride: int = 4,
    progress: bool = True,
    init: str | None = None,
) -> dict:
    """Stage 2 end to end: data, training (resumable in `out_dir`), validation, final evaluation.

    With `data.ipem` set, the inputs are that IPEM's outputs on rendered videos of the CMU clips
    (`ipem_stage.ipem_clips`, cached in `out_dir`): training on `data.views` random cameras per train
    clip, evaluation on the protocol cameras of the test clips. `init`: start from this PRM checkpoint's
    weights (e.g. the noisy-ground-truth PRM) instead of the identity initialisation.

    Each epoch validates on every `val_stride`-th protocol clip (the full protocol runs a window per
    frame: minutes on a CPU); the best checkpoint by that refined MPJPE is `out_dir/best.safetensors`.
    At the end that checkpoint is evaluated on the whole CMU-17 protocol, written to
    `out_dir/report.json` and returned under 'final' in the summary.
    """
    data = data or PRMDataConfig()
    train = train or TrainConfig(epochs=6, batch_size=64, lr=1e-3, weight_decay=0.1, schedule="cosine",
                                 warmup_epochs=0.5, min_lr=1e-5, grad_clip=1.0)
    torch.manual_seed(train.seed)  # before the model is built: its initial weights follow the seed
    model = create_model(model_name, **(model_kwargs or {}))
    cfg = model.config
    if init:
        start = load_prm(init)
        if config_dict(start.config) != config_dict(cfg):
            raise ValueError(f"--init {init} has another PRM configuration than the one being trained")
        model.load_state_dict(start.state_dict())
    if data.ipem:
        from .ipem_stage import ipem_clips

        train_clips = ipem_clips(data.ipem, "train", out_dir, cameras="random", views=data.views, fps=data.fps,
                                 seed=data.seed, max_sequences=data.max_sequences, progress=progress,
                                 bodies=data.bodies)
        dataset = build_ipem_training_set(train_clips, data, cfg.num_frames, cfg.causal)
        clips = ipem_clips(data.ipem, "test", out_dir, cameras="protocol", fps=data.fps, seed=0,
                           max_sequences=eval_sequences, progress=progress, bodies=data.bodies)
        if data.mix_noisy:
            return _train_mixed(out_dir, model, model_name, dataset, clips, data, train, eval_sequences, val_stride,
                                progress)
    else:
        dataset = build_training_set(data, cfg.num_frames, cfg.causal)
        clips = protocol_set(data.fps, data.noise, seed=0, max_sequences=eval_sequences)
    collate, loss_fn = _prm_objective(cfg.num_joints)

    def validate(m):
        rep = evaluate_prm(m, clips[::val_stride])["all"]
        return {f"{kind}_{k}": v for kind, vals in rep.items() for k, v in vals.items()}

    summary = fit(
        model, model_name=model_name, model_config=config_dict(cfg), dataset=dataset, collate=collate,
        loss_fn=loss_fn, config=train, out_dir=out_dir, validate=validate, best_metric="refined_MPJPE",
        run_info={"stage": 2, "data": data.describe()}, progress=progress,
    )
    return final_report(summary, out_dir, lambda path: evaluate_prm(load_prm(path), clips))


def _prm_objective(num_joints: int):
    """(collate, loss_fn) of stage 2: the PRM loss with the per-joint weights, in metres."""
    weights = torch.tensor(
        [1, 1, 2.5, 2.5, 1, 2.5, 2.5, 1, 1, 1, 1.5, 1.5, 4, 4, 1.5, 4, 4], dtype=torch.float32
    )[:num_joints]

    def collate(items):
        return (torch.stack([i["input"] for i in items]), torch.stack([i["target"] for i in items]))

    def loss_fn(net, batch):
        x, y = batch
        return prm_loss(net(x), y, weights=weights) / 1000.0  # mm -> m: loss of order 0.01-0.1

    return collate, loss_fn


class _Concat:
    """Two window datasets as one (indices of the first, then the second); epochs passed to both."""

    def __init__(self, first, second) -> None:
        self.parts = (first, second)

    def __len__(self) -> int:
        return len(self.parts[0]) + len(self.parts[1])

    def __getitem__(self, i: int):
        n = len(self.parts[0])
        return self.parts[0][i] if i < n else self.parts[1][i - n]

    def set_epoch(self, epoch: int) -> None:
        for part in self.parts:
            if hasattr(part, "set_epoch"):
                part.set_epoch(epoch)


def _train_mixed(out_dir, model, model_name, ipem_set, ipem_test, data, train, eval_sequences, val_stride, progress):
    """The mixed recipe (module docstring): IPEM-output and noisy-ground-truth windows, both protocols."""
    import json
    import os
    from pathlib import Path

    cfg = model.config
    dataset = _Concat(ipem_set, build_training_set(data, cfg.num_frames, cfg.causal))
    gt_test = protocol_set(data.fps, data.noise, seed=0, max_sequences=eval_sequences)
    collate, loss_fn = _prm_objective(cfg.num_joints)

    def both(m, stride: int) -> dict:
        return {"noisy_gt": evaluate_prm(m, gt_test[::stride]), "ipem": evaluate_prm(m, ipem_test[::stride])}

    def validate(m):
        out, ratios = {}, []
        for name, rep in both(m, val_stride).items():
            a = rep["all"]
            out.update({f"{name}_{kind}_{k}": v for kind, vals in a.items() for k, v in vals.items()})
            ratios.append(a["refined"]["MPJPE"] / a["input"]["MPJPE"])
        out["mpjpe_ratio"] = float(np.mean(ratios))  # mean over the two protocols of refined / input
        return out

    summary = fit(
        model, model_name=model_name, model_config=config_dict(cfg), dataset=dataset, collate=collate,
        loss_fn=loss_fn, config=train, out_dir=out_dir, validate=validate, best_metric="mpjpe_ratio",
        run_info={"stage": 2, "data": data.describe()}, progress=progress,
    )
    best = Path(out_dir) / "best.safetensors"
    if int(os.environ.get("RANK", "0")) != 0 or not best.exists():
        return summary
    reports = both(load_prm(str(best)), 1)
    (Path(out_dir) / "report.json").write_text(json.dumps(reports, indent=2))
    summary["final"] = {name: rep["all"] for name, rep in reports.items()}
    for name, rep in reports.items():
        logger.info("final on %s (%s):\n%s", name, best, format_report(rep))
    return summary


def final_report(summary: dict, out_dir: str, evaluate) -> dict:
    """Evaluates out_dir/best.safetensors on the whole protocol (rank 0 only), writes report.json."""
    import json
    import os
    from pathlib import Path

    best = Path(out_dir) / "best.safetensors"
    if int(os.environ.get("RANK", "0")) != 0 or not best.exists():
        return summary
    report = evaluate(str(best))
    (Path(out_dir) / "report.json").write_text(json.dumps(report, indent=2))
    summary["final"] = report["all"]
    logger.info("final (%s):\n%s", best, format_report(report))
    return summary
