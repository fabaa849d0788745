#!/bin/sh
# run_bench.sh BUILD: every benchmark, each reporting its timings as ratios
# against a baseline (sgemm / cuBLAS GEMM) measured in the same run.
# GPU benchmarks print "skipped: no GPU" where there is none. Each benchmark
# runs with its defaults.
set -eu
build=${1:-build}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
for b in "$build"/bench/bench_*; do
    [ -x "$b" ] || continue
    case "$b" in *.d|*.o) continue ;; esac
    echo "==== $(basename "$b") ===="
    "$b"
    echo
done
echo "==== stream_eval_rss (evaluation under --max-memory) ===="
"$(dirname "$0")/stream_eval_rss.sh" "$build"
echo
echo "==== gpu_block_quant (LLaMA-7B-shaped block on the GPU) ===="
"$(dirname "$0")/gpu_block_quant.sh" "$build"
