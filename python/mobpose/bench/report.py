"""Markdown tables from the JSON lines a benchmark wrote (`--out FILE`), for docs/BENCHMARKS.md."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a JSON-lines file written by a benchmark's --out")


def _softargmax_table(rows: list[dict]) -> list[str]:
    out = [
        "| shape | mode | threads | C++ median / p90 ms | C++ cold ms | PyTorch same mode ms "
        "| PyTorch exact ms | x vs same mode | x vs exact | bandwidth fraction hot / cold |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {'x'.join(map(str, r['shape']))} | {r['mode']} | {r['threads']} "
            f"| {r['cpp_ms_median']:.4f} / {r['cpp_ms_p90']:.4f} | {r['cpp_cold_ms_median']:.4f} "
            f"| {r['torch_ms_median']:.3f} | {r['torch_exact_ms_median']:.3f} "
            f"| {r['speedup_vs_torch_same_mode']:.1f} | {r['speedup_vs_torch_exact']:.1f} "
            f"| {r['bandwidth_fraction_hot']:.2f} / {r['bandwidth_fraction_cold']:.2f} |"
        )
    return out


def _mqa_table(rows: list[dict]) -> list[str]:
    out = [
        "| B, H, N, d | prior | causal | threads | C++ median / p90 ms | PyTorch median / p90 ms "
        "| x vs PyTorch | plain PyTorch median ms | x vs plain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        plain = (f"| {r['torch_plain_ms_median']:.4f} | {r['speedup_vs_torch_plain']:.2f} |"
                 if "torch_plain_ms_median" in r else "| - | - |")
        out.append(
            f"| {', '.join(map(str, r['shape_bhnd']))} | {r['prior']} | {r['causal']} | {r['threads']} "
            f"| {r['cpp_ms_median']:.4f} / {r['cpp_ms_p90']:.4f} "
            f"| {r['torch_ms_median']:.4f} / {r['torch_ms_p90']:.4f} | {r['speedup_vs_torch']:.2f} " + plain
        )
    return out


def run(args: argparse.Namespace, emit: Callable[[str], None]) -> int:
    """Formats the file's records; `emit` receives the markdown text."""
    with open(args.file) as f:
        records = [json.loads(line) for line in f if line.strip()]
    lines = []
    for r in records:
        if r.get("case") in ("machine", "summary"):
            lines.append("`" + json.dumps(r) + "`")
            lines.append("")
    sa = [r for r in records if r.get("op") == "soft_argmax_3d"]
    mq = [r for r in records if r.get("op") == "mqa_prior"]
    if sa:
        lines += _softargmax_table(sa) + [""]
    if mq:
        lines += _mqa_table(mq) + [""]
    emit("\n".join(lines))
    return 0
