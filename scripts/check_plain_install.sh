#!/usr/bin/env bash
# What a user does: a fresh venv, `pip install .` alone (no extras), then mobpose.infer on a real photo and
# `mobpose infer` on the shipped demo clip. Checks the shapes, that torch was not installed, that stderr stays
# empty, and prints the seconds of the first call and the wheel's size.
#   bash scripts/check_plain_install.sh [PHOTO]     (default: an LSPET photo from ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
PHOTO=${1:-../shared/data/lspet/images/im09001.jpg}
[ -f "$PHOTO" ] || { echo "check_plain_install: no photo at $PHOTO (give one as the argument)"; exit 1; }
PHOTO=$(realpath "$PHOTO")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

t0=$(date +%s)
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --upgrade pip >/dev/null
"$WORK/venv/bin/python" -m pip install --quiet . >"$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log"; exit 1; }
t1=$(date +%s)
"$WORK/venv/bin/python" -m pip wheel --quiet --no-deps --no-build-isolation . -w "$WORK/wheel" >/dev/null 2>&1 \
  || "$WORK/venv/bin/python" -m pip wheel --quiet --no-deps . -w "$WORK/wheel" >/dev/null
wheel=$(ls "$WORK"/wheel/*.whl)
packages=$("$WORK/venv/bin/python" -m pip list --format=freeze 2>/dev/null | grep -vc '^\(pip\|setuptools\)==' || true)
venv_mb=$(du -sm "$WORK/venv" | cut -f1)
echo "plain install: pip install . in a fresh venv took $((t1 - t0)) s; $packages packages, ${venv_mb} MB;" \
     "wheel $(basename "$wheel") $(du -k "$wheel" | cut -f1) KB"

cd "$WORK"  # away from the source tree: the installed package is what runs
"$WORK/venv/bin/python" - "$PHOTO" >"$WORK/py.out" 2>"$WORK/py.err" <<'PY'
import importlib.util
import json
import sys
import time

t = time.perf_counter()
import mobpose

res = mobpose.infer(sys.argv[1])
first = time.perf_counter() - t
t = time.perf_counter()
again = mobpose.infer(sys.argv[1])
second = time.perf_counter() - t
assert importlib.util.find_spec("torch") is None, "torch was installed by the base install"
assert res.joints_3d.shape == (1, 17, 3) and res.joints_2d.shape == (1, 17, 2), res.joints_3d.shape
assert res.info["backend"] == "native", res.info["backend"]
assert first < 30, f"the first mobpose.infer took {first:.1f} s"  # about 2 s on the 2-core CI machine
print(json.dumps({"first_call_s": round(first, 2), "second_call_s": round(second, 2),
                  "backend": res.info["backend"], "found": bool(res.found[0]),
                  "presence": round(float(res.presence[0]), 3)}))
PY
cat "$WORK/py.out"
t2=$(date +%s.%N)
CLIP=$("$WORK/venv/bin/python" -c "import mobpose; print(mobpose.demo_video())")
"$WORK/venv/bin/mobpose" infer "$CLIP" --out "$WORK/poses.npz" >"$WORK/cli.out" 2>"$WORK/cli.err"
t3=$(date +%s.%N)
cat "$WORK/cli.out"
"$WORK/venv/bin/python" - "$WORK/poses.npz" <<'PY'
import sys

import mobpose

r = mobpose.PoseResult.load(sys.argv[1])
assert r.joints_3d.shape == (60, 17, 3), r.joints_3d.shape
assert r.found.shape == (60,)
print(f"mobpose infer on the shipped clip: {len(r)} frames, a person found in {int(r.found.sum())}")
PY
echo "mobpose infer took $(python3 -c "print(round($t3 - $t2, 2))") s (process start included)"
# A command that needs an extra says which, in one line (no traceback).
rc=0
"$WORK/venv/bin/mobpose" bench kernels --quick >/dev/null 2>"$WORK/extra.err" || rc=$?
if [ "$rc" != 2 ] || ! grep -q "pip install 'mobpose\[train\]'" "$WORK/extra.err" || [ "$(grep -c . "$WORK/extra.err")" != 1 ]; then
  echo "mobpose bench kernels without torch: exit $rc, expected 2 and one line naming the extra:"; cat "$WORK/extra.err"
  exit 1
fi
echo "without torch, mobpose bench kernels says: $(cat "$WORK/extra.err")"
# bench pipeline times the shipped clip (no data set), skipping the torch backend it cannot run.
"$WORK/venv/bin/mobpose" bench pipeline --frames 20 --warmup 5 --threads 1 >"$WORK/bench.out" 2>"$WORK/bench.err"
grep -q '"case": "summary"' "$WORK/bench.out" || { echo "bench pipeline gave no summary:"; cat "$WORK/bench.out"; exit 1; }
echo "bench pipeline (base install): $(grep '"case": "summary"' "$WORK/bench.out")"
fail=0
for f in py.err cli.err bench.err; do
  n=$(grep -c . "$WORK/$f" || true)
  echo "stderr lines ($f): $n"
  if [ "$n" -gt 0 ]; then cat "$WORK/$f"; fail=1; fi
done
exit $fail
