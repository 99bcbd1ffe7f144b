#!/usr/bin/env bash
# The C++-core half of android_bench (--backend=core and spin; no TFLite) as one fully static aarch64 binary, built
# without the NDK by zig's clang and musl (the PyPI wheel ziglang): it runs from `adb shell` on any arm64 Android
# phone as on any aarch64 Linux. With qemu-user-static installed, it is also run here once (the soft-argmax).
# usage: android_bench/scripts/build_static_aarch64.sh [BUILD_DIR]   (default build/android_bench-static-aarch64)
# env: PYTHON (default: .venv/bin/python, else python3), the interpreter that has ziglang installed
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build/android_bench-static-aarch64}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
"$PY" -m ziglang version >/dev/null 2>&1 || { echo "needs the ziglang wheel: $PY -m pip install ziglang==0.17.0" >&2; exit 2; }
mkdir -p "$BUILD"
PYABS=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
# CMake wants one compiler executable: a wrapper around `zig c++ -target aarch64-linux-musl`
cat > "$BUILD/zig-c++" <<WRAP
#!/bin/sh
exec "$PYABS" -m ziglang c++ -target aarch64-linux-musl "\$@"
WRAP
cat > "$BUILD/zig-ar" <<WRAP
#!/bin/sh
exec "$PYABS" -m ziglang ar "\$@"
WRAP
cat > "$BUILD/zig-ranlib" <<WRAP
#!/bin/sh
exec "$PYABS" -m ziglang ranlib "\$@"
WRAP
chmod +x "$BUILD/zig-c++" "$BUILD/zig-ar" "$BUILD/zig-ranlib"
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
cmake -S android_bench -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
  -DCMAKE_CXX_COMPILER="$PWD/$BUILD/zig-c++" -DCMAKE_AR="$PWD/$BUILD/zig-ar" -DCMAKE_RANLIB="$PWD/$BUILD/zig-ranlib" \
  -DANDROID_BENCH_TFLITE=OFF -DCMAKE_EXE_LINKER_FLAGS=-static >/dev/null
cmake --build "$BUILD" --target android_bench
BIN="$BUILD/android_bench"
file "$BIN" 2>/dev/null || true
if command -v qemu-aarch64-static >/dev/null; then
  # a static musl binary needs no sysroot; TFLite's cpuinfo is not in it, so no fake /proc/cpuinfo either
  qemu-aarch64-static "$BIN" --backend=core --core=softargmax --num_runs=20 --warmup_runs=2 --input_fps=0
fi
echo "built $BIN"
