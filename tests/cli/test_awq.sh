#!/bin/sh
# test_awq.sh: AWQ through the command line on stories260K: its settings out of
# range refused by name (quantize options and experiment keys), what it cannot
# do refused (no calibration, groups wider than the model's layers, another
# method's options); a saved AWQ model evaluates with `eval --quantized` to
# exactly the perplexity measured right after quantization, and the JSON
# report holds the exponents the search chose.
. "$(dirname "$0")/lib.sh"
require_stories260k
S="--model $M --method awq --nsamples 4 --seqlen 64 --groupsize 32"

expect_fail "awq-grid 0" "$T/a.h5" "awq-grid 0 is out of range.*1\.\.1000" $QH quantize $S --awq-grid 0 --save "$T/a.h5"
expect_fail "awq-grid 1001" "$T/a.h5" "awq-grid" $QH quantize $S --awq-grid 1001 --save "$T/a.h5"
expect_fail "awq-clip maybe" "$T/a.h5" "awq-clip.*off \| on" $QH quantize $S --awq-clip maybe --save "$T/a.h5"
expect_fail "awq-windows -1" "$T/a.h5" "awq-windows" $QH quantize $S --awq-windows -1 --save "$T/a.h5"
expect_fail "awq without calibration" "$T/a.h5" "calib" $QH quantize $S --calib none --save "$T/a.h5"
expect_fail "awq's default groups of 128 on 64 columns" "$T/a.h5" "groupsize" \
    $QH quantize --model "$M" --method awq --nsamples 4 --seqlen 64 --save "$T/a.h5"
expect_fail "awq-grid with gptq" "$T/a.h5" "awq-grid" $QH quantize --model "$M" --method gptq --awq-grid 4 --save "$T/a.h5"

# an experiment key out of range, refused at its line
cat >"$T/bad.ini" <<EOF
[model]
path = $M
[methods]
run = awq
[awq]
groupsize = 32
awq_grid = 0
[eval]
datasets = tinystories
EOF
expect_fail "experiment awq_grid 0" - "bad.ini:7.*awq_grid" $QH sweep "$T/bad.ini" --dump

# quantize, save, evaluate from the file
$QH quantize $S --awq-grid 5 --eval tinystories --eval-seqlen 128 --max-windows 4 --save "$T/q.h5" --json \
    >"$T/q.json" 2>"$T/q.err"
rc=$?
check "awq quantize exit 0 ($(head -c 300 "$T/q.err"))" test $rc -eq 0
check "json has the chosen exponents" grep -q '"awq_ratio"' "$T/q.json"
ppl1=$(sed -E 's/.*"tinystories": *\{[^}]*"ppl": *([0-9.eE+-]+).*/\1/' "$T/q.json")
$QH eval --quantized "$T/q.h5" --dataset tinystories --seqlen 128 --max-windows 4 --json >"$T/e.json" 2>"$T/e.err"
rc=$?
check "eval --quantized of the awq file exit 0 ($(head -c 300 "$T/e.err"))" test $rc -eq 0
ppl2=$(sed -E 's/.*"ppl": *([0-9.eE+-]+).*/\1/' "$T/e.json")
if [ -n "$ppl1" ] && [ "$ppl1" = "$ppl2" ]; then pass; else fail "awq ppl after reload '$ppl2' != right after quantization '$ppl1'"; fi
summary
