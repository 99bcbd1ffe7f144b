"""RTMO (Lu et al., "RTMO: Towards High-Performance One-Stage Real-Time Multi-Person Pose Estimation", CVPR 2024):
one-stage multi-person 2D pose. A YOLOX-style dense grid at strides 16 and 32 whose cells each predict a person
score, a box, keypoint visibilities, coarse keypoint offsets and a pose vector; the Dynamic Coordinate
Classifier (DCC) turns a kept cell's pose vector into keypoint coordinates inside its box.

What is built here, and each simplification against the paper (DESIGN.md section 5):

- **Backbone.** ``mobilenetv2`` (default): torchvision's MobileNetV2 layout (mobpose.models.mobilenet) with its
  ImageNet start: blocks 0-13 to stride 16 (96 channels), then (``mnv2_blocks`` 14, the default) a light
  stride-32 layer of mobpose's (a depthwise stride-2 conv and two depthwise-separable layers to 192 channels,
  from scratch) in place of MobileNetV2's blocks 14-17, which hold 1.4 M of its 1.8 M parameters: the shipped
  model must fit the package's weights budget. ``mnv2_blocks`` 18 keeps blocks 14-17 (320 channels).
  ``cspdarknet``: the paper's family, a YOLOX-style CSPDarknet
  (conv stem, four stride-2 stages of CSP layers, SPPF, SiLU) at `width`/`depth` multipliers, from scratch (no
  ImageNet file for it can be had offline). *Simplification 1*: the ImageNet MobileNetV2 is the default because
  training runs on a 2-core CPU, where a from-scratch detector does not learn in the steps it can give.
- **Neck.** Strides 16 and 32 as the paper, but a light top-down FPN (1x1 laterals to `neck_channels`, nearest
  x2 upsampling, add, a depthwise-separable 3x3) in place of the paper's hybrid encoder with its transformer
  layer (*simplification 2*).
- **Head.** One head shared by both levels (its box and offsets in units of the level's stride, as FCOS), two
  depthwise-separable 3x3 layers per branch (score; everything else) in place of the paper's per-level heads
  with grouped 3x3 convs (*simplification 3*). Per cell: the score logit (1); the box as log distances from the
  cell centre to its four sides in strides (4; YOLOX predicts centre and log size); coarse keypoint offsets from
  the cell centre in strides (2J: the proxy keypoints of the assignment and its OKS loss); visibility logits
  (J); the pose vector (`pose_channels`).
- **DCC**, as the paper: the pose vector becomes J keypoint features (a linear layer, then LayerNorm where the
  paper has BatchNorm1d, *simplification 4*), mixed across keypoints by one gated attention unit (GAU: scale
  norm, SiLU, a squared-ReLU attention kernel, the gate); `x_bins` (192) and `y_bins` (256) bins are laid evenly
  over the box enlarged `bbox_padding` (1.25) times; each bin's position relative to the cell centre (input
  pixels) gets a sine positional encoding (temperature 300) and a linear layer; a keypoint's bin logits are the
  dot products of its feature with the bin features; the coordinate is the softmax expectation of the bin
  positions. A per-keypoint sigma (sigmoid x 0.1, relative to the square root of the box area) is the scale of
  the Laplacian of the maximum-likelihood loss (mobpose.train.rtmo_stage).
- **The exported graph** (:meth:`RTMO.forward`) is convolutions only and returns every cell's raw predictions as
  one (B, A, C) tensor (:func:`dense_layout`); box decoding, the score threshold, NMS and the DCC of the kept
  people run outside it, in numpy (mobpose.runtime.people), so the DCC costs only as many people as are found.

Images: RGB, ImageNet mean/std (mobpose.models.convnextpose.normalize_images), square, any multiple of 32
(letterboxed by the runtime; the config's `input_size` is the default). Joints: H36M-17. Dimensions: B batch,
A cells (stride-16 cells first, row-major, then stride 32), N people, J joints, P pose-vector channels,
D keypoint-feature channels, Bx/By bins.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model
from .rtmo_layout import layout

__all__ = ["DCC", "GAU", "RTMO", "RTMOConfig", "decode_dense", "dense_channels", "dense_layout", "priors",
           "rtmo_cspdarknet",
           "rtmo_mnv2", "rtmo_test", "sine_encoding"]

logger = logging.getLogger(__name__)

BACKBONES = ("mobilenetv2", "cspdarknet")
STRIDES = (16, 32)


@dataclass(frozen=True)
class RTMOConfig:
    """Hyperparameters of one RTMO variant (see the module docstring)."""

    backbone: str = "mobilenetv2"
    mnv2_blocks: int = 14  # mobilenetv2: 14 (to stride 16, then a light stride-32 layer) or 18 (all its blocks)
    width: float = 0.25  # cspdarknet channel multiplier (base 64 .. 1024)
    depth: float = 0.33  # cspdarknet depth multiplier (base 3, 9, 9, 3 bottlenecks)
    neck_channels: int = 96
    num_joints: int = 17
    pose_channels: int = 128
    dcc_dim: int = 64
    gau_s: int = 64
    spe_channels: int = 64
    spe_temperature: float = 300.0
    x_bins: int = 192
    y_bins: int = 256
    bbox_padding: float = 1.25
    input_size: int = 320

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.input_size % 32 or self.input_size < 64:
            raise ValueError(f"input_size must be a multiple of 32, at least 64, got {self.input_size}")
        if self.spe_channels % 2:
            raise ValueError(f"spe_channels must be even (cosine and sine halves), got {self.spe_channels}")
        for name in ("neck_channels", "num_joints", "pose_channels", "dcc_dim", "gau_s", "x_bins", "y_bins"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def dense_layout(config: RTMOConfig) -> dict[str, slice]:
    """Where each prediction sits in the last axis of :meth:`RTMO.forward`'s (B, A, C) output
    (mobpose.models.rtmo_layout.layout)."""
    return layout(config)


def dense_channels(config: RTMOConfig) -> int:
    """C of the (B, A, C) output."""
    return layout(config)["pose"].stop


def priors(size: int) -> torch.Tensor:
    """(A, 3) cell centres x, y in input pixels and the stride, for a square input of `size` px: stride-16 cells
    first, row-major, then stride 32."""
    rows = []
    for s in STRIDES:
        n = size // s
        yy, xx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        rows.append(torch.stack([(xx.flatten() + 0.5) * s, (yy.flatten() + 0.5) * s,
                                 torch.full((n * n,), float(s))], 1))
    return torch.cat(rows).float()


def _conv_bn(cin: int, cout: int, k: int = 1, s: int = 1, groups: int = 1,
             act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         act())


def _dw_sep(c: int, cout: int | None = None) -> nn.Sequential:
    """3x3 depthwise + 1x1 pointwise, each with BN and ReLU."""
    return nn.Sequential(_conv_bn(c, c, 3, groups=c), _conv_bn(c, cout or c, 1))


class _MobileNetTrunk(nn.Module):
    """MobileNetV2 (torchvision's names under ``features``) to stride 16 or 32: (s16, s32) features.

    ``blocks`` 18: blocks 0-17 as they are (96 channels at stride 16 after block 13, 320 at stride 32 after
    block 17). ``blocks`` 14 (mobpose's light form): blocks 0-13 only, and stride 32 from a depthwise 3x3 stride-2
    conv and two depthwise-separable layers to 192 channels (``down32``): the stride-32 stage of MobileNetV2
    holds 1.4 M of its 1.8 M parameters below the last conv, most of the model's file."""

    def __init__(self, blocks: int = 18) -> None:
        super().__init__()
        from .mobilenet import first_blocks

        if blocks not in (14, 18):
            raise ValueError(f"mnv2_blocks must be 14 or 18, got {blocks}")
        self.features = first_blocks(blocks)
        self.blocks = blocks
        if blocks == 14:
            self.down32 = nn.Sequential(_conv_bn(96, 96, 3, 2, groups=96), _conv_bn(96, 192, 1), _dw_sep(192))
            self.channels = (96, 192)
        else:
            self.channels = (96, 320)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c16 = self.features[:14](x)
        return c16, (self.down32(c16) if self.blocks == 14 else self.features[14:](c16))


class _CSPLayer(nn.Module):
    """YOLOX's CSP layer: two 1x1 branches, bottlenecks (1x1, 3x3, shortcut) on one, concat, 1x1."""

    def __init__(self, cin: int, cout: int, n: int) -> None:
        super().__init__()
        mid = cout // 2
        self.a, self.b = _conv_bn(cin, mid, act=nn.SiLU), _conv_bn(cin, mid, act=nn.SiLU)
        self.blocks = nn.ModuleList(nn.Sequential(_conv_bn(mid, mid, act=nn.SiLU), _conv_bn(mid, mid, 3, act=nn.SiLU))
                                    for _ in range(n))
        self.out = _conv_bn(2 * mid, cout, act=nn.SiLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a(x)
        for blk in self.blocks:
            a = a + blk(a)
        return self.out(torch.cat([a, self.b(x)], 1))


class _SPPF(nn.Module):
    """Spatial pyramid pooling, fast form: 1x1, three chained 5x5 max pools, concat, 1x1."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.cv1, self.cv2 = _conv_bn(c, c // 2, act=nn.SiLU), _conv_bn(c * 2, c, act=nn.SiLU)
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.cv2(torch.cat([x, y1, y2, self.pool(y2)], 1))


class _CSPDarknet(nn.Module):
    """YOLOX-style CSPDarknet (stem, 4 stride-2 stages, SPPF on the last): (s16, s32) features."""

    def __init__(self, width: float, depth: float) -> None:
        super().__init__()
        ch = [max(int(round(c * width)), 8) for c in (64, 128, 256, 512, 1024)]
        n = [max(int(round(d * depth)), 1) for d in (3, 9, 9, 3)]
        self.stem = _conv_bn(3, ch[0], 3, 2, act=nn.SiLU)
        stages = []
        for i in range(4):
            layers: list[nn.Module] = [_conv_bn(ch[i], ch[i + 1], 3, 2, act=nn.SiLU)]
            if i == 3:
                layers.append(_SPPF(ch[4]))
            layers.append(_CSPLayer(ch[i + 1], ch[i + 1], n[i]))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.channels = (ch[3], ch[4])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        for st in self.stages[:3]:
            x = st(x)
        return x, self.stages[3](x)


class GAU(nn.Module):
    """Gated attention unit (Hua et al. 2022, as RTMPose/RTMO use it) over the J keypoint tokens, with a residual.

    x (N, J, D) -> x + W_o(u * (relu(q k^T / sqrt(s))^2 / J) v), where [u, v, z] = silu(W_uv(scale_norm(x))),
    q = z * gamma_q + beta_q, k = z * gamma_k + beta_k (per-channel affine maps of the shared z of size s) and
    scale_norm(x) = x / ||x|| * sqrt(D) * g (a learned scalar g).
    """

    def __init__(self, dim: int, s: int, expand: int = 2) -> None:
        super().__init__()
        self.g = nn.Parameter(torch.ones(1))
        self.uv = nn.Linear(dim, 2 * expand * dim + s)
        self.gamma = nn.Parameter(torch.randn(2, s) * 0.02 + 1.0)
        self.beta = nn.Parameter(torch.zeros(2, s))
        self.out = nn.Linear(expand * dim, dim)
        self.e, self.s, self.dim = expand * dim, s, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.norm(dim=-1, keepdim=True).clamp(min=1e-5) / math.sqrt(self.dim)
        u, v, z = torch.split(F.silu(self.uv(x / norm * self.g)), [self.e, self.e, self.s], dim=-1)
        q = z * self.gamma[0] + self.beta[0]
        k = z * self.gamma[1] + self.beta[1]
        kernel = F.relu(q @ k.transpose(-1, -2) / math.sqrt(self.s)) ** 2 / x.shape[-2]
        return x + self.out(u * (kernel @ v))


def sine_encoding(pos: torch.Tensor, channels: int, temperature: float) -> torch.Tensor:
    """(...,) positions (pixels) -> (..., channels): [cos(pos / t_i), sin(pos / t_i)], t_i = temperature^(2i/C),
    i < C/2."""
    half = channels // 2
    t = temperature ** (2 * torch.arange(half, dtype=pos.dtype, device=pos.device) / channels)
    ang = pos[..., None] / t
    return torch.cat([ang.cos(), ang.sin()], -1)


class DCC(nn.Module):
    """The Dynamic Coordinate Classifier: pose vectors, boxes and cells -> keypoints, sigmas and bin probabilities."""

    def __init__(self, config: RTMOConfig) -> None:
        super().__init__()
        c = self.config = config
        self.to_joints = nn.Linear(c.pose_channels, c.num_joints * c.dcc_dim)
        self.norm = nn.LayerNorm(c.dcc_dim)
        self.gau = GAU(c.dcc_dim, c.gau_s)
        self.x_fc = nn.Linear(c.spe_channels, c.dcc_dim)
        self.y_fc = nn.Linear(c.spe_channels, c.dcc_dim)
        self.sigma_fc = nn.Linear(c.pose_channels, c.num_joints)

    def bins(self, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 4) xyxy boxes -> bin positions x (N, Bx) and y (N, By) in input pixels: evenly from one edge of
        the box enlarged `bbox_padding` times to the other."""
        c = self.config
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        size = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1.0) * c.bbox_padding
        tx = torch.linspace(-0.5, 0.5, c.x_bins, dtype=boxes.dtype, device=boxes.device)
        ty = torch.linspace(-0.5, 0.5, c.y_bins, dtype=boxes.dtype, device=boxes.device)
        return centre[:, :1] + tx * size[:, :1], centre[:, 1:] + ty * size[:, 1:]

    def forward(self, pose: torch.Tensor, boxes: torch.Tensor, cells: torch.Tensor) -> dict[str, torch.Tensor]:
        """pose (N, P), boxes (N, 4) xyxy input pixels, cells (N, 2) the cells' centres (pixels) ->
        ``keypoints`` (N, J, 2) pixels, ``sigma`` (N, J) (relative to sqrt(box area)), ``prob_x`` (N, J, Bx),
        ``prob_y`` (N, J, By), ``bins_x`` (N, Bx), ``bins_y`` (N, By)."""
        c = self.config
        n = pose.shape[0]
        f = self.gau(self.norm(self.to_joints(pose).reshape(n, c.num_joints, c.dcc_dim)))
        bx, by = self.bins(boxes)
        ex = self.x_fc(sine_encoding(bx - cells[:, :1], c.spe_channels, c.spe_temperature))  # (N, Bx, D)
        ey = self.y_fc(sine_encoding(by - cells[:, 1:], c.spe_channels, c.spe_temperature))
        px = (f @ ex.transpose(1, 2)).softmax(-1)  # (N, J, Bx)
        py = (f @ ey.transpose(1, 2)).softmax(-1)
        x = (px * bx[:, None]).sum(-1)
        y = (py * by[:, None]).sum(-1)
        sigma = torch.sigmoid(self.sigma_fc(pose)) * 0.1
        return {"keypoints": torch.stack([x, y], -1), "sigma": sigma, "prob_x": px, "prob_y": py,
                "bins_x": bx, "bins_y": by}


class RTMO(nn.Module):
    """RTMO: images (B, 3, S, S) -> dense per-cell predictions (B, A, C) (:func:`dense_layout`); the DCC
    (``self.dcc``) is applied to the kept cells outside :meth:`forward`."""

    def __init__(self, config: RTMOConfig) -> None:
        super().__init__()
        self.config = c = config
        self.backbone = (_MobileNetTrunk(c.mnv2_blocks) if c.backbone == "mobilenetv2"
                         else _CSPDarknet(c.width, c.depth))
        c16, c32 = self.backbone.channels
        nc = c.neck_channels
        self.lat16, self.lat32 = _conv_bn(c16, nc), _conv_bn(c32, nc)
        self.fuse16, self.fuse32 = _dw_sep(nc), _dw_sep(nc)
        self.cls_branch = nn.Sequential(_dw_sep(nc), _dw_sep(nc))
        self.reg_branch = nn.Sequential(_dw_sep(nc), _dw_sep(nc))
        j = c.num_joints
        self.score = nn.Conv2d(nc, 1, 1)
        self.box = nn.Conv2d(nc, 4, 1)
        self.offsets = nn.Conv2d(nc, 2 * j, 1)
        self.visibility = nn.Conv2d(nc, j, 1)
        self.pose = nn.Conv2d(nc, c.pose_channels, 1)
        self.dcc = DCC(c)
        nn.init.constant_(self.score.bias, -math.log(99.0))  # a prior score of 0.01 (RetinaNet, YOLOX)
        nn.init.normal_(self.box.weight, std=1e-3)
        nn.init.constant_(self.box.bias, math.log(2.0))  # a first box 4 strides wide
        nn.init.normal_(self.offsets.weight, std=1e-3)
        nn.init.zeros_(self.offsets.bias)

    def load_imagenet(self, source: str | None = None) -> None:
        """The ImageNet MobileNetV2 weights into the backbone (mobilenetv2 only; mobpose.models.mobilenet)."""
        if self.config.backbone != "mobilenetv2":
            raise ValueError(f"no ImageNet weights for the {self.config.backbone!r} backbone (only mobilenetv2)")
        from .mobilenet import load_imagenet

        load_imagenet(self.backbone, source, blocks=self.config.mnv2_blocks)

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        cls, reg = self.cls_branch(x), self.reg_branch(x)
        out = torch.cat([self.score(cls), self.box(reg), self.offsets(reg), self.visibility(reg), self.pose(reg)], 1)
        return out.flatten(2).transpose(1, 2)  # (B, cells, C)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        c16, c32 = self.backbone(images)
        p32 = self.lat32(c32)
        p16 = self.fuse16(self.lat16(c16) + F.interpolate(p32, scale_factor=2.0, mode="nearest"))
        return torch.cat([self._head(p16), self._head(self.fuse32(p32))], 1)


def decode_dense(dense: torch.Tensor, config: RTMOConfig, prior: torch.Tensor) -> dict[str, torch.Tensor]:
    """Raw (B, A, C) -> ``score_logit``/``score`` (B, A), ``boxes`` (B, A, 4) xyxy pixels, ``coarse`` (B, A, J, 2)
    the offset keypoints in pixels, ``visibility_logit`` (B, A, J) and ``pose`` (B, A, P); `prior` from
    :func:`priors`. The box's log distances are clamped at 8 (2981 strides) before exp."""
    lay = dense_layout(config)
    cx, cy, s = prior[:, 0], prior[:, 1], prior[:, 2]
    d = dense[..., lay["box"]].clamp(max=8.0).exp() * s[:, None]
    boxes = torch.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], -1)
    coarse = dense[..., lay["offsets"]].unflatten(-1, (config.num_joints, 2)) * s[:, None, None] + prior[:, None, :2]
    return {"score_logit": dense[..., 0], "score": dense[..., 0].sigmoid(), "boxes": boxes, "coarse": coarse,
            "visibility_logit": dense[..., lay["visibility"]], "pose": dense[..., lay["pose"]]}


_VARIANTS: dict[str, dict[str, Any]] = {
    "mnv2": {"backbone": "mobilenetv2"},
    "cspdarknet": {"backbone": "cspdarknet", "width": 0.25, "depth": 0.33},
    "test": {"backbone": "cspdarknet", "width": 0.125, "depth": 0.33, "neck_channels": 16, "pose_channels": 16,
             "dcc_dim": 16, "gau_s": 8, "spe_channels": 8, "x_bins": 24, "y_bins": 32, "input_size": 64},
}


def _create(variant: str, **kwargs: Any) -> RTMO:
    return RTMO(RTMOConfig(**{**_VARIANTS[variant], **kwargs}))


@register_model
def rtmo_mnv2(**kwargs: Any) -> RTMO:
    """RTMO with the MobileNetV2 backbone (ImageNet start), 320 px input, strides 16/32, H36M-17."""
    return _create("mnv2", **kwargs)


@register_model
def rtmo_cspdarknet(**kwargs: Any) -> RTMO:
    """RTMO with a tiny CSPDarknet (width 0.25, depth 0.33: the paper's backbone family, from scratch)."""
    return _create("cspdarknet", **kwargs)


@register_model
def rtmo_test(**kwargs: Any) -> RTMO:
    """A tiny RTMO for tests (64 px input)."""
    return _create("test", **kwargs)
