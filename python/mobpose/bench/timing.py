"""Timing of a callable: warm-up, then runs bounded by count and by time, with percentiles."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["Timing", "json_lines", "time_call"]


@dataclass(frozen=True)
class Timing:
    """Times of the timed runs in milliseconds."""

    runs: int
    median_ms: float
    p90_ms: float
    min_ms: float
    mean_ms: float
    std_ms: float

    @classmethod
    def from_ms(cls, times_ms) -> Timing:
        """The statistics of a sequence of times in milliseconds."""
        a = np.asarray(times_ms, dtype=np.float64)
        return cls(runs=len(a), median_ms=float(np.median(a)), p90_ms=float(np.percentile(a, 90)),
                   min_ms=float(a.min()), mean_ms=float(a.mean()), std_ms=float(a.std()))

    def as_dict(self, prefix: str) -> dict[str, float | int]:
        return {
            f"{prefix}_ms_median": round(self.median_ms, 5),
            f"{prefix}_ms_p90": round(self.p90_ms, 5),
            f"{prefix}_ms_min": round(self.min_ms, 5),
            f"{prefix}_runs": self.runs,
        }


def time_call(
    fn: Callable[[], object],
    *,
    warmup: int = 3,
    min_runs: int = 10,
    max_runs: int = 500,
    max_seconds: float = 1.0,
    setup: Callable[[], object] | None = None,
) -> Timing:
    """Time `fn()`: `warmup` untimed calls, then at least `min_runs` and at most `max_runs` timed calls,
    stopping after `max_seconds` once `min_runs` are done. `setup()` runs untimed before each call."""
    for _ in range(warmup):
        if setup is not None:
            setup()
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < max_seconds):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return Timing.from_ms(times)


@contextlib.contextmanager
def json_lines(bench: str, emit: Callable[[str], None], out: str | None = None) -> Iterator[Callable[[dict], None]]:
    """``put(record)``: one JSON line ``{"bench": bench, **record}`` to `emit`, appended to the file `out` too."""
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(open(out, "a")) if out else None

        def put(record: dict) -> None:
            line = json.dumps({"bench": bench, **record})
            emit(line)
            if sink is not None:
                sink.write(line + "\n")

        yield put
