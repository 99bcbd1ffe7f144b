"""ConvNeXtPose: the IPEM of mobpose (initial 3D pose estimation from one person crop).

Nguyen et al., "ConvNeXtPose: A Fast Accurate Method for 3D Human Pose Estimation and its AR Fitness
Application in Mobile Devices", IEEE Access 2023.

A ConvNeXt backbone made for mobile (BatchNorm and ReLU in place of LayerNorm and GELU, no layer scale)
turns a 256x256 crop into an 8x8 feature map; a light head of depthwise-separable layers with bilinear x2
upsampling produces one 3D heatmap per joint, decoded by soft-argmax (integral regression) into
(x, y, z) in heatmap units. mobpose.models.decode maps those to pixels and camera-space millimetres.

Dimensions: B batch, J joints, D x H x W heatmap volume (depth bins x rows x columns), C channels.
Parameters and MACs (`count_macs`, convolutions only) of the registered variants:

| variant | params | GMACs |
|---|---|---|
| xs | 3.528 M | 0.815 |
| s | 7.439 M | 1.738 |
| m | 7.587 M | 2.795 |
| l | 8.380 M | 4.264 |
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..functional import SOFT_ARGMAX_MODES, soft_argmax_3d
from .registry import register_model

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ConvNeXtPose",
    "ConvNeXtPoseConfig",
    "count_macs",
    "convnextpose_l",
    "convnextpose_m",
    "convnextpose_s",
    "convnextpose_test",
    "ipem_mobilenetv2",
    "convnextpose_xs",
    "normalize_images",
]

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BACKBONES = ("convnext", "mobilenetv2")


@dataclass(frozen=True)
class ConvNeXtPoseConfig:
    """Hyperparameters of one ConvNeXtPose variant.

    Attributes:
        depths: blocks per stage (4 stages).
        dims: channels C per stage.
        head_channels: channels of the head layers.
        head_layers: number of head layers (3 in ConvNeXtPose).
        upsamples: the first `upsamples` head layers end with a bilinear x2 upsample.
        num_joints: J (18 = Human3.6M 17 + thorax).
        depth_bins: D, depth bins of the heatmap (equal to H = W in the published variants).
        drop_path_rate: stochastic depth of the last block; rises linearly from 0 over the blocks.
        softargmax_mode: 'exact', 'taylor' or 'taylor_clamped' (mobpose.functional.soft_argmax_3d).
        input_size: side of the square input crop; a multiple of 32.
        align_corners: of the bilinear upsample (True as nn.UpsamplingBilinear2d in the official code).
        logit_scale: constant factor on the heatmap logits (foldable into the final conv). The Taylor
            soft-argmax needs peak logits of order 10^2 over 32^3 bins (DESIGN.md section 3); a factor
            of about 16 lets training reach them at the usual learning rate. 1 = the published model.
        facing_bins: 0 (published), or the sectors of a training-only auxiliary head that classifies
            which way the person faces (yaw in the camera's X-Z plane) from the pooled backbone
            features: a dense signal for the cue that tells left limbs from right ones (mobpose's
            addition; unused at inference and by the exports).
        backbone: 'convnext' (the published network; `depths` and `dims` apply) or 'mobilenetv2'
            (mobpose.models.mobilenet: torchvision's MobileNetV2 layout, which loads its ImageNet
            weights; `depths` and `dims` are then unused, the head takes its 1280 channels).
    """

    depths: tuple[int, ...] = (2, 2, 6, 2)
    dims: tuple[int, ...] = (40, 80, 160, 320)
    head_channels: int = 128
    head_layers: int = 3
    upsamples: int = 2
    num_joints: int = 18
    depth_bins: int = 32
    drop_path_rate: float = 0.1
    softargmax_mode: str = "taylor"
    input_size: int = 256
    align_corners: bool = True
    logit_scale: float = 1.0
    facing_bins: int = 0
    backbone: str = "convnext"

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "dims", tuple(int(d) for d in self.dims))
        if len(self.depths) != 4 or min(self.depths) < 1:
            raise ValueError(f"depths must be 4 positive integers, got {self.depths}")
        if len(self.dims) != 4 or min(self.dims) < 1:
            raise ValueError(f"dims must be 4 positive integers, got {self.dims}")
        for name in ("head_channels", "head_layers", "num_joints", "depth_bins"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.upsamples <= self.head_layers:
            raise ValueError(f"upsamples must be in [0, head_layers={self.head_layers}], got {self.upsamples}")
        if not (math.isfinite(self.logit_scale) and self.logit_scale > 0):
            raise ValueError(f"logit_scale must be positive and finite, got {self.logit_scale}")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {self.drop_path_rate}")
        if self.softargmax_mode not in SOFT_ARGMAX_MODES:
            raise ValueError(f"softargmax_mode must be one of {SOFT_ARGMAX_MODES}, got {self.softargmax_mode!r}")
        if self.facing_bins < 0:
            raise ValueError(f"facing_bins must be >= 0, got {self.facing_bins}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.input_size < 32 or self.input_size % 32:
            raise ValueError(f"input_size must be a positive multiple of 32, got {self.input_size}")

    @property
    def heatmap_size(self) -> tuple[int, int, int]:
        """(D, H, W) of the output heatmaps."""
        side = self.input_size // 32 * 2**self.upsamples
        return (self.depth_bins, side, side)


def _tracing() -> bool:
    """Whether torch.compile or torch.export is tracing (no data-dependent checks, no numpy kernels)."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch of a sample with probability p (training only).

    out = x * m / (1 - p), m ~ Bernoulli(1 - p) per sample; the identity in eval mode or for p = 0.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p:.3f}"


class Block(nn.Module):
    """ConvNeXt-BN block: x + DropPath(pw2(ReLU(pw1(BN(dw7x7(x)))))).

    dw7x7 depthwise C -> C, pw1 1x1 C -> 4C, pw2 1x1 4C -> C; (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, dim: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.BatchNorm2d(dim)
        self.pwconv1 = nn.Conv2d(dim, 4 * dim, 1)
        self.act = nn.ReLU(inplace=True)
        self.pwconv2 = nn.Conv2d(4 * dim, dim, 1)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pwconv2(self.act(self.pwconv1(self.norm(self.dwconv(x)))))
        return x + self.drop_path(y)


class HeadLayer(nn.Module):
    """Depthwise-separable head layer: up(ReLU(pw1x1(BN(dw3x3(x))))).

    (B, C_in, H, W) -> (B, C_out, 2H, 2W) with the bilinear x2 upsample, else (B, C_out, H, W).
    """

    def __init__(self, in_ch: int, out_ch: int, upsample: bool, align_corners: bool = True) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch)
        self.norm = nn.BatchNorm2d(in_ch)
        self.pwconv = nn.Conv2d(in_ch, out_ch, 1)
        self.act = nn.ReLU(inplace=True)
        self.upsample = upsample
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.pwconv(self.norm(self.dwconv(x))))
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=self.align_corners)
        return x

    def extra_repr(self) -> str:
        return f"upsample={self.upsample}"


class ConvNeXtPose(nn.Module):
    """ConvNeXtPose: (B, 3, S, S) normalised RGB crop -> (B, J, 3) joint coordinates in heatmap units.

    The soft-argmax runs the differentiable PyTorch reference (backend 'torch') in training mode and
    under torch.compile/export, and backend 'auto' in eval mode (the C++ kernel when installed and no
    gradient is needed); both agree within the kernel tolerance.
    """

    def __init__(self, config: ConvNeXtPoseConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else ConvNeXtPoseConfig()
        self.config = cfg
        self._mode = cfg.softargmax_mode
        if cfg.backbone == "mobilenetv2":
            from .mobilenet import MobileNetV2Features

            self.mobilenet = MobileNetV2Features()
            features = self.mobilenet.out_channels
        else:
            self.mobilenet = None
            features = self._build_convnext(cfg)
        chans = [features] + [cfg.head_channels] * cfg.head_layers
        self.head = nn.Sequential(
            *(HeadLayer(chans[i], chans[i + 1], i < cfg.upsamples, cfg.align_corners) for i in range(cfg.head_layers))
        )
        self.final = nn.Conv2d(cfg.head_channels, cfg.num_joints * cfg.depth_bins, 1)
        self.facing = nn.Linear(features, cfg.facing_bins) if cfg.facing_bins else None
        self._init_weights()

    def _build_convnext(self, cfg: ConvNeXtPoseConfig) -> int:
        dims = cfg.dims
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), nn.BatchNorm2d(dims[0]))
        self.downsamples = nn.ModuleList(
            nn.Sequential(nn.BatchNorm2d(dims[i]), nn.Conv2d(dims[i], dims[i + 1], 2, stride=2)) for i in range(3)
        )
        rates = torch.linspace(0.0, cfg.drop_path_rate, sum(cfg.depths)).tolist()
        starts = np.cumsum((0,) + cfg.depths).tolist()
        self.stages = nn.ModuleList(
            nn.Sequential(*(Block(dims[i], rates[starts[i] + k]) for k in range(cfg.depths[i]))) for i in range(4)
        )
        self.norm = nn.BatchNorm2d(dims[-1])
        return dims[-1]

    def _init_weights(self) -> None:
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d) and not name.startswith("mobilenet."):  # it keeps torchvision's
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.final.weight, std=0.001)

    def load_imagenet(self, source: str | None = None) -> None:
        """Loads the ImageNet weights into the backbone (mobilenetv2 only; mobpose.models.mobilenet)."""
        if self.mobilenet is None:
            raise ValueError(f"no ImageNet weights for the {self.config.backbone!r} backbone (only mobilenetv2)")
        from .mobilenet import load_imagenet

        load_imagenet(self.mobilenet, source)

    @property
    def softargmax_mode(self) -> str:
        """'exact', 'taylor' or 'taylor_clamped'; settable."""
        return self._mode

    @softargmax_mode.setter
    def softargmax_mode(self, mode: str) -> None:
        if mode not in SOFT_ARGMAX_MODES:
            raise ValueError(f"softargmax_mode must be one of {SOFT_ARGMAX_MODES}, got {mode!r}")
        self._mode = mode

    @property
    def heatmap_size(self) -> tuple[int, int, int]:
        """(D, H, W) of the output heatmaps."""
        return self.config.heatmap_size

    def _check_images(self, images: Any) -> None:
        s = self.config.input_size
        want = f"(B, 3, {s}, {s})"
        if not isinstance(images, torch.Tensor) or not images.is_floating_point():
            what = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be a float tensor {want}, got {what}")
        if images.dim() != 4 or tuple(images.shape[1:]) != (3, s, s) or images.shape[0] == 0:
            raise ValueError(f"images must have shape {want}, got {tuple(images.shape)}")
        # Data-dependent, so skipped while torch.compile/export traces the model.
        if not _tracing() and not bool(torch.isfinite(images).all()):
            raise ValueError("images contains NaN or Inf")

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> backbone features (B, C4, S/32, S/32), after the final BN (ConvNeXt) or the
        last 1x1 conv's ReLU6 (MobileNetV2)."""
        if self.mobilenet is not None:
            return self.mobilenet(images)
        x = self.stem(images)
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = self.downsamples[i - 1](x)
            x = stage(x)
        return self.norm(x)

    def forward_heatmaps(self, images: torch.Tensor) -> torch.Tensor:
        """Heatmap logits.

        Args:
            images: (B, 3, S, S) ImageNet-normalised RGB crops, S = config.input_size.

        Returns:
            (B, J, D, H, W) logits.

        Raises:
            ValueError: if `images` is not a finite float tensor of that shape.
        """
        self._check_images(images)
        return self._heatmaps(self.forward_features(images))

    def _heatmaps(self, features: torch.Tensor) -> torch.Tensor:
        x = self.final(self.head(features))
        if self.config.logit_scale != 1.0:
            x = x * self.config.logit_scale
        b, _, h, w = x.shape
        return x.reshape(b, self.config.num_joints, self.config.depth_bins, h, w)

    def forward_train(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(heatmap logits (B, J, D, H, W), facing logits (B, facing_bins) or None) from one backbone pass."""
        self._check_images(images)
        features = self.forward_features(images)
        return self._heatmaps(features), self.facing_logits(features)

    def facing_logits(self, features: torch.Tensor) -> torch.Tensor | None:
        """The facing head on backbone features (B, C, h, w) (those of forward_features): (B, facing_bins)
        logits from the pooled features, or None without the head."""
        return self.facing(features.mean(dim=(2, 3))) if self.facing is not None else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Joint coordinates.

        Args:
            images: (B, 3, S, S) ImageNet-normalised RGB crops, S = config.input_size.

        Returns:
            (B, J, 3) expected (x, y, z) heatmap indices (x in [0, W-1], y in [0, H-1], z in [0, D-1]).

        Raises:
            ValueError: if `images` is not a finite float tensor of that shape.
        """
        heatmaps = self.forward_heatmaps(images)
        backend = "torch" if self.training or _tracing() else "auto"
        return soft_argmax_3d(heatmaps, self._mode, backend=backend)


def count_macs(config: ConvNeXtPoseConfig) -> int:
    """Multiply-accumulates of one image through the convolutions (BN, ReLU and upsampling ignored)."""
    if config.backbone == "mobilenetv2":
        from .mobilenet import LAST_CHANNELS
        from .mobilenet import count_macs as backbone_macs

        macs, s, cin = backbone_macs(config.input_size), config.input_size // 32, LAST_CHANNELS
    else:
        s = config.input_size // 4
        dims = config.dims
        macs = 3 * 16 * dims[0] * s * s
        for i, (depth, c) in enumerate(zip(config.depths, dims, strict=True)):
            if i > 0:
                s //= 2
                macs += 4 * dims[i - 1] * c * s * s
            macs += depth * (49 * c + 8 * c * c) * s * s
        cin = dims[-1]
    for layer in range(config.head_layers):
        macs += (9 * cin + cin * config.head_channels) * s * s
        cin = config.head_channels
        if layer < config.upsamples:
            s *= 2
    return macs + cin * config.num_joints * config.depth_bins * s * s


def normalize_images(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 RGB images (H, W, 3) or (B, H, W, 3) -> float32 (B, 3, H, W), ImageNet mean/std normalised."""
    t = torch.as_tensor(images)
    if t.dtype != torch.uint8 or t.dim() not in (3, 4) or t.shape[-1] != 3:
        raise ValueError(f"images must be uint8 (H, W, 3) or (B, H, W, 3), got {t.dtype} {tuple(t.shape)}")
    t = t.reshape((-1,) + tuple(t.shape[-3:])).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((t - mean) / std).contiguous()


def _create(variant: str, **kwargs: Any) -> ConvNeXtPose:
    config = dataclasses.replace(_VARIANTS[variant], **kwargs)
    logger.debug("building convnextpose_%s: %s", variant, config)
    return ConvNeXtPose(config)


_SMALL = {"depths": (3, 3, 9, 3), "dims": (48, 96, 192, 384)}
_VARIANTS: dict[str, ConvNeXtPoseConfig] = {
    "xs": ConvNeXtPoseConfig(head_channels=128, upsamples=2, depth_bins=32),
    "s": ConvNeXtPoseConfig(**_SMALL, head_channels=256, upsamples=2, depth_bins=32),
    "m": ConvNeXtPoseConfig(**_SMALL, head_channels=256, upsamples=3, depth_bins=64),
    "l": ConvNeXtPoseConfig(**_SMALL, head_channels=512, upsamples=3, depth_bins=64),
    "test": ConvNeXtPoseConfig(
        depths=(1, 1, 1, 1), dims=(8, 16, 32, 64), head_channels=16, upsamples=2, depth_bins=8, input_size=64
    ),
    "mnv2": ConvNeXtPoseConfig(backbone="mobilenetv2", head_channels=128, upsamples=2, depth_bins=32,
                               input_size=128, drop_path_rate=0.0, logit_scale=16.0),
}


@register_model
def convnextpose_xs(**kwargs: Any) -> ConvNeXtPose:
    """ConvNeXtPose-XS: 2,2,6,2 / 40..320, head 128, 18x32^3 heatmaps."""
    return _create("xs", **kwargs)


@register_model
def convnextpose_s(**kwargs: Any) -> ConvNeXtPose:
    """ConvNeXtPose-S: 3,3,9,3 / 48..384, head 256, 18x32^3 heatmaps."""
    return _create("s", **kwargs)


@register_model
def convnextpose_m(**kwargs: Any) -> ConvNeXtPose:
    """ConvNeXtPose-M: 3,3,9,3 / 48..384, head 256, 3 upsamples, 18x64^3 heatmaps."""
    return _create("m", **kwargs)


@register_model
def convnextpose_l(**kwargs: Any) -> ConvNeXtPose:
    """ConvNeXtPose-L: 3,3,9,3 / 48..384, head 512, 3 upsamples, 18x64^3 heatmaps."""
    return _create("l", **kwargs)


@register_model
def ipem_mobilenetv2(**kwargs: Any) -> ConvNeXtPose:
    """IPEM-MobileNetV2: torchvision's MobileNetV2 features (ImageNet start, `load_imagenet`), the
    ConvNeXtPose head (128 channels, 2 upsamples) and soft-argmax; 128x128 input, 18x32^3 heatmaps."""
    return _create("mnv2", **kwargs)


@register_model
def convnextpose_test(**kwargs: Any) -> ConvNeXtPose:
    """Tiny variant for tests: 1,1,1,1 / 8..64, head 16, 64x64 input, 18x8^3 heatmaps."""
    return _create("test", **kwargs)
