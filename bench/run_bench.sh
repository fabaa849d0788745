#!/bin/sh
# run_bench.sh BUILD: the CPU benchmarks (bench/bench_*.c, built into
# BUILD/bench/), each reporting its timings as ratios against the sgemm rate
# measured in the same run, then evaluation under --max-memory
# (stream_eval_rss.sh) and a quantization on a loaded machine
# (loaded_quant.sh: idle, then one busy process per CPU). The GPU
# benchmarks: kernels/bench/run_bench.sh (`make bench` runs both). Measured numbers: bench/RESULTS.md.
set -eu
build=${1:-build}
here=$(dirname "$0")
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
for src in "$here"/bench_*.c; do
    b=$build/bench/$(basename "$src" .c)
    [ -x "$b" ] || continue
    echo "==== $(basename "$b") ===="
    "$b"
    echo
done
echo "==== stream_eval_rss (evaluation under --max-memory) ===="
"$here/stream_eval_rss.sh" "$build"
echo
echo "==== loaded_quant (stories260K SpQR quantization: idle, then one busy process per CPU) ===="
"$here/loaded_quant.sh" "$build"
