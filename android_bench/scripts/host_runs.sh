#!/usr/bin/env bash
# The host runs of docs/BENCHMARKS.md ("android_bench on the host"): the shipped default IPEM, and the IPEM then
# the PRM per frame, 1000 frames at 30 fps and back to back (XNNPACK, one thread), and the C++ core's native PRM
# step; summary lines on stdout, JSON records in runs/android_bench/.
# usage: android_bench/scripts/host_runs.sh [EXTRA FLAGS...]   (needs the dev venv: litert-lm-api, cmake)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
cmake -S android_bench -B build/android_bench -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/android_bench >/dev/null
BIN=build/android_bench/android_bench
LIB=$("$PY" -c "import importlib.util as u; print(u.find_spec('litert_lm').submodule_search_locations[0])")/liblitert-lm.so
W=python/mobpose/weights
OUT=runs/android_bench
mkdir -p "$OUT"
run() {  # name, flags...
  local name=$1
  shift
  echo "== $name"
  "$BIN" --tflite_lib="$LIB" --result_file="$OUT/$name.json" "$@" 2> >(grep -v "XNNPACK delegate for CPU" >&2)
}
run ipem_30fps --graph=$W/ipem-mnv2.tflite --num_runs=1000 --input_fps=30 "$@"
run ipem_b2b --graph=$W/ipem-mnv2.tflite --num_runs=1000 --input_fps=0 "$@"
run ipem_prm_30fps --graph=$W/ipem-mnv2.tflite,$W/prm-causal.tflite --num_runs=1000 --input_fps=30 "$@"
run ipem_prm_b2b --graph=$W/ipem-mnv2.tflite,$W/prm-causal.tflite --num_runs=1000 --input_fps=0 "$@"
run prm_native_30fps --backend=core --core=prm --graph=$W/prm-causal.safetensors --num_runs=1000 --input_fps=30 "$@"
