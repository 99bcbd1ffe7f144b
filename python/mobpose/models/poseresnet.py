"""PoseResNet / SimpleBaseline (Xiao, Wu and Wei, "Simple Baselines for Human Pose Estimation and Tracking",
ECCV 2018): top-down 2D pose. A person crop in, one heatmap per joint out.

The network (DESIGN.md section 5): a ResNet backbone (written here; no torchvision) to stride 32, three
deconvolution layers [transposed conv 4x4 stride 2, BatchNorm, ReLU] with `head_channels` channels back to
stride 4, and a 1x1 conv to J heatmaps. The paper's COCO setting: input 256x192 (H x W), heatmaps 64x48,
Gaussian targets sigma 2 px (heatmap pixels), MSE loss on the visible joints; decoding by the argmax plus a
quarter-pixel shift toward the higher neighbour, then the inverse crop affine (mobpose.runtime.topdown).

Variants:

| variant | backbone | input (H x W) | head ch | params | GMACs |
|---|---|---|---|---|---|
| ``poseresnet_50`` | ResNet-50 (bottlenecks 3,4,6,3) | 256x192 | 256 | 34.0 M | 5.43 |
| ``poseresnet_mnv2`` | MobileNetV2 1.0 (ImageNet) to block 17 | 192x128 | 128 | 2.99 M | 0.28 |
| ``poseresnet_test`` | ResNet with one basic block per stage, 8-64 ch | 96x64 | 16 | tiny | |

(:func:`count_macs`, convolutions and transposed convolutions.) The ResNet-50 variant is the paper's: 34.0 M
parameters for 17 joints, as published; its table's 8.9 GFLOPs is another count than these 5.4 G
multiply-accumulates, which match mmpose's 5.46 GFLOPs for the same model. There is no
offline ImageNet ResNet file, so it trains from scratch here. The phone variant (*mobpose's*: the paper has
none) swaps in the MobileNetV2 of mobpose.models.mobilenet with torchvision's ImageNet weights (its 320-channel
block-17 output; the 1280-channel conv dropped) and halves the head's channels, as mmpose's MobileNetV2
SimpleBaseline does with its backbone but with a lighter head and the smaller input of a phone (192x128,
heatmaps 48x32: half the pixels of 256x192).

Images: RGB, ImageNet mean/std (mobpose.models.convnextpose.normalize_images). Joints: H36M-17. Dimensions:
B batch, J joints, H x W input, h x w = H/4 x W/4 heatmaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .registry import register_model

__all__ = ["BACKBONES", "PoseResNet", "PoseResNetConfig", "count_macs", "poseresnet_50", "poseresnet_mnv2",
           "poseresnet_test"]

BACKBONES = ("resnet", "mobilenetv2")


@dataclass(frozen=True)
class PoseResNetConfig:
    """Hyperparameters of one PoseResNet variant."""

    backbone: str = "resnet"
    blocks: tuple[int, ...] = (3, 4, 6, 3)  # ResNet: blocks per stage
    bottleneck: bool = True  # ResNet: bottleneck blocks (50/101/152) or basic blocks (18/34)
    base_width: int = 64  # ResNet: channels of the stem and the first stage's blocks
    head_channels: int = 256
    deconvs: int = 3
    num_joints: int = 17
    input_height: int = 256
    input_width: int = 192
    sigma: float = 2.0  # the target Gaussian's standard deviation in heatmap pixels

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.input_height % 32 or self.input_width % 32 or min(self.input_height, self.input_width) < 32:
            raise ValueError(f"input sides must be multiples of 32, got {self.input_height}x{self.input_width}")
        if self.backbone == "resnet" and len(self.blocks) != 4:
            raise ValueError(f"a ResNet has 4 stages, got blocks={self.blocks}")
        if self.deconvs < 1:
            raise ValueError(f"deconvs must be >= 1, got {self.deconvs}")

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(h, w) of the output heatmaps."""
        f = 32 // 2 ** self.deconvs
        return self.input_height // f, self.input_width // f


class BasicBlock(nn.Module):
    """ResNet's basic block: 3x3 conv, BN, ReLU, 3x3 conv, BN, + shortcut, ReLU."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """ResNet's bottleneck (the v1.5 form: the stride on the 3x3): 1x1, 3x3, 1x1 (x4 channels), + shortcut."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """ResNet (He et al. 2016) without its pooling and classifier: (B, 3, H, W) -> (B, C, H/32, W/32)."""

    def __init__(self, blocks: tuple[int, ...], bottleneck: bool, base_width: int = 64) -> None:
        super().__init__()
        block = Bottleneck if bottleneck else BasicBlock
        self.conv1 = nn.Conv2d(3, base_width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = base_width
        stages = []
        for i, n in enumerate(blocks):
            width = base_width * 2 ** i
            layers = []
            for k in range(n):
                layers.append(block(cin, width, 2 if (k == 0 and i > 0) else 1))
                cin = width * block.expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class _MobileNetBackbone(nn.Module):
    """MobileNetV2 blocks 0-17 (torchvision's names under ``features``): (B, 320, H/32, W/32)."""

    out_channels = 320

    def __init__(self) -> None:
        super().__init__()
        from .mobilenet import first_blocks

        self.features = first_blocks(18)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class PoseResNet(nn.Module):
    """Backbone -> deconvolution head -> J heatmaps: (B, 3, H, W) -> (B, J, H/4, W/4) (with 3 deconvs)."""

    def __init__(self, config: PoseResNetConfig) -> None:
        super().__init__()
        c = self.config = config
        self.backbone = (ResNet(c.blocks, c.bottleneck, c.base_width) if c.backbone == "resnet"
                         else _MobileNetBackbone())
        layers: list[nn.Module] = []
        cin = self.backbone.out_channels
        for _ in range(c.deconvs):
            layers += [nn.ConvTranspose2d(cin, c.head_channels, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(c.head_channels), nn.ReLU(inplace=True)]
            cin = c.head_channels
        self.deconv = nn.Sequential(*layers)
        self.final = nn.Conv2d(cin, c.num_joints, 1)
        for m in self.deconv.modules():  # the paper's initialisation of the head
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
        nn.init.normal_(self.final.weight, std=0.001)
        nn.init.zeros_(self.final.bias)

    @property
    def heatmap_size(self) -> tuple[int, int]:
        return self.config.heatmap_size

    def load_imagenet(self, source: str | None = None) -> None:
        """The ImageNet MobileNetV2 weights into the backbone (mobilenetv2 only; mobpose.models.mobilenet)."""
        if self.config.backbone != "mobilenetv2":
            raise ValueError("ImageNet weights can be had offline only for the mobilenetv2 backbone")
        from .mobilenet import load_imagenet

        load_imagenet(self.backbone, source, blocks=18)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.final(self.deconv(self.backbone(images)))


def count_macs(model: PoseResNet) -> int:
    """Multiply-accumulates of one image through the convolutions (by forward hooks)."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.ConvTranspose2d):  # each input pixel scatters into k x k outputs
            total += inp[0].shape[2] * inp[0].shape[3] * mod.in_channels * mod.out_channels * mod.kernel_size[0] ** 2
        else:
            total += out.shape[2] * out.shape[3] * mod.out_channels * (mod.in_channels // mod.groups) \
                * mod.kernel_size[0] * mod.kernel_size[1]

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, model.config.input_height, model.config.input_width))
    finally:
        for h in hooks:
            h.remove()
    return total


_VARIANTS: dict[str, dict[str, Any]] = {
    "50": {},
    "mnv2": {"backbone": "mobilenetv2", "head_channels": 128, "input_height": 192, "input_width": 128},
    "test": {"blocks": (1, 1, 1, 1), "bottleneck": False, "base_width": 8, "head_channels": 16, "input_height": 96,
             "input_width": 64},
}


def _create(variant: str, **kwargs: Any) -> PoseResNet:
    cfg = {**_VARIANTS[variant], **kwargs}
    if "blocks" in cfg:
        cfg["blocks"] = tuple(cfg["blocks"])
    return PoseResNet(PoseResNetConfig(**cfg))


@register_model
def poseresnet_50(**kwargs: Any) -> PoseResNet:
    """SimpleBaseline with ResNet-50, 256x192 input, 3 deconvs of 256 channels (the paper's COCO model)."""
    return _create("50", **kwargs)


@register_model
def poseresnet_mnv2(**kwargs: Any) -> PoseResNet:
    """SimpleBaseline with the ImageNet MobileNetV2 backbone, a 128-channel head, 192x128 input (mobpose's phone
    model)."""
    return _create("mnv2", **kwargs)


@register_model
def poseresnet_test(**kwargs: Any) -> PoseResNet:
    """A tiny PoseResNet for tests (64x48 input)."""
    return _create("test", **kwargs)
