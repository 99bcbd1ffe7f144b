"""Golden fixtures: small inputs and the PyTorch outputs of the `test_` variants and of the shipped models.

Written by ``python scripts/make_golden.py`` into tests/fixtures/golden/ (one compressed .npz per case, a few
kilobytes each, committed) and read by tests/test_golden.py, which checks that today's PyTorch models,
the C++ core and the exported TFLite files still give these outputs (tolerances: tests/tolerances.py).

The test variants are built from fixed seeds (`seeded_test_model`), with weights spread away from their
initialisation so that every layer matters (peaked IPEM heatmaps, a non-identity PRM, trained-like
BatchNorm statistics in the lifter). Shipped models are loaded by name; inputs come from fixed seeds
(poses and keypoints of the CMU test split where the model needs realistic values).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

__all__ = ["CHAIN_CASES", "TEST_CASES", "golden_inputs", "make_golden", "reference_outputs", "seeded_test_model"]

TEST_CASES = ("ipem_test", "prm_test_causal", "prm_test_centred", "lifter_test")
"""The test-variant cases; shipped models are cases named after them (e.g. 'videopose3d-27')."""
CHAIN_CASES = TEST_CASES + ("ipem_mnv2_test", "rtmo_test", "rtmo_mnv2_test", "poseresnet_test")
"""Also the MobileNetV2 IPEM, the two RTMO backbones and PoseResNet at test size: in the parity chain, not in the
golden fixtures (the MobileNetV2 ones' 2+ M parameters would make large files)."""


def seeded_test_model(case: str) -> torch.nn.Module:
    """The seeded test-size model of `case` (one of CHAIN_CASES), in eval mode."""
    from ..models import create_model

    if case in ("ipem_test", "ipem_mnv2_test"):
        torch.manual_seed(0)
        m = (create_model("convnextpose_test", logit_scale=4.0) if case == "ipem_test" else
             create_model("ipem_mobilenetv2", input_size=64, head_channels=16, depth_bins=8, logit_scale=4.0)).eval()
        with torch.no_grad():  # spatially varied, peaked heatmaps, as a trained model's are
            for mod in m.modules():
                if isinstance(mod, torch.nn.Conv2d):
                    mod.weight.normal_(0, 1.0 / mod.weight[0].numel() ** 0.5)
            m.final.weight.mul_(8.0)
        return m
    if case in ("prm_test_causal", "prm_test_centred"):
        torch.manual_seed(1)
        m = create_model("prm_test", causal=case.endswith("causal")).eval()
        with torch.no_grad():  # away from the identity start (zero head), so every layer matters
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        return m
    if case == "lifter_test":
        torch.manual_seed(2)
        m = create_model("videopose3d_test").eval()
        with torch.no_grad():  # trained-like BatchNorm statistics
            for mod in m.modules():
                if isinstance(mod, torch.nn.BatchNorm1d):
                    mod.running_mean.normal_(0, 0.1)
                    mod.running_var.uniform_(0.5, 2.0)
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.normal_(0, 0.1)
        return m
    if case in ("rtmo_test", "rtmo_mnv2_test"):
        torch.manual_seed(3)
        m = (create_model("rtmo_test") if case == "rtmo_test" else
             create_model("rtmo_mnv2", input_size=64, neck_channels=16, pose_channels=16, dcc_dim=16, gau_s=8,
                          spe_channels=8, x_bins=24, y_bins=32)).eval()
        with torch.no_grad():  # trained-like BatchNorm statistics, so that every layer matters
            for mod in m.modules():
                if isinstance(mod, torch.nn.BatchNorm2d):
                    mod.running_mean.normal_(0, 0.1)
                    mod.running_var.uniform_(0.5, 2.0)
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.normal_(0, 0.1)
        return m
    if case == "poseresnet_test":
        torch.manual_seed(4)
        m = create_model("poseresnet_test").eval()
        with torch.no_grad():  # trained-like statistics and a head far from its 0.001-std start
            for mod in m.modules():
                if isinstance(mod, torch.nn.BatchNorm2d):
                    mod.running_mean.normal_(0, 0.1)
                    mod.running_var.uniform_(0.5, 2.0)
                elif isinstance(mod, torch.nn.ConvTranspose2d | torch.nn.Conv2d) and mod.weight.std() < 0.01:
                    mod.weight.normal_(0, 1.0 / mod.weight[0].numel() ** 0.5)
        return m
    raise ValueError(f"unknown test case {case!r}; known: {', '.join(CHAIN_CASES)}")


def _kind(model: torch.nn.Module) -> str:
    from ..models.convnextpose import ConvNeXtPose
    from ..models.prm import PRM
    from ..models.rtmo import RTMO
    from ..models.videopose3d import TemporalModel

    for cls, kind in ((ConvNeXtPose, "ipem"), (PRM, "prm"), (TemporalModel, "lifter"), (RTMO, "rtmo")):
        if isinstance(model, cls):
            return kind
    raise ValueError(f"no golden fixture for {type(model).__name__}")


def golden_inputs(model: torch.nn.Module, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for `model`, named as its exported file's inputs. IPEM: a (1, S, S, 3) 0-255 crop (a
    synthetic render for 256-px models, random pixels for test sizes); RTMO: a (1, 128, 128, 3) 0-255 image (LSPET val
    people pasted onto a background); PRM: (1, T, 17, 3) mm
    (noisy CMU-test poses); lifter: (1, R, 17, 2) normalised keypoints of a CMU-test clip."""
    rng = np.random.default_rng(seed)
    kind = _kind(model)
    if kind == "rtmo":  # LSPET val people pasted onto a background (random pixels without the data), 128 px: the
        s = 128  # network is fully convolutional, and a fixture at its 320 px would not be small
        try:
            from ..data.people import val_set

            return {"image": val_set("paste", count=1, seed=seed, size=s)[0]["image"][None].astype(np.float32)}
        except FileNotFoundError:
            return {"image": rng.integers(0, 256, (1, s, s, 3)).astype(np.float32)}
    if kind == "ipem":
        s = model.config.input_size
        if s < 128:
            return {"image": rng.integers(0, 256, (1, s, s, 3)).astype(np.float32)}
        from ..data.synthetic import EngineConfig, make_sample

        pose = _cmu_test_poses(1, seed)[0]
        # sphere bodies: the stored fixtures were made from them, and a regenerated one must match its record
        engine = EngineConfig(augment=False, crop_size=s, heatmap_size=model.heatmap_size, bodies="spheres")
        sample = make_sample(rng, pose, engine)
        return {"image": sample["crop"][None].astype(np.float32)}
    if kind == "prm":
        t = model.config.num_frames
        poses = _cmu_test_poses(t, seed)
        rel = poses - poses[:, :1]
        return {"poses": (rel + rng.normal(0, 30, rel.shape))[None].astype(np.float32)}
    r = model.receptive_field
    poses = _cmu_test_poses(r, seed) + np.array([0.0, 0.0, 4000.0], np.float32)  # 4 m in front of a camera
    return {"keypoints": (poses[..., :2] / poses[..., 2:])[None].astype(np.float32)}


def _cmu_test_poses(frames: int, seed: int) -> np.ndarray:
    """`frames` consecutive frames (T, 17, 3) mm of the CMU test split, centred, in camera-like axes
    (x right, y down, z away from the viewer; the CMU world has z up)."""
    from ..data.cmu import load_cmu

    seqs = load_cmu(split="test")
    seq = seqs[seed % len(seqs)]
    pos = seq.positions[:frames].astype(np.float32)
    if len(pos) < frames:
        pos = np.concatenate([pos, np.repeat(pos[-1:], frames - len(pos), 0)])
    pos = pos - pos[:, :1].mean(0, keepdims=True)
    return np.stack([pos[..., 0], -pos[..., 2], pos[..., 1]], axis=-1)


@torch.no_grad()
def reference_outputs(model: torch.nn.Module, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The PyTorch training form's outputs, named as the exported file's outputs (joints in heatmap
    units and confidence for the IPEM, plus its heatmaps' logit range; the refined anchor frame for
    the PRM; the lifted frame in mm for the lifter; RTMO's dense output)."""
    kind = _kind(model)
    if kind == "ipem":
        from ..functional import soft_argmax_3d
        from ..models.convnextpose import normalize_images

        x = normalize_images(torch.from_numpy(inputs["image"]).to(torch.uint8))
        hm = model.forward_heatmaps(x)
        joints, peak = soft_argmax_3d(hm, model.softargmax_mode, return_peak=True)
        return {"joints": joints.reshape(1, -1).numpy(), "confidence": peak.numpy(),
                "logit_range": np.array([hm.min(), hm.max()], np.float32)}
    if kind == "rtmo":
        from ..models.convnextpose import normalize_images

        return {"output_0": model(normalize_images(torch.from_numpy(inputs["image"]).to(torch.uint8))).numpy()}
    if kind == "prm":
        c = model.config
        anchor = c.num_frames - 1 if c.causal else c.num_frames // 2
        out = model(torch.from_numpy(inputs["poses"]))[:, anchor]
        return {"output_0": out.reshape(1, -1).numpy()}
    out = model(torch.from_numpy(inputs["keypoints"]))[:, 0] * 1000.0
    return {"output_0": out.reshape(1, -1).numpy()}


def make_golden(out_dir: str | os.PathLike, shipped: bool = True) -> list[Path]:
    """Writes one .npz per test case (and per shipped model when `shipped`) into `out_dir`."""
    from ..pretrained import list_pretrained, load_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = [(c, seeded_test_model(c)) for c in TEST_CASES]
    if shipped:
        cases += [(name, load_model(name).eval()) for name in list_pretrained()]
    written = []
    for case, model in cases:
        inputs = golden_inputs(model)
        outputs = reference_outputs(model, inputs)
        path = out_dir / f"{case}.npz"
        np.savez_compressed(path, **{f"in_{k}": v for k, v in inputs.items()},
                            **{f"out_{k}": v for k, v in outputs.items()})
        logger.info("wrote %s (%d bytes)", path, path.stat().st_size)
        written.append(path)
    return written
