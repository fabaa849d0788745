#!/bin/sh
# test_speed.sh: `qharness generate --quantized` and `qharness speed`, and a
# sweep's [speed] section, end to end on stories260K (issue 18):
# - generate --quantized F.h5 (RTN 4-bit) for 200 steps: --kernels auto (the
#   packed kernels when the tree has them, else the decoded weights with a
#   warning) prints the text of --kernels decoded, which prints the text of
#   the no-cache path;
# - speed on the full-precision model and the file: both setups, the prefix
#   the context less the generated tokens (said), the ratio column, --out;
# - a sweep with [speed]: speed.h5 written after the points, `report` prints
#   the speed table, a second sweep keeps it;
# - bad input refused by name: an unknown --kernels, --kernels without
#   --quantized, an explicit kernel the file cannot take (a rotate-half wq;
#   without the kernels in the tree: the build has none), a prefix longer
#   than the context, an unknown setup, --repeats 0, a file of another model;
#   [speed] with an unknown key, without save_models, with a prefix or
#   tokens beyond the context.
# The logits-level comparison of the kernels with the decoded path is
# test_decode_quant.c's; the measurement itself test_speed.c's.
. "$(dirname "$0")/lib.sh"
require_stories260k

"$QH" quantize --model "$M" --method rtn --wbits 4 --calib none --save "$T/rtn4.h5" >/dev/null 2>"$T/q.err"
check "rtn 4-bit saved" [ -f "$T/rtn4.h5" ]

# ---- generate --quantized -------------------------------------------------------
"$QH" generate --quantized "$T/rtn4.h5" --kernels decoded --steps 200 >"$T/dec.txt" 2>"$T/dec.err"
check "generate --kernels decoded" [ $? -eq 0 ]
"$QH" generate --quantized "$T/rtn4.h5" --kernels decoded --steps 200 --no-kv-cache >"$T/nokv.txt" 2>/dev/null
check "decoded: KV cache = no cache ($(head -c 60 "$T/dec.txt"))" cmp -s "$T/dec.txt" "$T/nokv.txt"
check "decoded: some text" [ "$(wc -c <"$T/dec.txt")" -gt 100 ]
"$QH" generate --quantized "$T/rtn4.h5" --kernels auto --steps 200 >"$T/auto.txt" 2>"$T/auto.err"
check "generate --kernels auto" [ $? -eq 0 ]
check "auto = decoded for 200 steps: $(cmp "$T/auto.txt" "$T/dec.txt" 2>&1)" cmp -s "$T/auto.txt" "$T/dec.txt"
if [ -f kernels/packed_quant.h ]; then
    check "auto used the kernels: $(cat "$T/auto.err")" sh -c "! grep -q 'decoded fp32 weights' '$T/auto.err'"
else
    check "auto without kernels: said" grep -q "this build has no packed kernels.*decoded fp32 weights" "$T/auto.err"
fi
"$QH" generate --model "$M" --steps 200 >"$T/fp.txt" 2>/dev/null
check "4-bit text differs from fp32 (the file's weights are used)" sh -c "! cmp -s '$T/fp.txt' '$T/dec.txt'"

expect_fail "generate --kernels fast" - "--kernels: expected one of ref\|avx2\|avx512\|cuda\|auto\|decoded, got 'fast'" \
    "$QH" generate --quantized "$T/rtn4.h5" --kernels fast --steps 5
expect_fail "generate --kernels without --quantized" - "--kernels applies to --quantized only" \
    "$QH" generate --model "$M" --kernels ref --steps 5

# a wq in its checkpoint's rotate-half row order: the kernels cannot take it
FX=tests/fixtures/families/llama_gqa_f32
"$QH" quantize --model "$FX" --tokenizer "$TOK" --method rtn --calib none --save "$T/gqa.h5" >/dev/null 2>"$T/qg.err"
check "rtn of the rotate-half fixture saved: $(tail -n 2 "$T/qg.err")" [ -f "$T/gqa.h5" ]
if [ -f kernels/packed_quant.h ]; then
    why="layer 0 wq is stored in its checkpoint's rotate-half row order"
else
    why="this build has no packed kernels"
fi
expect_fail "generate: an explicit kernel never falls back" - "$why" \
    "$QH" generate --quantized "$T/gqa.h5" --tokenizer "$TOK" --kernels ref --steps 5
"$QH" generate --quantized "$T/gqa.h5" --tokenizer "$TOK" --kernels auto --steps 5 >/dev/null 2>"$T/ga.err"
check "generate --kernels auto falls back: rc" [ $? -eq 0 ]
check "auto's fallback says why: $(head -c 300 "$T/ga.err")" grep -q "$why" "$T/ga.err"
check "auto's fallback says what it does" grep -q "decoded fp32 weights" "$T/ga.err"

# ---- speed ------------------------------------------------------------------------
"$QH" speed --model "$M" --quantized "$T/rtn4.h5" --tokens 10 --repeats 2 --out "$T/speed.h5" >"$T/sp.txt" 2>"$T/sp.err"
check "speed: rc ($(tail -n 3 "$T/sp.err"))" [ $? -eq 0 ]
check "speed: the setups and the prefix said" \
    grep -q "after a 502-token prefix (the model's context 512 less 10 generated" "$T/sp.txt"
check "speed: columns" grep -q "^| model | method | kernel | avg bits | scratch tok/s | x fp | prefix tok/s | x fp |" "$T/sp.txt"
check "speed: the baseline's ratio 1" grep -Eq "^\| full precision \| fp32 \| dense \| 32.00 \| [0-9.]+ \| 1.00 \| [0-9.]+ \| 1.00 \|" "$T/sp.txt"
check "speed: the file's row" grep -Eq "^\| $T/rtn4.h5 \| rtn w4 \| [a-z0-9-]+ \| 4.42 \| [0-9.]+ \| [0-9.]+ \|" "$T/sp.txt"
check "speed: the matrix-vector table (LLaMA's 4 shapes of stories260K)" \
    sh -c "grep -c '^| [0-9]* x [0-9]* |' '$T/sp.txt' | grep -qx 4"
check "speed --out written" [ -f "$T/speed.h5" ]
expect_fail "speed: prefix beyond the context" "$T/s2.h5" \
    "speed: --prefix: a prefix of 600 tokens and 10 generated exceed the model's context of 512 \(seq_len\); at most 502" \
    "$QH" speed --model "$M" --tokens 10 --prefix 600 --out "$T/s2.h5"
expect_fail "speed: unknown setup" "$T/s2.h5" "--setups: unknown setup 'warm'" \
    "$QH" speed --model "$M" --setups scratch,warm --out "$T/s2.h5"
expect_fail "speed: --repeats 0" "$T/s2.h5" "--repeats must be in 1..100, got 0" \
    "$QH" speed --model "$M" --repeats 0 --out "$T/s2.h5"
expect_fail "speed: unknown --kernels" "$T/s2.h5" "--kernels: expected one of .*got 'fast'" \
    "$QH" speed --model "$M" --kernels fast --out "$T/s2.h5"
expect_fail "speed: an explicit kernel the file cannot take" "$T/s2.h5" "$why" \
    "$QH" speed --model "$FX" --quantized "$T/gqa.h5" --kernels ref --tokens 4 --out "$T/s2.h5"
expect_fail "speed: a file of another model" "$T/s2.h5" "gqa.h5" \
    "$QH" speed --model "$M" --quantized "$T/gqa.h5" --tokens 4 --out "$T/s2.h5"

# ---- a sweep's [speed] section ------------------------------------------------------
cat >"$T/sp.ini" <<EOF
[experiment]
description = test_speed

[model]
path = $M

[methods]
run = rtn
wbits = 4

[eval]
datasets = wikitext2
max_windows = 1

[output]
dir = $T/res
save_models = true

[speed]
setups = scratch
tokens = 5
repeats = 1
EOF
"$QH" sweep "$T/sp.ini" >"$T/sw.txt" 2>"$T/sw.err"
check "sweep with [speed]: rc ($(tail -n 3 "$T/sw.err"))" [ $? -eq 0 ]
check "sweep: speed.h5 written" grep -q "speed sp: 2 models measured .*$T/res/speed.h5" "$T/sw.txt"
"$QH" report "$T/res" >"$T/rep.txt" 2>&1
check "report prints the speed table" grep -q "^## Speed (speed.h5)" "$T/rep.txt"
check "report: scratch only" sh -c "grep -q '| scratch tok/s | x fp |\$' '$T/rep.txt' && ! grep -q 'prefix tok/s' '$T/rep.txt'"
check "report: the point's row" grep -Eq "^\| rtn w4 row \| rtn w4 \| [a-z0-9-]+ \| 4.42 \| [0-9.]+ \| [0-9.]+ \|" "$T/rep.txt"
check "table.md holds it" grep -q "^## Speed (speed.h5)" "$T/res/table.md"
"$QH" sweep "$T/sp.ini" >"$T/sw2.txt" 2>&1
check "a second sweep keeps speed.h5" grep -q "speed.h5 done earlier" "$T/sw2.txt"

sed 's/^repeats = 1/repeats = 1\nwarmup = 2/' "$T/sp.ini" >"$T/bad1.ini"
expect_fail "[speed] unknown key" - "bad1.ini:2[0-9]: speed.warmup: unknown key" "$QH" sweep "$T/bad1.ini" --check
sed 's/^save_models = true/save_models = false/' "$T/sp.ini" >"$T/bad2.ini"
expect_fail "[speed] without save_models" - "bad2.ini:[0-9]+: speed.setups: .*needs \[output\] save_models = true" \
    "$QH" sweep "$T/bad2.ini" --check
sed 's/^tokens = 5/tokens = 5\nprefix = 508/' "$T/sp.ini" >"$T/bad3.ini"
expect_fail "[speed] prefix beyond the context" - "bad3.ini:2[0-9]: speed.prefix: a prefix of 508 tokens and 5 generated exceed" \
    "$QH" sweep "$T/bad3.ini" --check
sed 's/^tokens = 5/tokens = 600/' "$T/sp.ini" >"$T/bad4.ini"
expect_fail "[speed] tokens beyond the context" - "bad4.ini:2[0-9]: speed.tokens: 600 generated tokens do not fit" \
    "$QH" sweep "$T/bad4.ini" --check
sed 's/^setups = scratch/setups = scratch, warm/' "$T/sp.ini" >"$T/bad5.ini"
expect_fail "[speed] unknown setup" - "bad5.ini:2[0-9]: speed.setups: .*unknown setup 'warm'" "$QH" sweep "$T/bad5.ini" --check

summary
