"""Export to TFLite and checks of the written files."""

from .check import GpuCheckReport, GpuCompatError, Violation, assert_gpu_compat, check_gpu_compat
from .tflite import export_step, export_tflite, read_metadata

__all__ = [
    "GpuCheckReport", "GpuCompatError", "Violation", "assert_gpu_compat", "check_gpu_compat", "export_step",
    "export_tflite",
    "read_metadata",
]
