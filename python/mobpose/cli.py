"""The `mobpose` command line: `mobpose info`, `mobpose bench kernels ...`."""

from __future__ import annotations

import argparse
import json
import logging
import sys


def _info(_: argparse.Namespace) -> int:
    import importlib.util

    from . import __version__, ops

    record = {"mobpose": __version__, "native": ops.native_available()}
    if ops.native_available():
        from . import _core

        record.update(
            kernel_variant=ops.kernel_variant(),
            available_kernel_variants=ops.available_kernel_variants(),
            kernels=ops.kernel_names(),
            hardware_threads=_core.hardware_threads(),
        )
    record["torch"] = importlib.util.find_spec("torch") is not None
    print(json.dumps(record, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mobpose` console script."""
    parser = argparse.ArgumentParser(prog="mobpose", description="Real-time monocular 3D human pose.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version, kernel variant and what is installed")
    bench = sub.add_parser("bench", help="benchmarks (same as python -m mobpose.bench)")
    bench.add_argument("suite_args", nargs=argparse.REMAINDER, help="SUITE [options], e.g. kernels --quick")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.command == "info":
        return _info(args)
    from .bench.__main__ import main as bench_main

    return bench_main(args.suite_args)


if __name__ == "__main__":
    sys.exit(main())
