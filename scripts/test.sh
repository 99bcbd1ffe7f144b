#!/usr/bin/env bash
# Runs every test: lint, the C++ kernel tests (ctest, once optimised and once under AddressSanitizer
# and UBSan; the thread pool also under ThreadSanitizer; the NEON variants cross-built for aarch64
# and run under qemu when the cross tools are installed), and the Python suite (pytest), with LiteRT's
# GPU engine on software Vulkan when scripts/install_lavapipe.sh can set it up.
# Needs the venv made by scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
[ -x "$PY" ] || { echo "no $PY: run 'bash scripts/setup.sh --no-run' first" >&2; exit 2; }
export PATH="$PWD/$VENV/bin:$PATH"

echo "== ruff"
"$PY" -m ruff check python tests

echo "== C++ tests (Release)"
cmake -S . -B build/ctest -G Ninja -DMOBPOSE_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/ctest
ctest --test-dir build/ctest --output-on-failure

echo "== C++ tests (AddressSanitizer + UBSan)"
cmake -S . -B build/ctest-asan -G Ninja -DMOBPOSE_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS="-O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" >/dev/null
cmake --build build/ctest-asan
ctest --test-dir build/ctest-asan --output-on-failure

echo "== C++ thread pool under ThreadSanitizer"
cmake -S . -B build/ctest-tsan -G Ninja -DMOBPOSE_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS="-O1 -fsanitize=thread" >/dev/null
cmake --build build/ctest-tsan --target test_ops
TSAN_OPTIONS=halt_on_error=1 build/ctest-tsan/kernels/tests/test_ops

echo "== NEON kernels and android_bench: aarch64 cross build under qemu-user"
if command -v aarch64-linux-gnu-g++ >/dev/null && command -v qemu-aarch64-static >/dev/null; then
  cmake -S . -B build/ctest-aarch64 -G Ninja -DMOBPOSE_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
    -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ >/dev/null
  cmake --build build/ctest-aarch64
  for t in test_kernels test_ops test_safetensors; do
    qemu-aarch64-static -L /usr/aarch64-linux-gnu "build/ctest-aarch64/kernels/tests/$t" | tail -n 3
  done
  # android_bench, cross-built from the same sources: its host tests under qemu
  qemu-aarch64-static -L /usr/aarch64-linux-gnu build/ctest-aarch64/android_bench/test_android_bench
  # and its C++-core half as one static aarch64 binary (zig's clang + musl, no NDK), run under qemu
  PYTHON="$PY" bash android_bench/scripts/build_static_aarch64.sh
else
  echo "skipped: needs g++-aarch64-linux-gnu and qemu-user-static (.ci/run installs them)"
fi

echo "== pytest"
# LiteRT's GPU engine runs on Mesa's lavapipe (software Vulkan, Mesa >= 25 from Debian's backports);
# without it the GPU-engine tests skip (or fail when MOBPOSE_REQUIRE_GPU=1, as in .ci/run).
if [ -z "${VK_ICD_FILENAMES:-}" ]; then
  if out=$(bash scripts/install_lavapipe.sh 2>/dev/null); then eval "$out"; else
    echo "no lavapipe (scripts/install_lavapipe.sh failed): the GPU-engine tests will skip"; fi
fi
"$PY" -m pytest "$@"
