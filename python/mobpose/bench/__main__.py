"""`python -m mobpose.bench SUITE [options]`: benchmarks that print one JSON line per case."""

from __future__ import annotations

import argparse
import sys

SUITES = ("kernels",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mobpose.bench", description=__doc__)
    sub = parser.add_subparsers(dest="suite", required=True)
    from . import kernels

    kernels.add_arguments(sub.add_parser("kernels", help="C++ kernels vs PyTorch, same run"))
    args = parser.parse_args(argv)
    if args.suite == "kernels":
        return kernels.run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
