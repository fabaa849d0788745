#!/bin/sh
# sweep_stream.sh BUILD: a sweep under [run] max_memory / max_device_memory on
# the GPU (device = cuda, QH_CUDA_MATH=fp32) against the same sweep on the GPU
# without budgets, on the procedural model of tests/cli/test_sweep_stream.sh
# (64 blocks of dim 256, 194.1 MB in fp32; rtn and gptq at 3 bits, 2 x 32
# calibration, 2 x 64 evaluation): every job's line says it was streamed, the
# plans put one block on the device at a time, the same point ids, the saved
# models' layer datasets equal (h5diff, exact), the per-token NLLs equal
# (h5diff, exact) and the perplexities to 17 digits, points and full
# precision. max_device_memory 3000 MB (the quantizer's 2 GiB reserve and
# one block); max_memory 200 MB. Prints "skipped: no GPU" and exits 0 without
# a usable CUDA GPU. Run by tests/gpu/device_check.sh; needs data/ (QH_DATA):
# stories260K's tokenizer, tinystories, c4.
cd "$(dirname "$0")/../.." || exit 1
QH_BUILD=${1:-build}
export QH_BUILD QH_CUDA_MATH=fp32
. tests/cli/lib.sh
require_stories260k
# h5diff / h5dump / h5ls: the system's, or hdf5-tools unpacked beside the build by device_check.sh
[ -d "$QH_BUILD/../root/usr/bin" ] && PATH="$(cd "$QH_BUILD/../root/usr/bin" && pwd):$PATH"
for t in h5diff h5dump h5ls; do
    command -v $t >/dev/null 2>&1 || { echo "sweep_stream: $t not found (hdf5-tools; tests/gpu/fetch_devlibs.sh fetches it)"; exit 1; }
done
case "$TOK" in /*) ;; *) TOK="$(pwd)/$TOK" ;; esac
. tests/cli/sweep_stream_lib.sh
P=$SS_MODEL
if ! "$QH" eval --model "$P" --tokenizer "$TOK" --dataset tinystories --seqlen 32 --max-windows 1 --device cuda \
    >/dev/null 2>&1; then
    echo "skipped: no GPU (eval --device cuda fails)"
    exit 0
fi
exp() { ss_exp "$1" "$2" true cuda "$3"; } # NAME OUTDIR RUN-LINES
exp budget "$T/b" "max_memory = 200
max_device_memory = 3000"
exp whole "$T/w" ""
"$QH" sweep "$T/budget.ini" >"$T/b.out" 2>"$T/b.err"
check "GPU sweep with budgets ($(grep -v '^ ' "$T/b.err" | head -c 300))" [ $? -eq 0 ]
"$QH" sweep "$T/whole.ini" >"$T/w.out" 2>"$T/w.err"
check "GPU sweep without budgets ($(head -c 300 "$T/w.err"))" [ $? -eq 0 ]
cat "$T/b.out" "$T/w.out"
check "3 jobs streamed" [ "$(grep -c 'streamed (max_memory 200 MB)' "$T/b.out")" -eq 3 ]
check "one block on the device at a time" grep -q "device: one block at a time" "$T/b.err"
check_same "the same point ids" "$(ls "$T/b/points" | tr '\n' ' ')" "$(ls "$T/w/points" | tr '\n' ' ')"
for f in "$T"/b/points/*.h5 "$T"/b/fp/*.h5; do
    g=$(echo "$f" | sed "s|^$T/b/|$T/w/|")
    id=$(basename "$f" .h5)
    check "$id: nll equal (h5diff)" h5diff "$f" "$g" /eval/tinystories/nll /eval/tinystories/nll
    check_same "$id: ppl equal" "$(attr "$f" /eval/tinystories/ppl)" "$(attr "$g" /eval/tinystories/ppl)"
    check_same "$id: device cuda" "$(attr "$f" /eval/tinystories/device)" '"cuda"'
done
for f in "$T"/b/models/*.h5; do
    id=$(basename "$f" .h5)
    ex=$(h5ls -r "$f" | awk '$2 == "Group" && $1 ~ /^\/layers\/[0-9]+\/[a-z0-9_]+$/ { printf " --exclude-attribute %s", $1 }')
    check "$id: saved model's layer datasets equal (h5diff)" \
        h5diff -q --exclude-attribute / --exclude-path /quant $ex "$f" "$T/w/models/$id.h5"
done
summary
