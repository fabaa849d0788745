#!/bin/sh
# test_metrics.sh: the metrics beyond perplexity through the command line, on
# stories260K ($QH_DATA) with tiny settings (windows of 64-128 tokens):
# - eval --kld: the model against itself gives KLD 0 and 100% agreement
#   exactly (JSON); a saved RTN 3-bit model against --model's weights gives a
#   positive KLD, agreement below 100%, the same perplexity as without --kld,
#   /eval/<ds>/kld in the --out file, and llama.cpp's second-half positions
#   with --kld-scope second-half; bad --kld-scope, --kld-scope without --kld
#   and --kld with --max-memory are refused.
# - sweeps: [eval] kld = true puts KLD and top-1 columns in table.md (and
#   table.csv), and plot draws bits_kld_<dataset>; the bits-at-equal-accuracy
#   section has a row per method and target, with "not reached" for a target
#   below every point; a [paper] section is shown with measured values and
#   differences (made-up published numbers, the point matched by settings).
# - experiment files: bad [report] targets, a [paper] entry without source, a
#   [search] missing keys or with several points of its method are refused
#   with FILE:LINE: SECTION.KEY.
# - report FILE.ini of a LLaMA experiment never run: the published values
#   with empty measured columns, nothing written.
# - a [search] of RTN's group size: the steps, the bracket within the
#   tolerance, search.md; an unreachable target is reported as not reached.
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
require_stories260k
case "$M" in /*) ;; *) M="$(pwd)/$M" ;; esac

jget() { sed -n "s/.*\"$1\": *\([^,}]*\).*/\1/p" "$2" | head -n 1; }

# ---- eval --kld ----------------------------------------------------------------------------------
"$QH" eval --model "$M" --dataset tinystories --seqlen 128 --kld --json >"$T/self.json" 2>"$T/self.err"
check "eval --kld of the model against itself ($(head -c 200 "$T/self.err"))" [ $? -eq 0 ]
check "against itself: kld_mean 0 ($(jget kld_mean "$T/self.json"))" [ "$(jget kld_mean "$T/self.json")" = "0.0" ]
check "against itself: kld_max 0" [ "$(jget kld_max "$T/self.json")" = "0.0" ]
check "against itself: same_top 1 ($(jget same_top "$T/self.json"))" [ "$(jget same_top "$T/self.json")" = "1.0" ]
check "against itself: dp_rms 0" [ "$(jget dp_rms "$T/self.json")" = "0.0" ]

"$QH" quantize --model "$M" --method rtn --wbits 3 --save "$T/rtn3.h5" >/dev/null 2>"$T/q.err"
check "rtn 3-bit saved ($(head -c 200 "$T/q.err"))" [ -f "$T/rtn3.h5" ]
"$QH" eval --model "$M" --quantized "$T/rtn3.h5" --dataset tinystories --seqlen 128 --kld --json --out "$T/k.h5" \
    >"$T/k.json" 2>"$T/k.err"
check "eval --quantized --kld ($(head -c 200 "$T/k.err"))" [ $? -eq 0 ]
"$QH" eval --model "$M" --quantized "$T/rtn3.h5" --dataset tinystories --seqlen 128 --json >"$T/p.json" 2>/dev/null
kld=$(jget kld_mean "$T/k.json")
check "rtn 3-bit: KLD > 0 ($kld)" awk -v k="$kld" 'BEGIN { exit !(k > 0.01) }'
check "rtn 3-bit: agreement < 1 ($(jget same_top "$T/k.json"))" awk -v k="$(jget same_top "$T/k.json")" 'BEGIN { exit !(k < 1) }'
check "the same perplexity with and without --kld" [ "$(jget '"ppl' "$T/k.json")" = "$(jget '"ppl' "$T/p.json")" ]
check "the --kld statistics over every target: 14 windows x 127" [ "$(jget positions "$T/k.json")" = "1778" ]
if command -v h5dump >/dev/null 2>&1; then
    check "--out holds /eval/tinystories/kld" sh -c "h5dump -a /eval/tinystories/kld/kld_p99.9 '$T/k.h5' | grep -q '(0)'"
fi
"$QH" eval --model "$M" --quantized "$T/rtn3.h5" --dataset tinystories --seqlen 128 --kld --kld-scope second-half \
    --json >"$T/h.json" 2>/dev/null
check "second half: 14 windows x (127 - 64) positions ($(jget positions "$T/h.json"))" [ "$(jget positions "$T/h.json")" = "882" ]
check "second half: scope recorded" grep -q '"kld_scope": *"second-half"' "$T/h.json"
expect_fail "bad --kld-scope" - "kld-scope: expected all or second-half" \
    "$QH" eval --model "$M" --dataset tinystories --kld --kld-scope half
expect_fail "--kld-scope without --kld" - "applies to --kld" \
    "$QH" eval --model "$M" --dataset tinystories --kld-scope second-half
expect_fail "--kld with --max-memory" - "needs both resident" \
    "$QH" eval --model "$M" --dataset tinystories --kld --max-memory 64

# ---- a sweep with KLD, equal accuracy and published values --------------------------------------
cat >"$T/m.ini" <<EOF
[experiment]
description = test_metrics.sh
[model]
path = $M
[methods]
run = rtn
wbits = 3, 4, 8
[eval]
datasets = tinystories
seqlen = 128
kld = true
[report]
targets = +20%, tinystories:1.5
[paper]
fake_w4 = method=rtn, wbits=4, dataset=tinystories, ppl=4.0, source=made up for this test, not published
fake_bits = method=rtn, dataset=tinystories, bits=5.0, at_ppl=4.2, source=made up too
[output]
dir = $T/m
EOF
"$QH" sweep "$T/m.ini" >"$T/m.out" 2>"$T/m.err"
check "sweep with kld ($(head -c 300 "$T/m.err"))" [ $? -eq 0 ]
check "sweep line shows the KLD" grep -q "KLD(tinystories)" "$T/m.out"
"$QH" report "$T/m" >"$T/r.out" 2>"$T/r.err"
check "report ($(head -c 200 "$T/r.err"))" [ $? -eq 0 ]
check "table: KLD and top-1 columns" grep -q '| KLD tinystories | top-1 % |' "$T/r.out"
check "table.csv: kld and same_top columns" grep -q 'kld_tinystories,same_top_tinystories' "$T/m/table.csv"
check "equal accuracy: full precision +1% row" grep -q '^| tinystories <= .* (full precision .* +1%) | RTN |' "$T/r.out"
check "equal accuracy: +20% reached by interpolation" grep -Eq '^\| tinystories <= .* \+20%\) \| RTN \| [0-9]+\.[0-9]+ \|' "$T/r.out"
check "equal accuracy: ppl 1.5 not reached, nothing extrapolated" \
    grep -q '^| tinystories <= 1.5 (target) | RTN | not reached (best' "$T/r.out"
check "published: w4 matched, measured and difference" \
    grep -Eq '^\| RTN \| wbits=4 \| tinystories \| 4.00 \| [0-9.]+ \| [+-][0-9.]+ \([+-][0-9.]+%\) \| made up' "$T/r.out"
check "published: bits at ppl 4.2" grep -Eq '^\| RTN \| bits to reach ppl 4.2 \| tinystories \| 5.00 bits \|' "$T/r.out"
if command -v gnuplot >/dev/null 2>&1; then
    "$QH" plot "$T/m" --formats png >"$T/pl.out" 2>&1
    check "plot: bits_kld_tinystories.png ($(tail -n 2 "$T/pl.out"))" [ -s "$T/m/plots/bits_kld_tinystories.png" ]
fi

# ---- experiment-file errors ---------------------------------------------------------------------
bad() { # NAME PATTERN SECTION-TEXT
    printf '[model]\npath = %s\n[methods]\nrun = rtn, gptq\nwbits = 3, 4\n[eval]\ndatasets = tinystories\n%s\n' "$M" "$3" \
        >"$T/bad.ini"
    expect_fail "$1" - "$2" "$QH" sweep "$T/bad.ini" --dump
}
bad "target without dataset" "bad.ini:9: report.targets: '5.8': an absolute perplexity needs its dataset" \
    "[report]
targets = 5.8"
bad "target on a dataset not evaluated" "bad.ini:9: report.targets: 'c4:6': c4 is not one of the \[eval\] datasets" \
    "[report]
targets = c4:6"
bad "paper entry without source" "bad.ini:9: paper.x: no source=" \
    "[paper]
x = method=rtn, wbits=4, dataset=tinystories, ppl=4"
bad "paper entry with an unknown key" "bad.ini:9: paper.x: 'bogus' is not a method key" \
    "[paper]
x = method=rtn, bogus=4, dataset=tinystories, ppl=4, source=s"
bad "search without hi" "search.hi: missing" \
    "[search]
method = rtn
key = groupsize
lo = 4"
bad "search of a method with several points" "search.method: rtn has 2 points" \
    "[search]
method = rtn
key = groupsize
lo = 4
hi = 64"

# ---- report of a LLaMA file that was never run --------------------------------------------------
env -u LLAMA7B_PATH "$QH" report experiments/llama7b_table1.ini >"$T/l.out" 2>"$T/l.err"
check "report experiments/llama7b_table1.ini without a run ($(head -c 200 "$T/l.err"))" [ $? -eq 0 ]
check "published GPTQ 4-bit 6.09, measured empty" grep -q '^| GPTQ | wbits=4 groupsize=row | wikitext2 | 6.09 | - | - |' "$T/l.out"
check "published SpQR 3.45 bits at 5.88" grep -q '^| SpQR | bits to reach ppl 5.88 | wikitext2 | 3.45 bits | - | - |' "$T/l.out"
check "nothing written" grep -q "nothing written" "$T/l.out"

# ---- bisection of RTN's group size --------------------------------------------------------------
search() { # NAME TARGET
    cat >"$T/$1.ini" <<EOF
[model]
path = $M
[methods]
run = rtn
wbits = 3
[eval]
datasets = tinystories
seqlen = 128
[search]
method = rtn
key = groupsize
lo = 4
hi = 64
target = $2
tolerance = 8
[output]
dir = $T/$1
EOF
    "$QH" sweep "$T/$1.ini" >"$T/$1.out" 2>"$T/$1.err"
}
search s1 +25%
check "search runs ($(head -c 300 "$T/s1.err"))" [ $? -eq 0 ]
check "search: both ends then bisection steps" [ "$(grep -c '^| [0-9]* | [0-9]* | ' "$T/s1.out")" -ge 3 ]
good=$(sed -n 's/^Result: groupsize = \([0-9]*\) reaches.*groupsize = \([0-9]*\) misses.*/\1 \2/p' "$T/s1.out")
check "search: a bracket within the tolerance ($good)" sh -c "[ -n '$good' ] && echo $good | awk '{ d = \$1 - \$2; exit !(d <= 8 && d >= -8 && d != 0) }'"
check "search: search.md written" grep -q '^Result:' "$T/s1/search.md"
"$QH" report "$T/s1" >"$T/s1r.out" 2>&1
check "report of a search shows its steps as points" [ "$(grep -c '^| RTN | 3 | ' "$T/s1r.out")" -ge 3 ]
search s2 tinystories:1.0
check "search with an unreachable target ends cleanly" [ $? -eq 0 ]
check "search: not reached, nothing extrapolated" grep -q '^Result: not reached in the range searched' "$T/s2.out"
summary
