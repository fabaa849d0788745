#!/bin/sh
# test_sweep_stream.sh: sweeps under [run] max_memory (block_run.h) on a
# procedural model of 64 blocks of dim 256 (194.1 MB in fp32, as the plan
# prints it), three times its 64 MB budget; rtn and gptq at 3 bits, 2
# calibration windows of 32, 2 evaluation windows of 64 (CPU):
# - the same sweep with and without the budget: the same point ids (budgets
#   are not settings), every saved model's /layers datasets equal (h5diff,
#   exact), the same per-token NLLs (/eval/tinystories/nll, h5diff exact) and
#   perplexities to 17 digits, points and full precision alike; each line of
#   the budgeted run says "streamed (max_memory 64 MB)", its files record
#   streamed 1 / max_memory_mb 64, the unbudgeted ones streamed 0;
# - host memory: in every budgeted file the worker's peak RSS less its RSS at
#   start (libraries loaded, no model) is within the 64 MB; in the unbudgeted
#   gptq point it is above 190 MB (the whole model: the check can fail).
#   Measured 2026-12-07 (the files' /peak_rss_mb - /base_rss_mb, h5dump -a):
#   full precision, rtn, gptq 9.3, 41.5, 56.7 MB with the budget (the plans:
#   5.0, 42.6, 50.0 MB; 45.9 and 53.3 for rtn and gptq once the quantizer's
#   output was planned), 199.2, 463.1, 483.6 MB without;
# - without save_models the point's model goes to a temporary file under the
#   results folder, removed after: no models/ folder, no *.tmp.* left, the
#   same perplexity;
# - AWQ (its search block by block, on the CPU as always) under quantize
#   --max-memory 60 on 4 blocks: the same layer datasets and perplexity;
# - max_memory = auto there: the plan fits this host, so the whole model (said
#   on the line, streamed 0 in the file), the same perplexity;
# - bad [run] keys refused by FILE:LINE: run.KEY before any point runs,
#   nothing created: max_memory = -1, 12abc, 8 (below one block: its 3.0 MB
#   named), max_device_memory without max_memory or with device cpu, kld and
#   zeroshot with max_memory (named by their own keys);
# - `sweep --plan` on experiments/llama30b_table1.ini and llama65b_table1.ini
#   as shipped (their [run] budgets), the model path replaced by the
#   procedural model of the same shape and [run] device by cuda: every job's
#   plan printed, every host total within max_memory (96000 MB) and every
#   device total within max_device_memory (72000 MB, below an 80 GB card);
#   the same file with max_memory = 4000 refused naming its line.
. "$(dirname "$0")/lib.sh"
require_stories260k
case "$TOK" in /*) ;; *) TOK="$(pwd)/$TOK" ;; esac
. "$(dirname "$0")/sweep_stream_lib.sh"
P=$SS_MODEL
exp() { ss_exp "$1" "$2" "$3" cpu "$4"; } # NAME OUTDIR SAVE RUN-LINES

exp budget "$T/b" true "max_memory = 64"
exp whole "$T/w" true ""
"$QH" sweep "$T/budget.ini" >"$T/b.out" 2>"$T/b.err"
check "sweep with max_memory = 64 ($(grep -v '^ ' "$T/b.err" | head -c 300))" [ $? -eq 0 ]
"$QH" sweep "$T/whole.ini" >"$T/w.out" 2>"$T/w.err"
check "sweep without a budget ($(head -c 300 "$T/w.err"))" [ $? -eq 0 ]
check "3 jobs streamed, said on their lines" [ "$(grep -c 'streamed (max_memory 64 MB)' "$T/b.out")" -eq 3 ]
check "no line says streamed without a budget" [ "$(grep -c streamed "$T/w.out")" -eq 0 ]
check "the plans are printed" grep -q "^memory plan (quantization, 2 calibration windows of 32" "$T/b.err"
check_same "the same point ids" "$(ls "$T/b/points" | tr '\n' ' ')" "$(ls "$T/w/points" | tr '\n' ' ')"
check "two points" [ "$(ls "$T/b/points" | wc -l)" -eq 2 ]
for f in "$T"/b/points/*.h5 "$T"/b/fp/*.h5; do
    g=$(echo "$f" | sed "s|^$T/b/|$T/w/|")
    id=$(basename "$f" .h5)
    check "$id: nll equal (h5diff)" h5diff "$f" "$g" /eval/tinystories/nll /eval/tinystories/nll
    check_same "$id: ppl equal" "$(attr "$f" /eval/tinystories/ppl)" "$(attr "$g" /eval/tinystories/ppl)"
    check_same "$id: streamed 1" "$(attr "$f" /streamed)" 1
    check_same "$id: without a budget streamed 0" "$(attr "$g" /streamed)" 0
    check_same "$id: max_memory_mb" "$(attr "$f" /max_memory_mb)" 64
    B=$(attr "$f" /base_rss_mb)
    K=$(attr "$f" /peak_rss_mb)
    check "$id: peak RSS $K MB - start $B MB within the 64 MB budget" \
        awk -v b="$B" -v k="$K" 'BEGIN { exit !(b > 0 && k - b <= 64) }'
done
# the saved models' datasets (codes, statistics, outliers) and their attributes, exactly; not the files' and the
# layer groups' attributes (provenance, seconds) nor /quant (layer_seconds)
for f in "$T"/b/models/*.h5; do
    id=$(basename "$f" .h5)
    ex=$(h5ls -r "$f" | awk '$2 == "Group" && $1 ~ /^\/layers\/[0-9]+\/[a-z0-9_]+$/ { printf " --exclude-attribute %s", $1 }')
    check "$id: saved model's layer datasets equal (h5diff)" \
        h5diff -q --exclude-attribute / --exclude-path /quant $ex "$f" "$T/w/models/$id.h5"
done
check "h5diff tells two points' models apart" [ "$(h5diff -q --exclude-attribute / --exclude-path /quant $ex \
    "$T"/b/models/*.h5 >/dev/null 2>&1; echo $?)" -eq 1 ]
check "two saved models" [ "$(ls "$T/b/models" | wc -l)" -eq 2 ]
G=$(grep "gptq w3" "$T/w.out" | awk '{print $NF}')
B=$(attr "$T/w/points/$G.h5" /base_rss_mb)
K=$(attr "$T/w/points/$G.h5" /peak_rss_mb)
check "without a budget the gptq point's peak RSS grows by the model ($K - $B MB > 190)" \
    awk -v b="$B" -v k="$K" 'BEGIN { exit !(k - b > 190) }'

# without save_models: a temporary model file, removed
R=$(grep "rtn w3" "$T/b.out" | awk '{print $NF}')
exp tmp "$T/t" false "max_memory = 64"
"$QH" sweep "$T/tmp.ini" --point "$R" >"$T/t.out" 2>"$T/t.err"
check "one point without save_models ($(grep -v '^ ' "$T/t.err" | head -c 300))" [ $? -eq 0 ]
check "no models folder" [ ! -e "$T/t/models" ]
check "no temporary file left" [ -z "$(find "$T/t" -name '*.tmp.*')" ]
check_same "its ppl equals the saved-model run's" "$(attr "$T/t/points/$R.h5" /eval/tinystories/ppl)" \
    "$(attr "$T/b/points/$R.h5" /eval/tinystories/ppl)"

# auto on a model that fits this host: the whole model, said on the line and in the file
exp auto "$T/a" false "max_memory = auto"
"$QH" sweep "$T/auto.ini" --point "$R" >"$T/a.out" 2>"$T/a.err"
check "one point with max_memory = auto ($(head -c 300 "$T/a.err"))" [ $? -eq 0 ]
check "its line says auto chose the whole model" grep -q "whole model (auto: the plan needs" "$T/a.out"
check_same "auto: streamed 0" "$(attr "$T/a/points/$R.h5" /streamed)" 0
check_same "auto: max_memory recorded as written" "$(attr "$T/a/points/$R.h5" /max_memory)" '"auto"'
check_same "auto: the same ppl" "$(attr "$T/a/points/$R.h5" /eval/tinystories/ppl)" \
    "$(attr "$T/b/points/$R.h5" /eval/tinystories/ppl)"

# AWQ's search under a budget (what a sweep's awq point runs: block_run_quantize): on 4 blocks, quantize
# --max-memory 60 and without, the same layer datasets and perplexity
P4="procedural:custom,dim=256,hidden=688,layers=4,heads=4,vocab=512,seq_len=256,seed=4"
A="--model $P4 --tokenizer $TOK --method awq --nsamples 2 --seqlen 32 --eval tinystories --eval-seqlen 64 --max-windows 2 --json"
"$QH" quantize $A --save "$T/awq0.h5" >"$T/awq0.json" 2>"$T/awq0.err"
check "awq in memory ($(head -c 200 "$T/awq0.err"))" [ $? -eq 0 ]
"$QH" quantize $A --max-memory 60 --save "$T/awq1.h5" >"$T/awq1.json" 2>"$T/awq1.err"
check "awq --max-memory 60 ($(grep -v '^ ' "$T/awq1.err" | head -c 200))" [ $? -eq 0 ]
check_same "awq: the same perplexity" "$(sed -n 's/.*"ppl":\([-0-9.eE+]*\).*/\1/p' "$T/awq0.json")" \
    "$(sed -n 's/.*"ppl":\([-0-9.eE+]*\).*/\1/p' "$T/awq1.json")"
ex=$(h5ls -r "$T/awq0.h5" | awk '$2 == "Group" && $1 ~ /^\/layers\/[0-9]+\/[a-z0-9_]+$/ { printf " --exclude-attribute %s", $1 }')
check "awq: the same layer datasets (scales included)" \
    h5diff -q --exclude-attribute / --exclude-path /quant $ex "$T/awq0.h5" "$T/awq1.h5"

# bad keys: FILE:LINE: run.KEY, nothing created
bad() { # NAME RUN-LINES PATTERN [EVAL-LINES]
    exp bad "$T/bad_out" false "$2"
    [ -n "$4" ] && printf '[eval]\n%s\n' "$4" >>"$T/bad.ini"
    expect_fail "$1" "$T/bad_out" "$3" "$QH" sweep "$T/bad.ini"
}
bad "max_memory -1" "max_memory = -1" "bad\.ini:17: run\.max_memory: '-1' is not a budget"
bad "max_memory 12abc" "max_memory = 12abc" "bad\.ini:17: run\.max_memory: '12abc' is not a budget"
bad "max_memory below one block" "max_memory = 8" "one block \(3\.0 MB"
bad "max_memory below one block: named" "max_memory = 8" "bad\.ini:17: run\.max_memory: (point .*|the full-precision evaluation) cannot run block by block"
bad "device budget alone" "max_device_memory = 1000" "bad\.ini:17: run\.max_device_memory: needs run\.max_memory"
bad "device budget on cpu" "max_memory = 100
max_device_memory = 1000" "bad\.ini:18: run\.max_device_memory: applies to a GPU"
bad "kld streamed" "max_memory = 100" "bad\.ini:22: eval\.kld: cannot run with run\.max_memory \(line 17\)" "kld = true"
bad "zeroshot streamed" "max_memory = auto" "bad\.ini:22: eval\.zeroshot: cannot run with run\.max_memory" "zeroshot = piqa"

# the shipped LLaMA-30B / 65B files: every job's plan within their budgets
L2=$QH_DATA/tokenizers/llama2/tokenizer.bin
case "$L2" in /*) ;; *) L2="$(pwd)/$L2" ;; esac
for s in 30b 65b; do
    f=experiments/llama${s}_table1.ini
    if [ ! -f "$L2" ]; then
        skip "llama$s plan: $L2 missing (make data)"
        continue
    fi
    mm=$(sed -n 's/^max_memory = //p' "$f")
    md=$(sed -n 's/^max_device_memory = //p' "$f")
    check_same "llama$s: [run] max_memory 96000" "$mm" 96000
    check_same "llama$s: [run] max_device_memory 72000" "$md" 72000
    sed -e "s|^path = .*|path = procedural:llama-$s\ntokenizer = $L2|" -e 's/^device = auto/device = cuda/' \
        -e "s|^\[output\]|[output]|" "$f" >"$T/l$s.ini"
    printf '[output]\ndir = %s\n' "$T/l${s}_out" >>"$T/l$s.ini"
    "$QH" sweep "$T/l$s.ini" --plan >"$T/p$s.out" 2>"$T/p$s.err"
    check "llama$s --plan ($(head -c 300 "$T/p$s.err"))" [ $? -eq 0 ]
    n=$(sed -n 's/^\(.*\): \([0-9]*\) points.*/\2/p' "$T/p$s.out")
    check "llama$s: a plan per job ($n points: $((2 * n + 1)) plans)" [ "$(grep -c '^  total: host' "$T/p$s.out")" -eq $((2 * n + 1)) ]
    check "llama$s: every host total within $mm MB, every device total within $md MB" awk -v mm="$mm" -v md="$md" '
        /^  total: host/ { n++; h = $3; d = $8; if (h > mm || d > md) bad++ }
        END { exit !(n > 0 && !bad) }' "$T/p$s.out"
    check "llama$s: one block on the device at a time" grep -q "device: one block at a time" "$T/p$s.out"
    check "llama$s: --plan created nothing" [ ! -e "$T/l${s}_out" ]
done
# Falcon-40B (no procedural Falcon): a Hugging Face directory holding only a config.json of its shape (60
# blocks, dim 8192, 128 query / 8 key-value heads, FFN 32768, vocabulary 65024), evaluation plans for at most
# 256 windows per dataset ([eval] max_windows: the datasets are not tokenized)
f=experiments/falcon40b_table2.ini
mkdir -p "$T/f40"
sed -e 's/"ffn_hidden_size": 128/"ffn_hidden_size": 32768/' -e 's/"hidden_size": 32/"hidden_size": 8192/' \
    -e 's/"max_position_embeddings": 128/"max_position_embeddings": 2048/' \
    -e 's/"num_attention_heads": 4/"num_attention_heads": 128/' -e 's/"num_hidden_layers": 2/"num_hidden_layers": 60/' \
    -e 's/"num_kv_heads": 2/"num_kv_heads": 8/' -e 's/"vocab_size": 512/"vocab_size": 65024/' \
    tests/fixtures/families/falcon40b_f32/config.json >"$T/f40/config.json"
sed -e "s|^path = .*|path = $T/f40|" -e 's/^device = auto/device = cuda/' -e 's/^\[eval\]/[eval]\nmax_windows = 256/' \
    "$f" >"$T/f40.ini"
printf '[output]\ndir = %s\n' "$T/f40_out" >>"$T/f40.ini"
"$QH" sweep "$T/f40.ini" --plan >"$T/pf.out" 2>"$T/pf.err"
check "falcon40b --plan ($(head -c 300 "$T/pf.err"))" [ $? -eq 0 ]
check "falcon40b: 60 blocks of dim 8192" grep -q "(60 blocks of dim 8192)" "$T/pf.out"
n=$(sed -n 's/^\(.*\): \([0-9]*\) points.*/\2/p' "$T/pf.out")
check "falcon40b: a plan per job ($n points)" [ "$(grep -c '^  total: host' "$T/pf.out")" -eq $((2 * n + 1)) ]
check "falcon40b: every host total within 96000 MB, every device total within 72000 MB" awk '
    /^  total: host/ { n++; if ($3 > 96000 || $8 > 72000) bad++ }
    END { exit !(n > 0 && !bad) }' "$T/pf.out"

if [ -f "$L2" ]; then
    sed -i 's/^max_memory = .*/max_memory = 4000/' "$T/l65b.ini"
    expect_fail "llama65b within 4000 MB" "$T/l65b_out" \
        "l65b\.ini:[0-9]+: run\.max_memory .*: the full-precision evaluation cannot run" "$QH" sweep "$T/l65b.ini" --plan
fi
summary
