#!/usr/bin/env bash
# Runs android_bench on a phone over adb: pushes the binary, the model and the TFLite libraries to
# /data/local/tmp/mobpose, runs it pinned to the big cores, pulls the JSON record to runs/.
# usage: run_on_device.sh BINARY MODEL.tflite LIB.so [GPU_LIB.so] [-- android_bench flags...]
#   (a fourth argument ending in .so is the GPU delegate's library; every later argument goes to android_bench)
# env: ADB (default adb), CPUS (taskset mask; default: the cores with the highest max frequency)
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,7p' "$0" >&2; exit 2; }
BIN=$1 MODEL=$2 LIB=$3
shift 3
GPU_LIB=""
if [ $# -ge 1 ] && [[ $1 == *.so ]]; then GPU_LIB=$1; shift; fi
[ "${1:-}" = "--" ] && shift
ADB=${ADB:-adb}
for f in "$BIN" "$MODEL" "$LIB" ${GPU_LIB:+"$GPU_LIB"}; do
  [ -f "$f" ] || { echo "run_on_device: no such file: $f" >&2; exit 2; }
done
"$ADB" get-state >/dev/null || { echo "run_on_device: no device (adb get-state failed)" >&2; exit 2; }
DIR=/data/local/tmp/mobpose
"$ADB" shell mkdir -p "$DIR"
"$ADB" push "$BIN" "$DIR/android_bench" >/dev/null
"$ADB" push "$MODEL" "$DIR/model.tflite" >/dev/null
"$ADB" push "$LIB" "$DIR/$(basename "$LIB")" >/dev/null
GPU_FLAG=""
if [ -n "$GPU_LIB" ]; then
  "$ADB" push "$GPU_LIB" "$DIR/$(basename "$GPU_LIB")" >/dev/null
  GPU_FLAG="--gpu_delegate_lib=$DIR/$(basename "$GPU_LIB")"
fi
"$ADB" shell chmod 755 "$DIR/android_bench"
if [ -z "${CPUS:-}" ]; then
  # the big cores: those whose cpuinfo_max_freq is the highest, as a hex taskset mask
  CPUS=$("$ADB" shell 'max=0; mask=0; i=0; for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; do
      v=$(cat $f); c=${f#/sys/devices/system/cpu/cpu}; c=${c%%/*};
      if [ $v -gt $max ]; then max=$v; mask=$((1 << c)); elif [ $v -eq $max ]; then mask=$((mask | (1 << c))); fi;
    done; printf %x $mask' | tr -d '\r')
fi
STAMP=$(date +%Y%m%d-%H%M%S)
"$ADB" shell "cd $DIR && LD_LIBRARY_PATH=$DIR taskset $CPUS ./android_bench --graph=$DIR/model.tflite \
    --tflite_lib=$DIR/$(basename "$LIB") $GPU_FLAG --result_file=$DIR/result.json $*"
mkdir -p runs
"$ADB" pull "$DIR/result.json" "runs/android_bench-$STAMP.json" >/dev/null
echo "run_on_device: wrote runs/android_bench-$STAMP.json (cores mask $CPUS)"
