#!/bin/sh
# stream_65b_rss.sh BUILD [BLOCKS]: issue 16's host side, measured on the CPU:
# a LLaMA-65B-shaped procedural model (dim 8192, hidden 22016, vocab 32000, 64
# heads; one block 3088.1 MiB in fp32, the embedding and head 2000.0 MiB) cut
# to BLOCKS blocks (default 4: the work holds one block at a time, so the peak
# does not grow with the count, but each block costs about half a minute
# here), worked block by block under --max-memory on two windows of 128
# WikiText-2 tokens:
#  1. eval --max-memory 6000 (below 2 blocks + the embedding / head in fp32);
#  2. quantize --method rtn --calib none --max-memory 11500 --save (the block
#     as loaded and as quantized, 2 x 3088 MiB, the embedding / head, the
#     forward scratch of a 2048 window, the block's codes and one layer's
#     fp32 copy);
#  3. eval --quantized of that file --max-memory 7000 (one block decoded).
# For each: the plan's host total (printed before the work), the peak RSS
# (getrusage, the JSON's peak_rss_mb, and /usr/bin/time -v's maximum), the
# budget, the wall time. RUNS (default "eval quantize evalq") picks the runs.
# Not run by make test (minutes, and 11 GB of memory).
# Needs data/ (QH_DATA): tokenizers/llama2, wikitext-2-raw.
set -u
build=${1:-build}
blocks=${2:-4}
qh=$build/qharness
data=${QH_DATA:-data}
tok=$data/tokenizers/llama2/tokenizer.bin
model="procedural:llama-65b,layers=$blocks"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
E="--tokenizer $tok --dataset wikitext2 --seqlen 128 --max-windows 2 --json"
fails=0
printf '%-28s %6s %10s %10s %12s %12s %8s\n' run blocks "budget MB" "plan MB" "peak RSS MB" "time -v MB" seconds
# measure NAME BUDGET CMD...: run CMD under /usr/bin/time -v, print one row
measure() {
    name=$1 budget=$2
    shift 2
    /usr/bin/time -v -o "$tmp/$name.time" "$@" >"$tmp/$name.json" 2>"$tmp/$name.err"
    rc=$?
    plan=$(sed -n 's/^  total: host \([0-9.]*\) MB.*/\1/p' "$tmp/$name.err" | head -1)
    peak=$(sed -n 's/.*"peak_rss_mb": *\([0-9.eE+-]*\).*/\1/p' "$tmp/$name.json" | head -1)
    kb=$(sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\)/\1/p' "$tmp/$name.time")
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): \(.*\)/\1/p' "$tmp/$name.time" |
        awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
    awk -v n="$name" -v b="$blocks" -v m="$budget" -v p="${plan:-0}" -v k="${peak:-0}" -v t="${kb:-0}" \
        -v w="${wall:-0}" 'BEGIN { printf "%-28s %6d %10d %10.1f %12.1f %12.1f %8.1f\n", n, b, m, p, k, t / 1024, w }'
    if [ $rc != 0 ]; then
        echo "$name: exit $rc"
        tail -3 "$tmp/$name.err"
        fails=$((fails + 1))
    elif ! awk -v m="$budget" -v t="${kb:-0}" 'BEGIN { exit !(t > 0 && t / 1024 <= m) }'; then
        echo "$name: peak RSS above the budget"
        fails=$((fails + 1))
    fi
}
runs=${RUNS:-eval quantize evalq}
case " $runs " in *" eval "*) measure "eval" 6000 "$qh" eval --model "$model" $E --max-memory 6000 ;; esac
case " $runs " in *" quantize "* | *" evalq "*)
    measure "quantize rtn --save" 11500 "$qh" quantize --model "$model" --tokenizer "$tok" --method rtn \
        --calib none --max-memory 11500 --save "$tmp/q.h5" --json
    [ -s "$tmp/q.h5" ] && echo "quantized file: $(($(stat -c %s "$tmp/q.h5") / 1048576)) MiB" ;;
esac
case " $runs " in *" evalq "*) measure "eval --quantized" 7000 "$qh" eval --quantized "$tmp/q.h5" $E --max-memory 7000 ;; esac
grep -h -A10 "^memory plan" "$tmp/eval.err" "$tmp/eval --quantized.err" 2>/dev/null | sed 's/^/  /'
[ $fails = 0 ] && echo "stream_65b_rss: ok" || echo "stream_65b_rss: $fails run(s) failed"
[ $fails = 0 ]
