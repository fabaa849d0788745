#!/bin/sh
# run_bench.sh BUILD: the GPU benchmarks (kernels/bench/bench_*.c, built into
# BUILD/bench/), each reporting its timings as ratios against a baseline
# (cuBLAS GEMM) measured in the same run, then one LLaMA-7B-shaped block
# quantized on the GPU (gpu_block_quant.sh). Each prints "skipped: no GPU"
# where there is none and runs with its defaults. The CPU benchmarks:
# bench/run_bench.sh (`make bench` runs both).
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
echo "==== gpu_block_quant (LLaMA-7B-shaped block on the GPU) ===="
"$here/gpu_block_quant.sh" "$build"
