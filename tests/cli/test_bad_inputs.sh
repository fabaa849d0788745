#!/bin/sh
# test_bad_inputs.sh: inputs that once got through, each refused with a clear
# message and a non-zero exit (issue 13; a quantized file's impossible layer
# attributes are tested on quant_model_load by tests/test_quant_file_checks.c):
# - eval --quantized with another model of the same shape than the file was
#   made from (model_sha256) fails, passes with --force (and a warning), passes
#   with the right model; --force without --quantized is refused;
# - a key before the first [section] of an experiment file;
# - report of a results folder where a point file was copied over another
#   point's name: refused, no table written;
# - a product of lists of more than 10000 points: refused naming the lists;
# - a NaN weight: eval fails and writes no --out; the sweep counts both jobs
#   failed (exit 1), keeps their files with status "failed", the report lists
#   them as FAILED (table.md; nan in table.csv) and a rerun computes
#   them again;
# - a FIFO as --model and as a Hugging Face folder's model.safetensors: refused
#   at once (not waited on);
# - sweep --check: an output folder under /proc or /sys, an evaluation window
#   longer than a dataset (seqlen 1048576), an empty file: dataset;
# - the workers of `sweep --jobs 2` end when their parent is killed.
# Not here: the checks these share with other commands (test_sweep.sh, test_cli.sh).
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
require_stories260k

E="--dataset tinystories --seqlen 128 --max-windows 1"

# ---- a quantized file and the model it was made from ----------------------------------------
"$QH" synth --out "$T/synth.bin" --dim 64 --hidden 172 --layers 5 --heads 8 --kv-heads 4 --vocab 512 --seq-len 512 \
    >/dev/null 2>&1
cp "$TOK" "$T/tok512.bin"
"$QH" quantize --model "$T/synth.bin" --method rtn --wbits 4 --calib none --save "$T/q_synth.h5" >/dev/null 2>&1
check "quantized file of a synthetic model written" [ -f "$T/q_synth.h5" ]
expect_fail "eval --quantized with another model of the same shape" "$T/e_bad.h5" \
    "q_synth\.h5' was quantized from another model .*synth\.bin.*not from .*stories260K\.bin.*--force" \
    "$QH" eval --model "$M" --quantized "$T/q_synth.h5" $E --out "$T/e_bad.h5"
"$QH" eval --model "$M" --quantized "$T/q_synth.h5" $E --force >"$T/force.out" 2>"$T/force.err"
check "--force: evaluated anyway ($(head -c 200 "$T/force.err"))" [ $? -eq 0 ]
check "--force: with a warning" grep -q "warning: --force: .*q_synth\.h5' was made from another model" "$T/force.err"
"$QH" eval --quantized "$T/q_synth.h5" $E >/dev/null 2>"$T/own.err"
check "eval --quantized with the model it names ($(head -c 200 "$T/own.err"))" [ $? -eq 0 ]
expect_fail "--force without --quantized" - "--force applies to --quantized only" "$QH" eval --model "$M" $E --force

# ---- experiment files -----------------------------------------------------------------------
printf 'wbits = 2\n[model]\npath = %s\n[methods]\nrun = rtn\n[output]\ndir = %s\n' "$M" "$T/pre_out" >"$T/pre.ini"
expect_fail "a key before the first [section]" "$T/pre_out" \
    "pre\.ini:1: \(no section\)\.wbits: a key before the first \[section\]" "$QH" sweep "$T/pre.ini" --check
expect_fail "a key before the first [section] (--dump)" - "pre\.ini:1: " "$QH" sweep "$T/pre.ini" --dump

printf '[model]\npath = %s\n[methods]\nrun = rtn, spqr\nwbits = 1, 2, 3, 4, 5, 6, 7, 8\n[spqr]\ngroupsize = 1, 2, 4, 8, 16, 32, 64\nqq_groupsize = 1, 2, 4, 8, 16, 32, 64\npercdamp = 0.1, 0.2, 0.5, 1, 2, 4, 8\nperm = identity, act_order\n[output]\ndir = %s\n' \
    "$M" "$T/big_out" >"$T/big.ini"
"$QH" sweep "$T/big.ini" --dump >/dev/null 2>"$T/big.err"
check "5496 points are expanded ($(head -c 200 "$T/big.err"))" [ $? -eq 0 ]
sed 's/^perm = identity, act_order$/perm = identity, act_order\nsym = false, true/' "$T/big.ini" >"$T/huge.ini"
expect_fail "a product of 10984 points" "$T/big_out" \
    "huge\.ini:4: methods\.run: the lists make 10984 points \(rtn: 8 = 8 wbits \(line 5\); spqr: 10976 = 8 wbits \(line 5\) x 7 groupsize \(line 7\) x 7 qq_groupsize \(line 8\) x 7 percdamp \(line 9\) x 2 perm \(line 10\) x 2 sym \(line 11\)\), more than 10000" \
    "$QH" sweep "$T/huge.ini" --dump

# ---- sweep --check: what would only fail at run time -------------------------------------------
chk() { # NAME PATTERN BODY (after [model] [methods] rtn)
    printf '[model]\npath = %s\n[methods]\nrun = rtn\n%b' "$M" "$3" >"$T/chk.ini"
    expect_fail "--check: $1" - "$2" "$QH" sweep "$T/chk.ini" --check
    check "--check: $1: not called valid" [ -z "$(grep valid "$T/ef.out")" ]
}
chk "output folder under /proc" "chk\.ini:8: output\.dir: results cannot be written under '/proc/qharness/x'" \
    '[eval]\ndatasets = tinystories\n[output]\ndir = /proc/qharness/x\n'
chk "output folder under /sys" "chk\.ini:8: output\.dir: results cannot be written under '/sys/qharness'" \
    '[eval]\ndatasets = tinystories\n[output]\ndir = /sys/qharness\n'
chk "a window longer than the dataset" \
    "chk\.ini:7: eval\.seqlen: a window of 1048576 tokens is longer than dataset 'tinystories' \(1809 tokens\)" \
    "[eval]\ndatasets = tinystories\nseqlen = 1048576\n[output]\ndir = $T/chk_out\n"
: >"$T/empty.txt"
chk "an empty file: dataset" "chk\.ini:6: eval\.datasets: dataset 'file:$T/empty\.txt': file '$T/empty\.txt' is empty" \
    "[eval]\ndatasets = file:$T/empty.txt\n[output]\ndir = $T/chk_out\n"
check "--check created no output folder" [ ! -e "$T/chk_out" ]
printf '[model]\npath = %s\n[methods]\nrun = rtn\n[eval]\ndatasets = tinystories\nseqlen = 128\n[output]\ndir = %s\n' \
    "$M" "$T/chk_out" >"$T/good.ini"
"$QH" sweep "$T/good.ini" --check >"$T/good.out" 2>&1
check "--check: a valid file is valid ($(head -c 300 "$T/good.out"))" grep -q "valid, 1 points" "$T/good.out"
check "--check: its probe file is gone" [ -z "$(ls -A "$T" | grep qharness_write_check)" ]

# ---- a FIFO where a checkpoint file is expected --------------------------------------------------
if mkfifo "$T/fifo.bin" 2>/dev/null; then
    expect_fail "a FIFO as --model" - "model '.*fifo\.bin' is not a regular file \(a FIFO\)" \
        timeout 30 "$QH" eval --model "$T/fifo.bin" --tokenizer "$TOK" $E
    "$QH" export --model "$M" --format hf --out "$T/hf" >/dev/null 2>&1
    rm -f "$T/hf/model.safetensors"
    mkfifo "$T/hf/model.safetensors"
    expect_fail "a FIFO as model.safetensors" - "safetensors file '.*hf/model\.safetensors' is not a regular file \(a FIFO\)" \
        timeout 30 "$QH" eval --model "$T/hf" $E
else
    skip "mkfifo failed: FIFO cases not run"
fi

# ---- a checkpoint with one NaN weight --------------------------------------------------------
# rms_att of block 0, first value: after the 28-byte header and the (512, 64) fp32 embedding
cp "$M" "$T/nan.bin"
cp "$TOK" "$T/tok512.bin"
printf '\000\000\300\177' | dd of="$T/nan.bin" bs=1 seek=131100 conv=notrunc 2>/dev/null
expect_fail "eval of a NaN checkpoint" "$T/nan_eval.h5" "evaluation on tinystories failed: perplexity nan" \
    "$QH" eval --model "$T/nan.bin" $E --out "$T/nan_eval.h5"
printf '[model]\npath = %s\n[methods]\nrun = rtn\nwbits = 3, 4\n[eval]\ndatasets = tinystories, ptb\nseqlen = 128\nmax_windows = 1\n[output]\ndir = %s\n' \
    "$T/nan.bin" "$T/nan_out" >"$T/nan.ini"
"$QH" sweep "$T/nan.ini" >"$T/nan.out" 2>"$T/nan.err"
check "sweep of a NaN checkpoint exits non-zero" [ $? -ne 0 ]
check "sweep: 3 failed ($(tail -n 1 "$T/nan.out"))" grep -q "0 of 3 jobs computed, .* 3 failed" "$T/nan.out"
check "sweep: the failure named" grep -q "evaluation on tinystories failed: perplexity nan" "$T/nan.err"
npts=$(ls "$T/nan_out/points/"*.h5 2>/dev/null | wc -l)
check "sweep: the failed points' files are kept ($npts)" [ "$npts" -eq 2 ]
for f in "$T"/nan_out/points/*.h5 "$T"/nan_out/fp/*.h5; do
    check "$(basename "$f"): status failed" sh -c "h5dump -a status '$f' | grep -q '\"failed\"'"
done
"$QH" report "$T/nan_out" >"$T/rep.out" 2>"$T/rep.err"
check "report of failed points runs ($(head -c 200 "$T/rep.err"))" [ $? -eq 0 ]
check "report: the full-precision row FAILED" grep -q '^| full precision .*| FAILED (nan) | FAILED (nan) | fp |' "$T/nan_out/table.md"
check "report: both points FAILED in the table" [ "$(grep -c '^| RTN .*| FAILED (nan) | FAILED (nan) |' "$T/nan_out/table.md")" -eq 2 ]
check "report: listed as failed" grep -q "; 2 FAILED: .*tinystories ppl nan" "$T/nan_out/table.md"
check "report: csv: nan where the evaluation failed" [ "$(grep -c ',nan,,nan,' "$T/nan_out/table.csv")" -eq 3 ]
"$QH" sweep "$T/nan.ini" >"$T/nan2.out" 2>"$T/nan2.err"
check "rerun: failed jobs are computed again, not 'done earlier'" \
    sh -c "! grep -q 'done earlier  ' '$T/nan2.out' && grep -q 'records a failed run' '$T/nan2.err'"

# ---- report of a point file copied over another point's name ----------------------------------
printf '[model]\npath = %s\n[methods]\nrun = rtn\nwbits = 3, 4\n[eval]\ndatasets = tinystories\nseqlen = 128\nmax_windows = 1\n[output]\ndir = %s\n' \
    "$M" "$T/cp_out" >"$T/cp.ini"
"$QH" sweep "$T/cp.ini" >/dev/null 2>&1
set -- "$T"/cp_out/points/*.h5
if [ $# -eq 2 ]; then
    cp "$1" "$2"
    expect_fail "report with a point file under another point's name" "$T/cp_out/table.md" \
        "'$2' holds point $(basename "$1" .h5) \(its point_id\), not the point its name says" "$QH" report "$T/cp_out"
else
    fail "the copy case needs 2 point files, found $#"
fi

# ---- sweep --jobs 2: the workers end with their parent -----------------------------------------
printf '[model]\npath = %s\n[calibration]\nnsamples = 64\nseqlen = 512\n[methods]\nrun = gptq\nwbits = 2, 3, 4, 5, 6, 7, 8\n[eval]\ndatasets = tinystories\n[output]\ndir = %s\n' \
    "$M" "$T/jobs_out" >"$T/jobs.ini"
"$QH" sweep "$T/jobs.ini" --jobs 2 >"$T/jobs.out" 2>&1 &
parent=$!
workers=""
i=0
while [ $i -lt 100 ] && [ "$(echo $workers | wc -w)" -lt 2 ]; do
    sleep 0.1
    workers=$(ps -o pid= --ppid "$parent" 2>/dev/null)
    i=$((i + 1))
done
check "sweep --jobs 2 started 2 workers ($workers)" [ "$(echo $workers | wc -w)" -eq 2 ]
kill -9 "$parent" 2>/dev/null
wait "$parent" 2>/dev/null
left=$workers
i=0
while [ -n "$left" ] && [ $i -lt 100 ]; do
    sleep 0.1
    left=""
    for w in $workers; do kill -0 "$w" 2>/dev/null && left="$left $w"; done
    i=$((i + 1))
done
check "the workers ended with their parent (left:$left)" [ -z "$left" ]
for w in $left; do kill -9 "$w" 2>/dev/null; done

summary
