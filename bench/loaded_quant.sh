#!/bin/sh
# loaded_quant.sh BUILD: the stories260K SpQR quantization (32 calibration
# windows, CPU) through plain BUILD/qharness, as a researcher runs it (no
# OpenMP variable set by this script; any set by the caller is removed), timed
# on the machine as it is ("idle"), then with one busy process per CPU started
# here ("loaded"): the loaded time as a ratio of the idle one (target: at most
# 2x; a program that gets its fair share of cores that are each shared with
# one busy process takes 1.5x to 2x). Median of RUNS runs each (default 3).
# Not here: the quantization itself (quant/, harness/calib/).
set -eu
build=${1:-build}
runs=${RUNS:-3}
qh=$build/qharness
model=${QH_DATA:-data}/models/stories260K/stories260K.bin
if [ ! -x "$qh" ] || [ ! -f "$model" ]; then
    echo "skipped: $qh or $model missing (make, make data)"
    exit 0
fi
unset OMP_WAIT_POLICY OMP_NUM_THREADS GOMP_SPINCOUNT OMP_DYNAMIC OPENBLAS_NUM_THREADS
ncpu=$(getconf _NPROCESSORS_ONLN)
busy=""
stop_busy() {
    for p in $busy; do kill "$p" 2>/dev/null || true; done
    busy=""
}
trap stop_busy EXIT INT TERM

# one_run: seconds of one quantization (wall clock, ms resolution)
one_run() {
    t0=$(date +%s%N)
    "$qh" quantize --model "$model" --method spqr --wbits 3 --nsamples 32 --device cpu >/dev/null
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 ))
}
# median_of N: the median of N runs, in ms; the single times on stderr
median_of() {
    ts=""
    for i in $(seq "$1"); do
        t=$(one_run)
        ts="$ts $t"
    done
    echo "  runs (ms):$ts" >&2
    echo $ts | tr ' ' '\n' | sort -n | sed -n "$(( ($1 + 1) / 2 ))p"
}

echo "stories260K spqr w3, 32 calibration windows, $ncpu CPUs, $runs runs each; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
idle=$(median_of "$runs")
echo "idle:   median ${idle} ms"
for i in $(seq "$ncpu"); do
    sh -c 'while :; do :; done' &
    busy="$busy $!"
done
sleep 1
loaded=$(median_of "$runs")
stop_busy
echo "loaded: median ${loaded} ms (with $ncpu busy processes)"
awk -v a="$loaded" -v b="$idle" 'BEGIN { r = a / b; printf "loaded / idle = %.2f (target <= 2: %s)\n", r, r <= 2 ? "met" : "NOT met" }'
