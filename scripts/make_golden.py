"""Writes the golden fixtures of tests/fixtures/golden/ (see mobpose.export.golden).

    python scripts/make_golden.py [--out tests/fixtures/golden] [--no-shipped]

Run it after a deliberate change of a model's numerics or of a shipped weights file, and commit the
result; tests/test_golden.py fails until then.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mobpose.export.golden import make_golden


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "golden"))
    ap.add_argument("--no-shipped", action="store_true", help="only the test variants")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for path in make_golden(args.out, shipped=not args.no_shipped):
        logging.info("%s: %d bytes", path.name, path.stat().st_size)


if __name__ == "__main__":
    main()
