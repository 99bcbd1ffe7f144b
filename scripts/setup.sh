#!/usr/bin/env bash
# Sets up mobpose in ./.venv (a fresh Python 3.11 venv, the package built from source with its C++
# extension, torch pinned at 2.13.0 CPU) and runs the main job: 3D poses from a (rendered) video.
#   bash scripts/setup.sh            # set up, then mobpose infer on runs/demo/person.mp4
#   bash scripts/setup.sh --no-run   # set up only
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# torch first, pinned, so nothing else can pull another (CUDA) build.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet ".[dev]"
.venv/bin/mobpose info
if [ "${1:-}" != "--no-run" ]; then
  # The main job on the demo clip the package ships (a rendered person walking; no data set, no download).
  clip=$(.venv/bin/python -c "import mobpose; print(mobpose.demo_video())")
  .venv/bin/mobpose infer "$clip" --out runs/demo/poses.npz --render runs/demo/drawn.mp4
fi
