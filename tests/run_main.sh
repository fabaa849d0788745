#!/bin/sh
# run_main.sh QHARNESS: the README's main job (`make run`): the
# stories260K_methods experiment end to end on the built-in model: RTN, GPTQ
# and SpQR at 2, 3 and 4 bits, each quantized with sequential calibration and
# evaluated on wikitext2, ptb, c4 and tinystories (SPEC 7 protocol), the
# full-precision evaluation once; then the paper-shaped table and the plots.
# Results: results/stories260K_methods/ (points/*.h5, fp/*.h5, table.md,
# table.csv, plots/). Interrupted runs resume: finished points are kept.
# Not here: how points are run (qharness sweep), the table (report), the
# plots (plot); see experiments/README.md. Then the speed table of
# stories260K_speed (results/stories260K_speed/: models/, speed.h5, table.md).
set -eu
qh=${1:-build/qharness}
# OpenMP threads sleep instead of spinning at barriers: as fast alone, and
# 2x faster when another process competes for the 2 cores (measured)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
exp=stories260K_methods
out=results/$exp
start=$(date +%s)
echo "== sweep experiments/$exp.ini =="
"$qh" sweep "experiments/$exp.ini"
echo
echo "== table =="
"$qh" report "$out"
echo
echo "== plots =="
if command -v gnuplot >/dev/null 2>&1; then
    "$qh" plot "$out"
else
    echo "gnuplot not installed (make deps): plot data not drawn"
fi
echo
# the paper's speed table on the CPU: stories260K in full precision against its
# RTN / GPTQ 4-bit and SpQR 3-bit models (without and with outliers), tokens per
# second of KV-cache generation (qharness speed; experiments/stories260K_speed.ini)
echo "== speed: sweep experiments/stories260K_speed.ini =="
"$qh" sweep experiments/stories260K_speed.ini
echo
echo "== speed table =="
"$qh" report results/stories260K_speed
echo
echo "make run: $(( $(date +%s) - start )) s; results in $out/ and results/stories260K_speed/"
