"""Protocol reports: every metric per action and overall, for one or more kinds of prediction.

Metrics are those of `mobpose.metrics` (MPJPE, P-MPJPE, PA-MPJPE, N-MPJPE, MPJVE) on root-relative
camera-space millimetres. MPJPE-type numbers are frame-weighted means over clips; MPJVE is computed
within each clip (consecutive frames) and weighted the same way.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from .. import metrics

__all__ = ["clip_metrics", "format_report", "progress_bar", "report_by_action"]

logger = logging.getLogger(__name__)


def progress_bar(items: Iterable, *, total: int | None = None, desc: str, unit: str = "it", enabled: bool = True):
    """`items` with a tqdm progress bar on stderr when `enabled` and tqdm is installed (the train extra);
    without tqdm, one log line and `items` as they are."""
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        logger.info("%s: %s %ss (install tqdm for a progress bar)", desc, total if total is not None else "?", unit)
        return items
    return tqdm(items, total=total, desc=desc, unit=unit, leave=False)


def clip_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """All five metrics of one clip: pred and target (T, J, 3) mm."""
    out = {name: float(fn(pred, target)) for name, fn in metrics.METRICS.items() if name != "MPJVE"}
    out["MPJVE"] = float(metrics.mpjve(pred, target, axis=0))
    return out


def report_by_action(items) -> dict[str, dict[str, dict[str, float]]]:
    """items: iterable of (action, target (T,J,3), {kind: prediction (T,J,3)}).

    Returns:
        {action or 'all': {kind: {metric: value}}}.
    """
    sums: dict[str, dict[str, dict[str, list]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for action, target, preds in items:
        for kind, pred in preds.items():
            for name, value in clip_metrics(pred, target).items():
                for key in (action, "all"):
                    sums[key][kind][name].append((value, len(target)))
    order = sorted(k for k in sums if k != "all") + ["all"]
    return {a: {kind: {m: _weighted(v) for m, v in ms.items()} for kind, ms in sums[a].items()} for a in order}


def _weighted(values: list[tuple[float, int]]) -> float:
    v = np.array([x for x, _ in values], dtype=np.float64)
    w = np.array([n for _, n in values], dtype=np.float64)
    return float((v * w).sum() / w.sum())


def format_report(report: dict, protocol: str = "CMU-17") -> str:
    """A text table: one row per action and kind, one column per metric (mm)."""
    first = next(iter(report.values()))
    names = list(next(iter(first.values())))
    lines = [
        f"protocol {protocol}: root-relative camera-space mm",
        "; ".join(f"{n}: {metrics.PROTOCOLS[n]}" for n in names),
        f"{'action':<18}{'prediction':<14}" + "".join(f"{n:>10}" for n in names),
    ]
    for action, kinds in report.items():
        for kind, vals in kinds.items():
            lines.append(f"{action:<18}{kind:<14}" + "".join(f"{vals[n]:>10.1f}" for n in names))
    return "\n".join(lines)
