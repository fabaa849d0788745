#!/bin/sh
# gpu_block_quant.sh BUILD: per-phase time of quantizing one LLaMA-7B-shaped
# block (dim 4096, hidden 11008, 32 heads) on the GPU with 128 x 2048
# calibration tokens, GPTQ (g128) and SpQR (paper setting), each with fp16
# (the references calibrate in fp16) and TF32 forward GEMMs (QH_BLOCK_MATH
# overrides the list), extrapolated to the 32 blocks of LLaMA-7B:
# 32 x (calibration forwards + Hessians + factorization + sweep +
# leave-one-out + packing) + the once-per-model rest of the run. Prints
# "skipped: no GPU" without one; exits 1 when a quantization failed.
set -u
build=${1:-build}
qh=$build/qharness
data=${QH_DATA:-data}
# usable GPU = a one-window evaluation on --device cuda succeeds
if ! "$qh" eval --model "$data/models/stories260K/stories260K.bin" --dataset tinystories --seqlen 64 \
    --max-windows 1 --device cuda >/dev/null 2>&1; then
    echo "gpu_block_quant: skipped: no GPU"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM # a timeout's signal still removes the 800 MB block file
"$qh" synth --dim 4096 --hidden 11008 --layers 1 --heads 32 --kv-heads 32 --vocab 512 --seq-len 2048 \
    --out "$tmp/block.bin" >/dev/null 2>&1 || { echo "gpu_block_quant: synth failed"; exit 1; }
printf '%-6s %-5s %8s %8s %8s %8s %8s %8s %8s %9s %10s\n' method gemm calibfwd hessian factor sweep loo pack once \
    per-block "7B (min)"
fails=0
for math in ${QH_BLOCK_MATH:-fp16 tf32}; do
    for meth in gptq spqr; do
        extra=""
        [ $meth = gptq ] && extra="--groupsize 128"
        QH_CUDA_MATH=$math "$qh" quantize --model "$tmp/block.bin" --tokenizer "$data/models/stories260K/tok512.bin" \
            --method $meth $extra --nsamples 128 --seqlen 2048 --calib c4 --device cuda --json >"$tmp/r.json" 2>"$tmp/r.err" ||
            { echo "gpu_block_quant: $meth $math failed: $(tail -1 "$tmp/r.err")"; fails=$((fails + 1)); continue; }
        sec=$(sed -E 's/.*"seconds":\{([^}]*)\}.*/\1/' "$tmp/r.json")
        get() { echo "$sec" | sed -E "s/.*\"$1\":([0-9.eE+-]+).*/\1/"; }
        awk -v m=$meth -v g=$math -v tot="$(get total)" -v cf="$(get calib_forward)" -v h="$(get hessian)" \
            -v f="$(get factor)" -v s="$(get sweep)" -v l="$(get leave_one_out)" -v p="$(get pack)" 'BEGIN {
            blk = cf + h + f + s + l + p; once = tot - blk
            printf "%-6s %-5s %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %9.2f %10.2f\n", m, g, cf, h, f, s, l, p, once, blk,
                (32 * blk + once) / 60 }'
    done
done
[ $fails = 0 ] # exit status 1 when a run failed
