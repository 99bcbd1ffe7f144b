"""Benchmarks that print figures: `python -m mobpose.bench kernels` (one JSON line per case)."""

from .timing import Timing, time_call

__all__ = ["Timing", "time_call"]
