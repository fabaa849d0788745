#!/bin/sh
# test_zeroshot.sh: zero-shot multiple choice through the command line, on
# stories260K ($QH_DATA) and the item files of tests/fixtures/zeroshot (the
# numbers themselves are checked against window_nll in test_zeroshot.c; here
# the plumbing):
# - eval --zeroshot of the five tasks: no perplexity by default, one JSON
#   object per task with its item count, acc / acc_norm in [0, 1] with the
#   closed-form standard error of a mean of 0/1 values, no acc_norm for
#   winogrande; the same numbers from --zeroshot-data and $ZEROSHOT_DATA;
#   --zeroshot-limit; with --dataset too; with --quantized;
# - --out: /eval/zeroshot/<task> with acc, n and every request's log-likelihood;
# - bad input refused before anything is written, naming the file, the line
#   and the field (a missing field, an answer index out of range, an empty
#   choice, a winogrande sentence without "_"), an unknown task, no data
#   folder, the options without --zeroshot, --max-memory;
# - a sweep with [eval] zeroshot: acc on the progress lines, /eval/zeroshot in
#   the point files, report's columns in table.md and table.csv; a bad task
#   file stops the sweep before any point runs, named with FILE:LINE.
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
require_stories260k
case "$M" in /*) ;; *) M="$(pwd)/$M" ;; esac
Z=$(pwd)/tests/fixtures/zeroshot

# task TASK FILE: that task's object of the "zeroshot" array; zget KEY OBJECT: a number (or null) of it
task() { tr -d '\n ' <"$2" | grep -o "{\"task\":\"$1\"[^}]*}"; }
zget() { echo "$2" | sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p"; }

# ---- eval --zeroshot -------------------------------------------------------------------------------
ALL=arc_easy,arc_challenge,piqa,hellaswag,winogrande
env -u ZEROSHOT_DATA "$QH" eval --model "$M" --zeroshot $ALL --zeroshot-data "$Z" --json >"$T/a.json" 2>"$T/a.err"
check "eval --zeroshot of the five tasks ($(head -c 300 "$T/a.err"))" [ $? -eq 0 ]
check "no perplexity without --dataset" grep -q '"results": *\[\]' "$T/a.json"
for tn in arc_easy:3 arc_challenge:2 piqa:3 hellaswag:2 winogrande:3; do
    t=${tn%:*}
    o=$(task "$t" "$T/a.json")
    check "$t: in the JSON" [ -n "$o" ]
    check "$t: ${tn#*:} items ($(zget n "$o"))" [ "$(zget n "$o")" = "${tn#*:}" ]
    a=$(zget acc "$o") s=$(zget acc_stderr "$o") n=$(zget n "$o")
    check "$t: acc $a in [0, 1], stderr $s = sqrt(acc (1 - acc) / (n - 1))" \
        awk -v a="$a" -v s="$s" -v n="$n" 'BEGIN { e = sqrt(a * (1 - a) / (n - 1)); exit !(a >= 0 && a <= 1 && (s - e) ^ 2 < 1e-20) }'
done
check "winogrande: no acc_norm (lm-eval reports acc only)" [ "$(zget acc_norm "$(task winogrande "$T/a.json")")" = null ]
check "piqa: acc 1/3 and acc_norm 1 differ on these items" \
    [ "$(zget acc "$(task piqa "$T/a.json")") $(zget acc_norm "$(task piqa "$T/a.json")")" = "0.33333333333333331 1.0" ]
ZEROSHOT_DATA="$Z" "$QH" eval --model "$M" --zeroshot piqa --json >"$T/e.json" 2>"$T/e.err"
check "\$ZEROSHOT_DATA names the folder ($(head -c 200 "$T/e.err"))" \
    [ "$(zget acc_norm "$(task piqa "$T/e.json")")" = "$(zget acc_norm "$(task piqa "$T/a.json")")" ]
"$QH" eval --model "$M" --zeroshot hellaswag,winogrande --zeroshot-data "$Z" --zeroshot-limit 1 --json >"$T/l.json" 2>/dev/null
check "--zeroshot-limit 1: one item each" \
    [ "$(zget n "$(task hellaswag "$T/l.json")")$(zget n "$(task winogrande "$T/l.json")")" = "11" ]
"$QH" eval --model "$M" --dataset tinystories --seqlen 128 --max-windows 2 --zeroshot winogrande --zeroshot-data "$Z" \
    --out "$T/o.h5" >"$T/o.out" 2>"$T/o.err"
check "eval --dataset and --zeroshot together ($(head -c 200 "$T/o.err"))" [ $? -eq 0 ]
check "the table: perplexity, then a line per task with its time" \
    sh -c "grep -q '^tinystories' '$T/o.out' && grep -Eq '^winogrande +3 +1.0000 +0.0000 +- +- +[0-9.]+$' '$T/o.out'"
if command -v h5dump >/dev/null 2>&1; then
    check "--out: /eval/zeroshot/winogrande acc 1" sh -c "h5dump -a /eval/zeroshot/winogrande/acc '$T/o.h5' | grep -q '(0): 1'"
    check "--out: every request's log-likelihood (3 items x 2)" \
        sh -c "h5dump -H -d /eval/zeroshot/winogrande/loglik '$T/o.h5' | grep -q 'SIMPLE { ( 6 )'"
    check "--out: --seqlen is the zero-shot window too" sh -c "h5dump -a /eval/zeroshot/winogrande/max_len '$T/o.h5' | grep -q '(0): 128'"
    check "--out: the perplexity beside it" sh -c "h5dump -a /eval/tinystories/ppl '$T/o.h5' | grep -q '(0)'"
fi
"$QH" quantize --model "$M" --method rtn --wbits 3 --save "$T/rtn3.h5" >/dev/null 2>"$T/q.err"
"$QH" eval --model "$M" --quantized "$T/rtn3.h5" --zeroshot piqa,arc_easy --zeroshot-data "$Z" --json >"$T/q.json" 2>"$T/q.err"
check "eval --quantized --zeroshot ($(head -c 200 "$T/q.err"))" sh -c "[ -n \"\$(grep -o '\"task\": *\"arc_easy\"' '$T/q.json')\" ]"

# ---- bad input ---------------------------------------------------------------------------------------
mkdir -p "$T/bad"
cp "$Z"/*.jsonl "$T/bad/"
badfile() { # NAME TASK LINE-TEXT PATTERN: the line appended as line 5 of TASK's file must be refused
    cp "$Z/$2.jsonl" "$T/bad/$2.jsonl"
    while [ "$(wc -l <"$T/bad/$2.jsonl")" -lt 4 ]; do echo >>"$T/bad/$2.jsonl"; done
    echo "$3" >>"$T/bad/$2.jsonl"
    expect_fail "$1" "$T/bad.h5" "$4" "$QH" eval --model "$M" --zeroshot "$2" --zeroshot-data "$T/bad" --out "$T/bad.h5"
    cp "$Z/$2.jsonl" "$T/bad/$2.jsonl"
}
badfile "missing field" piqa '{"goal": "g", "sol1": "a", "label": 0}' "bad/piqa.jsonl:5: field 'sol2' is missing"
badfile "answer out of range" winogrande '{"sentence": "a _ b", "option1": "x", "option2": "y", "answer": "3"}' \
    "bad/winogrande.jsonl:5: field 'answer' is 3, out of range"
badfile "answer key not a label" arc_easy \
    '{"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "C"}' \
    "bad/arc_easy.jsonl:5: field 'answerKey'"
badfile "empty choice" hellaswag \
    '{"activity_label": "a", "ctx_a": "b", "ctx_b": "c", "endings": ["x", ""], "label": 0}' \
    "bad/hellaswag.jsonl:5: field 'endings\[1\]' is empty"
badfile "winogrande sentence without _" winogrande \
    '{"sentence": "no blank", "option1": "x", "option2": "y", "answer": "1"}' "bad/winogrande.jsonl:5: field 'sentence' has no '_'"
badfile "not JSON" arc_challenge '{"question": "q",' "bad/arc_challenge.jsonl:5: not a JSON object"
expect_fail "unknown task" "$T/bad.h5" "boolq" "$QH" eval --model "$M" --zeroshot piqa,boolq --zeroshot-data "$Z" --out "$T/bad.h5"
expect_fail "no data folder" "$T/bad.h5" "ZEROSHOT_DATA" env -u ZEROSHOT_DATA "$QH" eval --model "$M" --zeroshot piqa --out "$T/bad.h5"
expect_fail "a folder without the file" "$T/bad.h5" "$T/piqa.jsonl" "$QH" eval --model "$M" --zeroshot piqa --zeroshot-data "$T" --out "$T/bad.h5"
expect_fail "--zeroshot-limit without --zeroshot" - "apply to --zeroshot" "$QH" eval --model "$M" --zeroshot-limit 3
expect_fail "negative --zeroshot-limit" - "zeroshot-limit must be >= 0" \
    "$QH" eval --model "$M" --zeroshot piqa --zeroshot-data "$Z" --zeroshot-limit -1
expect_fail "--zeroshot with --max-memory" - "max-memory" \
    "$QH" eval --model "$M" --zeroshot piqa --zeroshot-data "$Z" --max-memory 64

# ---- a sweep with [eval] zeroshot ---------------------------------------------------------------------
sweep_ini() { # DATA-DIR
    cat <<EOF
[experiment]
description = test_zeroshot.sh
[model]
path = $M
[methods]
run = rtn
wbits = 3, 8
[eval]
datasets = tinystories
seqlen = 128
max_windows = 2
zeroshot = piqa, winogrande
zeroshot_data = $1
[output]
dir = $T/s
EOF
}
sweep_ini "$T/bad" >"$T/s.ini"
printf '{"goal": "g", "sol1": "a", "sol2": "", "label": 0}\n' >"$T/bad/piqa.jsonl"
expect_fail "sweep: a bad task file before any point" "$T/s/points" "bad/piqa.jsonl:1: field 'sol2' is empty" \
    "$QH" sweep "$T/s.ini"
check "sweep: the experiment line named" grep -q "s.ini:12: eval.zeroshot: task piqa" "$T/ef.err"
sweep_ini "$Z" >"$T/s.ini"
"$QH" sweep "$T/s.ini" >"$T/s.out" 2>"$T/s.err"
check "sweep with zeroshot ($(head -c 300 "$T/s.err"))" [ $? -eq 0 ]
check "sweep lines show each task's acc" [ "$(grep -c 'piqa acc [0-9.]* (.* s)  winogrande acc' "$T/s.out")" -eq 3 ]
if command -v h5dump >/dev/null 2>&1; then
    check "point files hold /eval/zeroshot/piqa" sh -c "h5dump -a /eval/zeroshot/piqa/acc_norm '$T'/s/points/*.h5 | grep -c '(0)' | grep -qx 2"
fi
"$QH" report "$T/s" >"$T/r.out" 2>"$T/r.err"
check "report ($(head -c 200 "$T/r.err"))" [ $? -eq 0 ]
check "table: a column per task" grep -q '| tinystories | piqa acc / norm | winogrande acc | id |' "$T/r.out"
fpz=$(grep "^| full precision |" "$T/r.out" | awk -F"|" "{ print \$(NF - 3) \"|\" \$(NF - 2) }" | tr -d ' ')
check "table: full precision's row, piqa 33.3 / 100.0 and winogrande 100.0 ($fpz)" [ "$fpz" = "33.3/100.0|100.0" ]
check "table.csv: acc, stderr, acc_norm, stderr and n per task" \
    grep -q 'piqa_acc,piqa_acc_stderr,piqa_acc_norm,piqa_acc_norm_stderr,piqa_n,winogrande_acc' "$T/s/table.csv"
check "table.csv: full precision's winogrande acc 1, stderr 0, no acc_norm, 3 items" \
    grep -q '^s,fp,.*,1.000000,0.000000,,,3,' "$T/s/table.csv"
summary
