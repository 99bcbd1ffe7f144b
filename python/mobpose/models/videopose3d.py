"""VideoPose3D: a temporal convolutional lifter from 2D keypoint sequences to 3D poses.

Pavllo, Feichtenhofer, Grangier, Auli, "3D human pose estimation in video with temporal convolutions
and semi-supervised training", CVPR 2019 (arXiv:1811.11742).

The network sees the 2D keypoints of every frame as one vector of J_in*2 channels and convolves over
time only. An expansion convolution (width w_0) is followed by residual blocks; block b convolves with
width w_b and dilation w_0 * ... * w_{b-1}, so the receptive field is R = prod(w) frames (27, 81, 243
for 3, 4, 5 widths of 3) and every output frame sees exactly R input frames. A centred model estimates
the middle frame of its window; the causal model estimates the last one, so it needs no future frames
(live use) at the price of accuracy.

Two paths with interchangeable weights (identical `state_dict` keys), chosen by the class (or by the
builders' `optimized` switch):

- `TemporalModel` (reference): dilated convolutions over a whole sequence, one output per window
  position, T_out = T - R + 1. Use it for evaluation and inference.
- `TemporalModelOptimized`: the same weights applied as strided convolutions (stride = width, no
  dilation), which computes only the outputs of non-overlapping windows, T_out = T // R. With inputs
  of exactly R frames it trains on single-frame targets without computing the intermediate frames
  the dilated path would throw away.

Dimensions: B batch, T frames, J joints, C channels, R receptive field.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .registry import register_model

__all__ = [
    "TemporalBlock",
    "TemporalModel",
    "TemporalModelOptimized",
    "make_trajectory_model",
    "videopose3d_27",
    "videopose3d_81",
    "videopose3d_243",
    "videopose3d_test",
]

logger = logging.getLogger(__name__)


def _aligned_slice(x: torch.Tensor, start: int, length: int, step: int) -> torch.Tensor:
    """Frames start, start + step, ... (`length` of them) of x (B, C, T)."""
    return x[:, :, start : start + step * (length - 1) + 1 : step]


class TemporalBlock(nn.Module):
    """Residual block over time: a wide convolution, a 1x1 convolution and a skip connection.

    y = s(x) + drop(relu(bn2(conv1x1(drop(relu(bn1(conv_w(x))))))))

    conv_w has width w and, on the reference path, dilation d (it reaches (w - 1) * d + 1 frames);
    on the optimised path it has stride w and no dilation. s(x) picks the input frame each output is
    aligned with: the centre of its window, or the last frame when `causal`.

    Args:
        channels: C, input and output channels.
        width: w, the kernel width (odd).
        dilation: d, used on the reference path.
        dropout: Dropout probability after each ReLU.
        causal: Align each output with the last frame of its window instead of the centre.
        strided: Use the optimised path (stride w, no dilation).
    """

    def __init__(self, channels: int, width: int, dilation: int, dropout: float, causal: bool, strided: bool) -> None:
        super().__init__()
        self.width, self.dilation, self.causal, self.strided = width, dilation, causal, strided
        if strided:
            self.conv = nn.Conv1d(channels, channels, width, stride=width, bias=False)
        else:
            self.conv = nn.Conv1d(channels, channels, width, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm1d(channels)
        self.conv_1x1 = nn.Conv1d(channels, channels, 1, bias=False)
        self.bn_1x1 = nn.BatchNorm1d(channels)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps (B, C, T) to (B, C, T') with T' = T - (w-1)d (reference) or T // w (optimised)."""
        y = self.drop(self.act(self.bn(self.conv(x))))
        y = self.drop(self.act(self.bn_1x1(self.conv_1x1(y))))
        if self.strided:
            start = self.width - 1 if self.causal else self.width // 2
            step = self.width
        else:
            span = (self.width - 1) * self.dilation
            start = span if self.causal else span // 2
            step = 1
        return _aligned_slice(x, start, y.shape[-1], step) + y


class TemporalModel(nn.Module):
    """VideoPose3D lifter, reference path: dilated temporal convolutions over a whole sequence.

    Output frame t is computed from input frames t .. t + R - 1 and estimates the pose of input frame
    t + `frame_offset`: the window's centre, or its last frame (no look-ahead) when `causal`.

    Args:
        num_joints_in: J_in, keypoints per input frame.
        num_joints_out: J_out, joints per output frame (1 for a trajectory model).
        filter_widths: Kernel widths w_0 (expansion), w_1, ... (blocks); each odd.
        channels: C, the width of every hidden layer.
        dropout: Dropout probability.
        causal: Estimate the last frame of each window instead of the centre.
    """

    strided = False  # the switch between the reference and the optimised path

    def __init__(
        self,
        num_joints_in: int = 17,
        num_joints_out: int = 17,
        filter_widths: Sequence[int] = (3, 3, 3),
        channels: int = 1024,
        dropout: float = 0.25,
        causal: bool = False,
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in filter_widths)
        if not widths or any(w < 1 or w % 2 == 0 for w in widths):
            raise ValueError(f"filter_widths must be a non-empty sequence of odd widths, got {filter_widths}")
        for name, value in (
            ("num_joints_in", num_joints_in),
            ("num_joints_out", num_joints_out),
            ("channels", channels),
        ):
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.num_joints_in, self.num_joints_out = num_joints_in, num_joints_out
        self.filter_widths, self.channels, self.dropout, self.causal = widths, channels, dropout, causal

        w0 = widths[0]
        stride = w0 if self.strided else 1
        self.expand_conv = nn.Conv1d(num_joints_in * 2, channels, w0, stride=stride, bias=False)
        self.expand_bn = nn.BatchNorm1d(channels)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TemporalBlock(channels, w, math.prod(widths[:b]), dropout, causal, self.strided)
            for b, w in enumerate(widths[1:], start=1)
        )
        self.shrink = nn.Conv1d(channels, num_joints_out * 3, 1)
        logger.debug(
            "%s: widths %s, R=%d, C=%d, causal=%s",
            type(self).__name__,
            widths,
            self.receptive_field,
            channels,
            causal,
        )

    @property
    def receptive_field(self) -> int:
        """R, the number of input frames behind one output frame."""
        return math.prod(self.filter_widths)

    @property
    def frame_offset(self) -> int:
        """Index in its window of the frame an output estimates: R - 1 if causal, else (R - 1) / 2."""
        r = self.receptive_field
        return r - 1 if self.causal else (r - 1) // 2

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments, enough to build an identical model."""
        return {
            "num_joints_in": self.num_joints_in,
            "num_joints_out": self.num_joints_out,
            "filter_widths": self.filter_widths,
            "channels": self.channels,
            "dropout": self.dropout,
            "causal": self.causal,
        }

    def set_bn_momentum(self, momentum: float) -> None:
        """Sets the momentum of every BatchNorm (VideoPose3D decays it during training)."""
        for m in self.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.momentum = momentum

    def _check_input(self, keypoints: torch.Tensor) -> None:
        if not isinstance(keypoints, torch.Tensor):
            raise TypeError(f"keypoints must be a torch.Tensor, got {type(keypoints).__name__}")
        shape = tuple(keypoints.shape)
        if keypoints.dim() != 4:
            raise ValueError(f"keypoints must have 4 dimensions (B, T, J, 2), got shape {shape}")
        if shape[2] != self.num_joints_in:
            raise ValueError(f"keypoints must have J={self.num_joints_in} joints in dim 2, got shape {shape}")
        if shape[3] != 2:
            raise ValueError(f"keypoints must have 2 coordinates in dim 3, got shape {shape}")
        if shape[1] < self.receptive_field:
            raise ValueError(
                f"keypoints: sequence of {shape[1]} frames is shorter than the receptive field {self.receptive_field}"
            )
        if shape[0] == 0:
            raise ValueError(f"keypoints is empty: shape {shape}")
        if torch.isnan(keypoints).any():
            raise ValueError("keypoints contain NaN")

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        """Lifts a 2D keypoint sequence to 3D.

        Args:
            keypoints: (B, T, J_in, 2) 2D keypoints, T >= R.

        Returns:
            (B, T_out, J_out, 3): T_out = T - R + 1 on the reference path, T // R on the optimised
            path (one output per non-overlapping window of R frames, trailing frames dropped).

        Raises:
            ValueError: On a wrong rank, joint or coordinate count, T < R, or NaN in `keypoints`.
        """
        self._check_input(keypoints)
        b, t = keypoints.shape[:2]
        x = keypoints.reshape(b, t, -1).transpose(1, 2)  # (B, J_in*2, T)
        x = self.drop(self.act(self.expand_bn(self.expand_conv(x))))
        for block in self.blocks:
            x = block(x)
        x = self.shrink(x)  # (B, J_out*3, T_out)
        return x.transpose(1, 2).reshape(b, x.shape[-1], self.num_joints_out, 3)


class TemporalModelOptimized(TemporalModel):
    """VideoPose3D lifter, optimised path: strided convolutions, one output per R input frames.

    Same arguments and `state_dict` as `TemporalModel`; on an input of exactly R frames both give the
    same output (in eval mode). Train this one on single-frame targets, then load its weights into a
    `TemporalModel` for sequence inference.
    """

    strided = True


def make_trajectory_model(pose_model: TemporalModel, **overrides: Any) -> TemporalModel:
    """Builds the trajectory model of the semi-supervised setting for a pose model.

    The same network (class and configuration) with J_out = 1: it predicts the camera-space position
    of the root joint, (B, T_out, 1, 3), which places the root-relative poses in the camera for the
    reprojection loss (`mobpose.losses.reprojection_loss`).

    Args:
        pose_model: The pose model whose architecture to copy (its weights are not copied).
        **overrides: Constructor arguments to change (e.g. `dropout`).
    """
    config = {**pose_model.config, "num_joints_out": 1, **overrides}
    return type(pose_model)(**config)


def _create(variant: str, optimized: bool = False, **kwargs: Any) -> TemporalModel:
    config = {**_DEFAULTS, **_VARIANTS[variant], **kwargs}
    cls = TemporalModelOptimized if optimized else TemporalModel
    return cls(**config)


_DEFAULTS: dict[str, Any] = {
    "num_joints_in": 17,
    "num_joints_out": 17,
    "channels": 1024,
    "dropout": 0.25,
    "causal": False,
}

_VARIANTS: dict[str, dict[str, Any]] = {
    "videopose3d_27": {"filter_widths": (3, 3, 3)},
    "videopose3d_81": {"filter_widths": (3, 3, 3, 3)},
    "videopose3d_243": {"filter_widths": (3, 3, 3, 3, 3)},
    "videopose3d_test": {"filter_widths": (3, 3), "channels": 16},
}


@register_model
def videopose3d_27(optimized: bool = False, **kwargs: Any) -> TemporalModel:
    """R = 27 frames, C = 1024 (8.56 M parameters). kwargs override the `TemporalModel` arguments."""
    return _create("videopose3d_27", optimized, **kwargs)


@register_model
def videopose3d_81(optimized: bool = False, **kwargs: Any) -> TemporalModel:
    """R = 81 frames, C = 1024 (12.75 M parameters)."""
    return _create("videopose3d_81", optimized, **kwargs)


@register_model
def videopose3d_243(optimized: bool = False, **kwargs: Any) -> TemporalModel:
    """R = 243 frames, C = 1024 (16.95 M parameters)."""
    return _create("videopose3d_243", optimized, **kwargs)


@register_model
def videopose3d_test(optimized: bool = False, **kwargs: Any) -> TemporalModel:
    """Tiny variant for tests: R = 9 frames, C = 16."""
    return _create("videopose3d_test", optimized, **kwargs)
