"""`python -m mobpose.bench SUITE [options]`: benchmarks that print one JSON line per case."""

from __future__ import annotations

import argparse
import sys

SUITES = ("kernels", "data", "export", "prm-step", "pipeline", "search", "people", "report")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mobpose.bench", description=__doc__)
    sub = parser.add_subparsers(dest="suite", required=True)
    from . import data, export, kernels, people, pipeline, prm, report, search

    kernels.add_arguments(sub.add_parser("kernels", help="C++ kernels vs PyTorch, same run"))
    data.add_arguments(sub.add_parser("data", help="synthetic engine images/s vs an IPEM training step"))
    export.add_arguments(sub.add_parser("export", help="exported TFLite models vs PyTorch eager, same run"))
    prm.add_arguments(sub.add_parser("prm-step", help="native PRM step/forward vs PyTorch eager, same run"))
    pipeline.add_arguments(sub.add_parser("pipeline", help="frame -> 3D pose per backend and thread count"))
    search.add_arguments(sub.add_parser("search", help="the person search: IPEM runs and ms per frame, found"))
    people.add_arguments(sub.add_parser("people", help="RTMO vs the top-down paths against the number of people"))
    report.add_arguments(sub.add_parser("report", help="markdown tables from a --out file"))
    args = parser.parse_args(argv)
    suites = {"kernels": kernels.run, "data": data.run, "export": export.run, "prm-step": prm.run,
              "pipeline": pipeline.run, "search": search.run, "people": people.run, "report": report.run}
    return suites[args.suite](args, lambda line: print(line, flush=True))


if __name__ == "__main__":
    sys.exit(main())
