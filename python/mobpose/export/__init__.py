"""Export to TFLite and checks of the written files.

Reading and checking exported files (:mod:`.check`, :func:`read_metadata`, :mod:`.runtime`) needs only
ai-edge-litert; exporting (:func:`export_tflite`, :func:`export_runtime_ipem`, :func:`export_step`) also
needs torch and litert-torch (the ``export`` extra), imported on first use.
"""

from __future__ import annotations

import importlib

from .check import GpuCheckReport, GpuCompatError, Violation, assert_gpu_compat, check_gpu_compat
from .metadata import METADATA_NAME, read_metadata

_LAZY = {"export_step": "tflite", "export_tflite": "tflite", "export_runtime_ipem": "tflite"}

__all__ = [
    "METADATA_NAME", "GpuCheckReport", "GpuCompatError", "Violation", "assert_gpu_compat", "check_gpu_compat",
    "export_runtime_ipem", "export_step", "export_tflite", "read_metadata",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'mobpose.export' has no attribute {name!r}")
