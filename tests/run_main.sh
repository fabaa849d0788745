#!/bin/sh
# run_main.sh QHARNESS: the README's main job on the built-in model
# (stories260K): full-precision perplexity on every dataset by the SPEC 7
# protocol, then RTN, GPTQ and SpQR at 4 and 3 bits, each evaluated the same
# way; results in results/stories260K/*.h5 and a table on stdout.
set -eu
qh=${1:-build/qharness}
model=data/models/stories260K/stories260K.bin
out=results/stories260K
mkdir -p "$out"
sets=wikitext2,ptb,c4,tinystories
echo "== full precision: stories260K on $sets (seqlen 512, every window) =="
"$qh" eval --model "$model" --dataset "$sets" --out "$out/fp32.h5"
for bits in 4 3; do
    for method in rtn gptq spqr; do
        echo
        echo "== $method, $bits bits =="
        "$qh" quantize --model "$model" --method "$method" --wbits "$bits" --calib c4 --nsamples 128 \
            --eval "$sets" --save "$out/${method}_w${bits}.model.h5" --out "$out/${method}_w${bits}.h5" |
            grep -v '^[0-9]'
    done
done
echo
echo "results written to $out/"
