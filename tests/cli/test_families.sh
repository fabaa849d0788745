#!/bin/sh
# test_families.sh: the model families through the command line, on the
# transformers-made checkpoints of tests/fixtures/families:
# - `qharness eval --dataset file:text.txt --seqlen 32` on every fp32 and bf16
#   folder prints transformers' perplexity (expected.json) to 1e-5 relative;
# - a Falcon-7B and a Falcon-40B checkpoint quantized with SpQR (--save), then
#   `eval --quantized` gives the perplexity quantize printed (both at the
#   default window);
# - a window beyond Mistral's sliding_window is refused by name.
# Needs data/models/stories260K/tok512.bin (make data); skipped without it.
. "$(dirname "$0")/lib.sh"
FX=tests/fixtures/families
TOK=$QH_DATA/models/stories260K/tok512.bin
if [ ! -r "$TOK" ]; then
    skip "stories260K tokenizer not found under $QH_DATA (make data)"
    summary
    exit $?
fi
ppl_of() { grep -o '"ppl": *[0-9.eE+-]*' "$1" | head -1 | sed 's/.*: *//'; }
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = (a - b) / b; if (d < 0) d = -d; exit !(a != "" && d < 1e-5) }'; }
for d in "$FX"/*_f32 "$FX"/*_bf16; do
    n=$(basename "$d")
    "$QH" eval --model "$d" --tokenizer "$TOK" --dataset "file:$FX/text.txt" --seqlen 32 --json >"$T/$n.json" 2>"$T/$n.err"
    got=$(ppl_of "$T/$n.json")
    want=$(ppl_of "$d/expected.json")
    check "$n: eval ppl $got vs transformers $want" close "$got" "$want"
done
for n in falcon7b_f32 falcon40b_f32; do
    "$QH" quantize --model "$FX/$n" --tokenizer "$TOK" --method spqr --wbits 3 --groupsize 16 --qq-groupsize 16 \
        --calib "file:$FX/text.txt" --nsamples 4 --seqlen 32 --true-sequential --eval "file:$FX/text.txt" \
        --save "$T/$n.h5" --json >"$T/q.json" 2>"$T/q.err"
    check "$n: quantize --save" [ -s "$T/$n.h5" ]
    qp=$(grep -o '"ppl": *[0-9.eE+-]*' "$T/q.json" | head -1 | sed 's/.*: *//')
    "$QH" eval --model "$FX/$n" --quantized "$T/$n.h5" --tokenizer "$TOK" --dataset "file:$FX/text.txt" \
        --json >"$T/e.json" 2>"$T/e.err"
    check "$n: eval --quantized ppl $(ppl_of "$T/e.json") vs quantize's $qp" close "$(ppl_of "$T/e.json")" "$qp"
done
expect_fail "window beyond sliding_window" - "sliding_window of 64" "$QH" eval --model "$FX/mistral_f32" \
    --tokenizer "$TOK" --dataset "file:$FX/text.txt" --seqlen 96
summary
