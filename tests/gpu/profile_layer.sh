#!/bin/bash
# profile_layer.sh BUILD DATA OUTDIR: per-kernel GPU time of one LLaMA-7B-shaped
# layer (dim 4096, hidden 11008, 32 heads; vocab 512 so that the head is
# negligible) evaluating one window of 2048 tokens, in bf16 and tf32 GEMM modes,
# read by Nsight Compute (gpu__time_duration, clocks left alone); writes
# OUTDIR/ncu_<mode>.csv and prints the kernels sorted by time. Run after
# device_check.sh has built BUILD (its library root on LD_LIBRARY_PATH).
set -u
B=$1 DATA=$2 O=$3
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
[ -n "$NCU" ] || { echo "profile_layer: no ncu"; exit 1; }
mkdir -p "$O"
"$B/qharness" synth --dim 4096 --hidden 11008 --layers 1 --heads 32 --kv-heads 32 --vocab 512 --seq-len 2048 \
    --out "$O/layer.bin" >/dev/null || exit 1
for m in bf16 tf32; do
    QH_DATA=$DATA QH_CUDA_MATH=$m timeout 90 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv \
        "$B/qharness" eval --model "$O/layer.bin" --tokenizer "$DATA/models/stories260K/tok512.bin" \
        --dataset wikitext2 --seqlen 2048 --max-windows 1 --device cuda >"$O/ncu_$m.csv" 2>"$O/ncu_$m.err"
    echo "== $m (exit $?): kernel, calls, total us"
    # CSV: "ID","Process ID","Process Name","Host Name","Kernel Name",...,"Metric Value"
    grep '^"[0-9]' "$O/ncu_$m.csv" | awk -F'","' '{ name = $5; v = $NF; gsub(/[",]/, "", v); unit = $(NF-1);
        t = v + 0; if (unit ~ /^n/) t /= 1000; else if (unit ~ /^m/) t *= 1000; # ns / nsecond, ms / msecond -> us
        sub(/\(.*/, "", name); tot[name] += t; n[name]++; all += t }
        END { for (k in tot) printf "%10.1f %4d  %s\n", tot[k], n[k], substr(k, 1, 90); printf "%10.1f total us\n", all }' |
        sort -rn | head -30
    tail -3 "$O/ncu_$m.err"
done
rm -f "$O/layer.bin"
