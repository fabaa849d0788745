#!/bin/sh
# stream_eval_rss.sh BUILD: a synthetic checkpoint three times larger than its
# --max-memory budget (32 blocks of dim 512 / hidden 1376, 388 MB; budget
# 128 MB) GPTQ-quantized and evaluated block by block (calibrate.h block_done,
# stream_eval.h), next to the same run without a budget: the resident memory
# each run added (peak minus the resident memory once the libraries are loaded
# and the checkpoint mapped), the budget, and the perplexity (identical). The
# same for the model exported as a Hugging Face directory (bf16, two shards,
# 194 MB on disk, 388 MB as fp32), read block by block from the shards.
set -u
build=${1:-build}
qh=$build/qharness
data=${QH_DATA:-data}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$qh" synth --dim 512 --hidden 1376 --layers 32 --heads 8 --kv-heads 8 --vocab 512 --seq-len 128 \
    --out "$tmp/big.bin" 2>/dev/null || { echo "stream_eval_rss: synth failed"; exit 1; }
"$qh" export --model "$tmp/big.bin" --format hf --dtype bf16 --max-shard-bytes 100000000 --no-tokenizer \
    --out "$tmp/big_hf" >/dev/null 2>&1 || { echo "stream_eval_rss: export failed"; exit 1; }
printf '%-22s %9s %10s %10s %8s %14s\n' run "model MB" "budget MB" "added MB" seconds "ppl (tinyst.)"
for model in big.bin big_hf; do
    size=$(($(du -sbL "$tmp/$model" | cut -f1) / 1048576))
    for mm in 128 0; do
        out=$("$qh" quantize --model "$tmp/$model" --tokenizer "$data/models/stories260K/tok512.bin" --method gptq \
            --nsamples 4 --seqlen 64 --max-memory $mm --save "$tmp/q$mm.h5" --eval tinystories --eval-seqlen 128 \
            --json 2>/dev/null) || { echo "stream_eval_rss: quantize $model failed"; exit 1; }
        rm -f "$tmp/q$mm.h5"
        get() { echo "$out" | sed -E "s/.*\"$1\": *([0-9.eE+-]+).*/\1/"; }
        label="block by block"; [ $mm = 0 ] && label="in memory"
        [ $model = big_hf ] && label="HF bf16, $label"
        awk -v l="$label" -v s=$size -v b=$mm -v p="$(get peak_rss_mb)" -v base="$(get base_rss_mb)" -v q="$(get ppl)" \
            -v t="$(echo "$out" | sed -E 's/.*"seconds":\{"total":([0-9.eE+-]+).*/\1/')" \
            'BEGIN { printf "%-22s %9d %10s %10.1f %8.1f %14.6f\n", l, s, (b > 0 ? b : "-"), p - base, t, q }'
    done
done
