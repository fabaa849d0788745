#!/bin/sh
# test_quantize_cli.sh: `qharness quantize` and `eval --quantized` end to end
# on stories260K: bad parameters refused with a clear message and no file
# written; --json carries avg_bits, stored_bits, outlier_fraction and a ppl
# per evaluated dataset; the saved model evaluates to exactly the perplexity
# measured right after quantization, whole and block by block (--max-memory:
# each block decoded from the file in turn); the formula bits of the SpQR paper
# setting are 4.625 + 32 x outlier fraction. An option the method does not use
# is refused before any work, as the experiment files refuse the key
# (exp_method_uses), naming the methods it applies to; rtn still takes --calib
# (proxy losses from calibration) and its sizes, but not with --calib none.
. "$(dirname "$0")/lib.sh"
require_stories260k
S="--model $M --nsamples 4 --seqlen 64"

expect_fail "wbits 0" "$T/a.h5" "wbits" $QH quantize $S --method gptq --wbits 0 --save "$T/a.h5"
expect_fail "wbits 9" "$T/a.h5" "wbits" $QH quantize $S --method gptq --wbits 9 --save "$T/a.h5"
expect_fail "groupsize 0" "$T/a.h5" "groupsize" $QH quantize $S --method gptq --groupsize 0 --save "$T/a.h5"
expect_fail "groupsize > layer" "$T/a.h5" "groupsize" $QH quantize $S --method gptq --groupsize 100000 --save "$T/a.h5"
expect_fail "negative threshold" "$T/a.h5" "threshold" $QH quantize $S --method spqr --outlier-threshold -1 --save "$T/a.h5"
expect_fail "qq bits without group" "$T/a.h5" "qq" $QH quantize $S --method spqr --qq-groupsize 0 --save "$T/a.h5"
expect_fail "unknown method" "$T/a.h5" "method" $QH quantize $S --method hqq --save "$T/a.h5"
expect_fail "unknown perm" "$T/a.h5" "perm" $QH quantize $S --method gptq --perm random --save "$T/a.h5"
expect_fail "non-numeric" "$T/a.h5" "wbits" $QH quantize $S --method gptq --wbits four --save "$T/a.h5"
expect_fail "calib none with gptq" "$T/a.h5" "calib" $QH quantize $S --method gptq --calib none --save "$T/a.h5"
expect_fail "calib train split absent" "$T/a.h5" "train split" $QH quantize $S --method gptq --calib wikitext2 --save "$T/a.h5"
expect_fail "max-memory without save" - "save" $QH quantize $S --method gptq --max-memory 512
expect_fail "max-memory too small" "$T/a.h5" "max-memory" $QH quantize $S --method gptq --max-memory 1 --save "$T/a.h5"
expect_fail "max-device-memory on cpu" "$T/a.h5" "applies to --device cuda" $QH quantize $S --method gptq --max-device-memory 512 --device cpu --save "$T/a.h5"
check "quantize --help exits 0" sh -c "$QH quantize --help >/dev/null"

# options the method ignores (the .ini refuses the same keys)
expect_fail "rtn --percdamp" "$T/a.h5" "rtn does not use --percdamp \(it applies to: gptq, spqr\)" \
    $QH quantize $S --method rtn --percdamp 0.5 --save "$T/a.h5"
expect_fail "rtn --true-sequential" "$T/a.h5" "rtn does not use --true-sequential" \
    $QH quantize $S --method rtn --true-sequential --save "$T/a.h5"
expect_fail "rtn --blocksize" "$T/a.h5" "rtn does not use --blocksize \(it applies to: gptq, spqr\)" \
    $QH quantize $S --method rtn --blocksize 64 --save "$T/a.h5"
expect_fail "rtn --perm" "$T/a.h5" "rtn does not use --perm" $QH quantize $S --method rtn --perm act_order --save "$T/a.h5"
expect_fail "gptq --simplified-outliers" "$T/a.h5" "gptq does not use --simplified-outliers \(it applies to: spqr\)" \
    $QH quantize $S --method gptq --simplified-outliers --save "$T/a.h5"
expect_fail "gptq --outlier-threshold" "$T/a.h5" "gptq does not use --outlier-threshold" \
    $QH quantize $S --method gptq --outlier-threshold 0.1 --save "$T/a.h5"
expect_fail "gptq --qq-scale-bits" "$T/a.h5" "gptq does not use --qq-scale-bits \(it applies to: rtn, spqr\)" \
    $QH quantize $S --method gptq --qq-scale-bits 3 --save "$T/a.h5"
for o in "--nsamples 4" "--seqlen 64" "--seed 1"; do
    expect_fail "rtn --calib none $o" "$T/a.h5" "rtn with --calib none does not use ${o% *}" \
        $QH quantize --model "$M" --method rtn --calib none $o --save "$T/a.h5"
done
# ... and what each method does use still runs
$QH quantize $S --method rtn --calib c4 --seed 1 --sym --round-zero --json >"$T/rc.json" 2>"$T/rc.err"
rc=$?
check "rtn with --calib c4 --nsamples --seqlen --seed runs ($(head -c 200 "$T/rc.err"))" test $rc -eq 0
check "rtn with calibration reports a proxy loss" \
    awk -v l="$(sed -n -E 's/.*"total_proxy_loss": *([0-9.eE+-]+).*/\1/p' "$T/rc.json")" 'BEGIN { exit !(l > 0) }'
$QH quantize --model "$M" --method rtn --calib none --per-row --wbits 3 >/dev/null 2>"$T/rn.err"
rc=$?
check "rtn --calib none --per-row --wbits runs ($(head -c 200 "$T/rn.err"))" test $rc -eq 0
$QH quantize $S --method gptq --percdamp 0.1 --blocksize 32 --true-sequential --perm act_order --groupsize 16 \
    >/dev/null 2>"$T/g.err"
rc=$?
check "gptq with its own options runs ($(head -c 200 "$T/g.err"))" test $rc -eq 0

# SpQR paper setting, saved, evaluated right after quantization and from the file
$QH quantize $S --method spqr --eval tinystories --eval-seqlen 128 --save "$T/q.h5" --out "$T/r.h5" --json \
    >"$T/q.json" 2>"$T/q.err"
rc=$?
check "spqr quantize exit 0" test $rc -eq 0
for k in avg_bits stored_bits outlier_fraction ppl layers; do
    check "json has $k" grep -q "\"$k\"" "$T/q.json"
done
check "json says where the calibration activations were kept" grep -Eq '"calib_activations": *"(host|device)"' "$T/q.json"
check "saved model file exists" test -s "$T/q.h5"
ppl1=$(sed -E 's/.*"tinystories": *\{[^}]*"ppl": *([0-9.eE+-]+).*/\1/' "$T/q.json")
$QH eval --quantized "$T/q.h5" --dataset tinystories --seqlen 128 --json >"$T/e.json" 2>"$T/e.err"
rc=$?
check "eval --quantized exit 0" test $rc -eq 0
ppl2=$(sed -E 's/.*"ppl": *([0-9.eE+-]+).*/\1/' "$T/e.json")
if [ -n "$ppl1" ] && [ "$ppl1" = "$ppl2" ]; then pass; else fail "ppl after reload '$ppl2' != right after quantization '$ppl1'"; fi
# under a budget the file's blocks are decoded one at a time: the same perplexity
$QH eval --quantized "$T/q.h5" --dataset tinystories --seqlen 128 --max-memory 64 --json >"$T/em.json" 2>"$T/em.err"
rc=$?
check "eval --quantized --max-memory exit 0 ($(head -c 200 "$T/em.err"))" test $rc -eq 0
ppl3=$(sed -E 's/.*"ppl": *([0-9.eE+-]+).*/\1/' "$T/em.json")
if [ -n "$ppl3" ] && [ "$ppl3" = "$ppl2" ]; then pass; else fail "ppl block by block '$ppl3' != whole model '$ppl2'"; fi
bits=$(sed -E 's/.*"avg_bits": *([0-9.eE+-]+).*/\1/' "$T/q.json")
frac=$(sed -E 's/.*"outlier_fraction": *([0-9.eE+-]+).*/\1/' "$T/q.json")
if awk -v b="$bits" -v f="$frac" 'BEGIN { d = b - (4.625 + 32 * f); exit !(d < 1e-9 && d > -1e-9) }'; then pass
else fail "avg_bits $bits != 4.625 + 32 x $frac"; fi
if command -v h5dump >/dev/null 2>&1; then
    check "h5dump reads the saved model" sh -c "h5dump -H '$T/q.h5' >/dev/null"
    check "h5dump reads the results" sh -c "h5dump -a /quant/avg_bits '$T/r.h5' >/dev/null"
else
    skip "h5dump not installed"
fi
# a damaged file is refused, not crashed on
head -c 4000 "$T/q.h5" >"$T/bad.h5"
expect_fail "truncated quantized model" - "bad.h5|HDF5" $QH eval --quantized "$T/bad.h5" --dataset tinystories
summary
