#!/bin/sh
# test_families.sh: the model families through the command line, on the
# transformers-made checkpoints of tests/fixtures/families:
# - `qharness eval --dataset file:text.txt --seqlen 32` on every fp32 and bf16
#   folder prints transformers' perplexity (expected.json) to 1e-5 relative;
# - a Falcon-7B, a Falcon-40B and a Qwen2 checkpoint (q/k/v biases, rotary
#   rows) quantized with SpQR (--save), then `eval --quantized` gives the
#   perplexity quantize printed (both at the default window); the quantized
#   model exported (`export --quantized F.h5 --format hf`, fp32) and evaluated
#   as a Hugging Face folder gives exactly (all 17 digits) the perplexity and
#   standard error of `eval --quantized`; a quantized file exported on a base
#   model of another shape is refused by name;
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
se_of() { grep -o '"ppl_stderr": *[0-9.eE+-]*' "$1" | head -1 | sed 's/.*: *//'; }
same() { [ -n "$1" ] && [ "$1" = "$2" ]; } # equal strings (17 digits: equal doubles), not both empty
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = (a - b) / b; if (d < 0) d = -d; exit !(a != "" && d < 1e-5) }'; }
for d in "$FX"/*_f32 "$FX"/*_bf16; do
    n=$(basename "$d")
    "$QH" eval --model "$d" --tokenizer "$TOK" --dataset "file:$FX/text.txt" --seqlen 32 --json >"$T/$n.json" 2>"$T/$n.err"
    got=$(ppl_of "$T/$n.json")
    want=$(ppl_of "$d/expected.json")
    check "$n: eval ppl $got vs transformers $want" close "$got" "$want"
done
for n in falcon7b_f32 falcon40b_f32 qwen2_f32; do
    "$QH" quantize --model "$FX/$n" --tokenizer "$TOK" --method spqr --wbits 3 --groupsize 16 --qq-groupsize 16 \
        --calib "file:$FX/text.txt" --nsamples 4 --seqlen 32 --true-sequential --eval "file:$FX/text.txt" \
        --save "$T/$n.h5" --json >"$T/q.json" 2>"$T/q.err"
    check "$n: quantize --save" [ -s "$T/$n.h5" ]
    qp=$(grep -o '"ppl": *[0-9.eE+-]*' "$T/q.json" | head -1 | sed 's/.*: *//')
    "$QH" eval --model "$FX/$n" --quantized "$T/$n.h5" --tokenizer "$TOK" --dataset "file:$FX/text.txt" \
        --json >"$T/e.json" 2>"$T/e.err"
    check "$n: eval --quantized ppl $(ppl_of "$T/e.json") vs quantize's $qp" close "$(ppl_of "$T/e.json")" "$qp"
    # the decoded weights as a Hugging Face folder (the base model named in the file, no --model)
    "$QH" export --quantized "$T/$n.h5" --tokenizer "$TOK" --format hf --out "$T/${n}_q_hf" 2>"$T/x.err"
    rc=$?
    check "$n: export --quantized (exit $rc: $(tail -c 200 "$T/x.err"))" [ "$rc" -eq 0 ]
    "$QH" eval --model "$T/${n}_q_hf" --dataset "file:$FX/text.txt" --json >"$T/xe.json" 2>"$T/xe.err"
    a=$(ppl_of "$T/e.json")
    b=$(ppl_of "$T/xe.json")
    check "$n: the exported quantized model's ppl $b is eval --quantized's $a bit for bit" same "$a" "$b"
    check "$n: and its ppl_stderr" same "$(se_of "$T/e.json")" "$(se_of "$T/xe.json")"
done
expect_fail "export --quantized on a base model of another shape" "$T/wrong_hf" "the model's is" \
    "$QH" export --quantized "$T/falcon7b_f32.h5" --model "$FX/falcon40b_f32" --tokenizer "$TOK" --format hf \
    --out "$T/wrong_hf"
expect_fail "export --quantized of a missing file" "$T/none_hf" "nonexistent.h5" \
    "$QH" export --quantized "$T/nonexistent.h5" --format hf --out "$T/none_hf"
expect_fail "window beyond sliding_window" - "sliding_window of 64" "$QH" eval --model "$FX/mistral_f32" \
    --tokenizer "$TOK" --dataset "file:$FX/text.txt" --seqlen 96
summary
