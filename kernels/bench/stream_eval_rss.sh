#!/bin/sh
# stream_eval_rss.sh BUILD: evaluation of a synthetic checkpoint about four
# times larger than its --max-memory budget (block by block, stream_eval.h):
# the resident memory it added (peak - at start) next to the budget, and the
# same for the ordinary evaluation.
set -u
build=${1:-build}
qh=$build/qharness
data=${QH_DATA:-data}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$qh" synth --dim 512 --hidden 1376 --layers 16 --heads 8 --kv-heads 8 --vocab 512 --seq-len 128 \
    --out "$tmp/big.bin" 2>/dev/null || { echo "stream_eval_rss: synth failed"; exit 1; }
size=$(($(stat -c %s "$tmp/big.bin") / 1048576))
printf '%-22s %10s %10s %12s %14s\n' run "model MB" "budget MB" "added MB" ppl
for mm in 48 0; do
    out=$("$qh" eval --model "$tmp/big.bin" --tokenizer "$data/models/stories260K/tok512.bin" --dataset tinystories \
        --seqlen 128 --max-memory $mm --json) || { echo "stream_eval_rss: eval failed"; exit 1; }
    get() { echo "$out" | sed -E "s/.*\"$1\": *([0-9.eE+-]+).*/\1/"; }
    label="block by block"; [ $mm = 0 ] && label="ordinary"
    awk -v l="$label" -v s=$size -v b=$mm -v p="$(get peak_rss_mb)" -v base="$(get base_rss_mb)" -v q="$(get ppl)" \
        'BEGIN { printf "%-22s %10d %10s %12.1f %14.6f\n", l, s, (b > 0 ? b : "-"), p - base, q }'
done
