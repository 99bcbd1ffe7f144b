"""mobpose: real-time monocular 3D human pose estimation for phones and CPUs.

Importing the package needs only numpy. The PyTorch modules (`mobpose.functional`, the models and
training) import torch when first used.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import PackageNotFoundError, version

from . import metrics, ops, skeleton
from .skeleton import H36M_17, H36M_18, Skeleton

try:
    __version__ = version("mobpose")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {"functional"}
# Functions imported from their module on first use: name -> module.
_LAZY_ATTRS = {"list_pretrained": "pretrained", "load_model": "pretrained", "infer": "runtime.infer",
               "PoseResult": "runtime.infer", "Pipeline": "runtime.pipeline", "FramePose": "runtime.pipeline",
               "demo_video": "demo"}

__all__ = [
    "FramePose",
    "H36M_17",
    "H36M_18",
    "Pipeline",
    "PoseResult",
    "Skeleton",
    "__version__",
    "demo_video",
    "functional",
    "infer",
    "list_pretrained",
    "load_model",
    "metrics",
    "ops",
    "skeleton",
]


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_ATTRS:
        return getattr(importlib.import_module(f".{_LAZY_ATTRS[name]}", __name__), name)
    raise AttributeError(f"module 'mobpose' has no attribute {name!r}")
