"""Where each of RTMO's per-cell predictions sits in the last axis of its dense output (numpy only: the inference
runtime reads it without torch; mobpose.models.rtmo.dense_layout is this)."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["layout"]


def layout(config: Any) -> dict[str, slice]:
    """``score`` (1), ``box`` (4), ``offsets`` (2J), ``visibility`` (J), ``pose`` (P) of an RTMOConfig or its dict."""
    c = config if isinstance(config, dict) else dataclasses.asdict(config)
    j = int(c["num_joints"])
    sizes = {"score": 1, "box": 4, "offsets": 2 * j, "visibility": j, "pose": int(c["pose_channels"])}
    out, start = {}, 0
    for name, n in sizes.items():
        out[name] = slice(start, start + n)
        start += n
    return out
