"""Multiply-accumulates of a model's convolutions, counted by forward hooks (for the MAC formulas' tests)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def conv_macs_by_hooks(model: nn.Module, run: Callable[[], object]) -> int:
    """The MACs of every nn.Conv2d while `run()` executes: output elements x (in/groups) x kernel area."""
    measured: list[int] = []

    def hook(mod: nn.Conv2d, _inp, out) -> None:
        kh, kw = mod.kernel_size
        measured.append(out.numel() * mod.in_channels // mod.groups * kh * kw)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return sum(measured)
