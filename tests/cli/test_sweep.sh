#!/bin/sh
# test_sweep.sh: `qharness sweep`, `report` and `plot` end to end on a tiny
# experiment written here (stories260K from $QH_DATA, 4 calibration windows of
# 64 tokens, 2 evaluation windows of 64 tokens; each point takes about a
# second).
#
# - Config errors through the CLI name FILE:LINE: SECTION.KEY and exit non-zero
#   without creating the results folder: unknown key, bad number, empty list,
#   unknown method, unknown dataset; a group size larger than the model's
#   layers stops the sweep before any point; a missing model names the file, line, key
#   and the environment variable (shipped llama7b_*.ini with LLAMA7B_PATH unset
#   and set to a missing file). --help lists the keys; --dump lists the points.
# - What --check and the sweep's start refuse, each named by FILE:LINE: SECTION.KEY,
#   said once, nothing created: a group size wider than the model's layers,
#   [run] device = cuda without a GPU (checked for success where eval finds
#   one), a missing file:PATH for evaluation or calibration (no `make data`
#   hint), a [run] data folder without the built-in datasets (the hint, and
#   the line of [run] data). A broken section header (stories260K_methods.ini
#   with "[spqr") gives its syntax error alone. --point with fewer than 4 hex
#   digits says so; an absent id says there is no such point.
# - Kill and resume: a sweep is SIGKILLed as soon as its first point file
#   appears; the rerun computes only the missing points: each point file exists
#   exactly once, files finished before the kill keep their inode and mtime
#   (not recomputed, reported "done earlier"), no temporary or lock file is left,
#   and every final file passes `h5dump -H`.
# - Progress: not on a terminal (QH_VERBOSE=0) stdout has one line per point and
#   stderr no layer lines; QH_VERBOSE=1 (what a terminal gets) adds a line per
#   point start and per layer.
# - Concurrency: `sweep --jobs 2` and a second sweep of the same file at once:
#   every point computed by exactly one worker, all present afterwards.
#   --jobs 2 prints one summary for all its workers (7 of 7 computed), and with
#   failing points (a calibration text too short) counts them there and exits
#   non-zero.
# - Slurm: --slurm writes a bash-valid job-array script with one task per point
#   (task 0 = full precision); running one task by hand writes that point only.
# - report: table.md has one row per point plus full precision, table.csv one
#   line per point plus header and full precision.
# - plot: gnuplot exits 0 and every image is a real PNG / SVG / PDF of a
#   plausible size (skipped without gnuplot).
# - make data with no mirror and downloads failing (a curl that fails at once,
#   into an empty copy of data/): one line names DATA_MIRROR and ../shared/data.
# Not here: parsing details, ids, locks in isolation (tests/test_experiment.c).
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

M=$QH_DATA/models/stories260K/stories260K.bin
if [ ! -x "$QH" ]; then
    fail "$QH not built"
    summary
    exit 1
fi
if [ ! -f "$M" ]; then
    skip "stories260K missing under $QH_DATA (run make data)"
    summary
    exit $?
fi
case "$M" in /*) ;; *) M="$(pwd)/$M" ;; esac

# tiny NAME OUTDIR [EXTRA]: write $T/NAME.ini (6 points: rtn/gptq/spqr x 3, 4 bits)
tiny() {
    cat >"$T/$1.ini" <<EOF
[experiment]
description = tiny experiment of test_sweep.sh
[model]
path = $M
[calibration]
dataset = c4
nsamples = 4
seqlen = 64
[methods]
run = rtn, gptq, spqr
wbits = 3, 4
[spqr]
groupsize = 16
[eval]
datasets = tinystories, ptb
seqlen = 64
max_windows = 2
[output]
dir = $2
$3
EOF
}

# ---- config errors through the CLI ---------------------------------------------------
err_case() { # NAME BODY PATTERN
    printf '[model]\npath = %s\n[methods]\nrun = rtn\n%b' "$M" "$2" >"$T/bad.ini"
    printf '[output]\ndir = %s\n' "$T/bad_out" >>"$T/bad.ini"
    expect_fail "$1" "$T/bad_out" "$3" "$QH" sweep "$T/bad.ini"
}
err_case "unknown key" 'wbitz = 3\n' 'bad\.ini:5: methods\.wbitz: unknown key'
err_case "bad number" 'wbits = 3, x4\n' "bad\.ini:5: methods\.wbits: 'x4' is not a number"
err_case "empty list" 'wbits =\n' 'bad\.ini:5: methods\.wbits: empty list'
printf '[model]\npath = %s\n[methods]\nrun = rtn, rtm\n[output]\ndir = %s\n' "$M" "$T/bad_out" >"$T/bad.ini"
expect_fail "unknown method" "$T/bad_out" "bad\.ini:4: methods\.run: unknown method 'rtm'" "$QH" sweep "$T/bad.ini"
printf '[model]\npath = %s\n[methods]\nrun = rtn\n[eval]\ndatasets = ptb, wiki\n[output]\ndir = %s\n' "$M" \
    "$T/bad_out" >"$T/bad.ini"
expect_fail "unknown dataset" "$T/bad_out" "bad\.ini:6: eval\.datasets: unknown dataset 'wiki'" "$QH" sweep "$T/bad.ini"
printf '[model]\npath = %s/no_such_model.bin\n[methods]\nrun = rtn\n[output]\ndir = %s\n' "$T" "$T/bad_out" >"$T/bad.ini"
expect_fail "missing model" "$T/bad_out" "bad\.ini:2: model\.path: checkpoint .*no_such_model\.bin' not found" \
    "$QH" sweep "$T/bad.ini"
printf '[model]\npath = %s\n[methods]\nrun = spqr\n[spqr]\ngroupsize = 16, 128\n[output]\ndir = %s\n' "$M" \
    "$T/bad_out" >"$T/bad.ini"
expect_fail "groupsize larger than the model's layers" - "bad\.ini:6: spqr\.groupsize: 128 does not fit the model" \
    "$QH" sweep "$T/bad.ini"
check "no point computed when a setting does not fit" [ -z "$(ls "$T"/bad_out/points/ 2>/dev/null)" ]
rm -rf "$T/bad_out"
expect_fail "--check: groupsize larger than the model's layers" "$T/bad_out" \
    "bad\.ini:6: spqr\.groupsize: 128 does not fit the model: sub-layer .* is 64 x 64" "$QH" sweep "$T/bad.ini" --check
check "--check does not call it valid" [ -z "$(grep valid "$T/ef.out")" ]

# ---- what --check and the sweep's start refuse before any work -----------------------------
# pre_case NAME PATTERN BODY: BODY after [model] [methods] (rtn, gptq) [calibration] [output]: --check and the
# sweep both fail with PATTERN, the sweep's error said once, and nothing is created
pre_case() {
    printf '[model]\npath = %s\n[methods]\nrun = rtn, gptq\n[calibration]\nnsamples = 4\nseqlen = 64\n[output]\ndir = %s\n%b' \
        "$M" "$T/bad_out" "$3" >"$T/pre.ini"
    expect_fail "--check: $1" "$T/bad_out" "$2" "$QH" sweep "$T/pre.ini" --check
    check "--check: $1: not called valid" [ -z "$(grep valid "$T/ef.out")" ]
    expect_fail "sweep: $1" "$T/bad_out" "$2" "$QH" sweep "$T/pre.ini"
    check "sweep: $1: said once ($(grep -c . "$T/ef.err") lines)" [ "$(grep -Ec -- "$2" "$T/ef.err")" -eq 1 ]
}
printf '[model]\npath = %s\n[methods]\nrun = rtn\n[run]\ndevice = cuda\n[output]\ndir = %s\n' "$M" "$T/bad_out" >"$T/cuda.ini"
# is there a GPU? asked of eval (one short window), not of the check under test
if "$QH" eval --model "$M" --dataset tinystories --seqlen 32 --max-windows 1 --device cuda >/dev/null 2>&1; then
    "$QH" sweep "$T/cuda.ini" --check >"$T/cu.out" 2>&1
    rc=$?
    check "a CUDA GPU is visible: [run] device = cuda is valid ($(head -c 200 "$T/cu.out"))" [ $rc -eq 0 ]
else
    pre_case "device cuda without a GPU" "pre\.ini:11: run\.device: cuda, but (no CUDA GPU is visible|this build has no CUDA)" \
        '[run]\ndevice = cuda\n'
    check "device: no job blames a --device flag" [ -z "$(grep -- '--device' "$T/ef.err")" ]
fi
# a model with no tokenizer beside it: refused by --check and at the start, unless [model] tokenizer names one
mkdir -p "$T/notok"
cp "$M" "$T/notok/m.bin"
printf '[model]\npath = %s\n[methods]\nrun = rtn\n[eval]\ndatasets = tinystories\n[output]\ndir = %s\n' \
    "$T/notok/m.bin" "$T/bad_out" >"$T/notok.ini"
expect_fail "--check: no tokenizer beside the model" "$T/bad_out" \
    "notok\.ini:2: model\.path: no tokenizer found beside '$T/notok/m\.bin' \(tried tok512\.bin" \
    "$QH" sweep "$T/notok.ini" --check
expect_fail "sweep: no tokenizer beside the model" "$T/bad_out" "model\.path: no tokenizer found" "$QH" sweep "$T/notok.ini"
printf '[model]\ntokenizer = %s\n' "$TOK" >>"$T/notok.ini"
"$QH" sweep "$T/notok.ini" --check >"$T/nt.out" 2>&1
rc=$?
check "--check: [model] tokenizer given: valid ($(head -c 200 "$T/nt.out"))" [ $rc -eq 0 ]
mkdir -p "$T/empty_data" "$T/afolder"
pre_case "eval file a folder" "pre\.ini:11: eval\.datasets: dataset 'file:$T/afolder': '$T/afolder' is a folder \(expected a text file\)" \
    "[eval]\ndatasets = tinystories, file:$T/afolder\n"
# two missing files whose paths share their first 100 characters: both named
LONGD=$T/$(printf 'y%.0s' $(seq 1 100))
export LONGD
pre_case "long paths" "file '$LONGD/b\.txt' is missing" '[eval]\ndatasets = file:${LONGD}/a.txt, file:${LONGD}/b.txt\n'
check "long paths: the first one named too" grep -q "file '$LONGD/a\.txt' is missing" "$T/ef.err"
pre_case "eval file missing" "pre\.ini:11: eval\.datasets: dataset 'file:$T/nonexist\.txt': file '$T/nonexist\.txt' is missing\$" \
    "[eval]\ndatasets = tinystories, file:$T/nonexist.txt\n"
check "eval file missing: no make data hint for the user's file" [ -z "$(grep 'make data' "$T/ef.err")" ]
pre_case "calibration file missing" "pre\.ini:11: calibration\.dataset: dataset 'file:$T/nocal\.txt': file '$T/nocal\.txt' is missing\$" \
    "[calibration]\ndataset = file:$T/nocal.txt\n[eval]\ndatasets = tinystories\n"
pre_case "data root empty" \
    "pre\.ini:11: eval\.datasets: dataset 'wikitext2': file '$T/empty_data/text/wikitext-2-raw/wiki\.test\.raw' is missing \(run .make data.*\[run\] data at .*pre\.ini:13\$" \
    "[eval]\ndatasets = wikitext2\n[run]\ndata = $T/empty_data\n"
check "data root empty: the calibration file too ($(head -c 300 "$T/ef.err"))" \
    grep -q "pre\.ini: calibration\.dataset (default c4, for gptq): dataset 'c4': file '$T/empty_data/text/c4/" "$T/ef.err"

# ---- a broken section header is reported first, without its consequences ------------------
sed 's/^\[spqr\]/[spqr/' experiments/stories260K_methods.ini >"$T/b.ini"
n=$(grep -n '^\[spqr$' "$T/b.ini" | cut -d: -f1)
"$QH" sweep "$T/b.ini" --check >"$T/b.out" 2>"$T/b.err"
rc=$?
check "broken header: --check fails" [ $rc -ne 0 ]
check "broken header: the syntax error first ($(head -n 1 "$T/b.err"))" \
    [ "$(head -n 1 "$T/b.err")" = "qharness: error: $T/b.ini:$n: syntax error (expected '[section]', 'key = value' or a comment)" ]
check "broken header: its consequences not reported ($(head -c 300 "$T/b.err"))" [ "$(wc -l <"$T/b.err")" -eq 1 ]

# ---- --point ----------------------------------------------------------------------------------
expect_fail "--point too short" - "--point '1e': not a point id \(expected 4 to 12 hex digits" \
    "$QH" sweep experiments/stories260K_methods.ini --point 1e
check "--point too short: not 'no point'" [ -z "$(grep -i 'no point' "$T/ef.err")" ]
expect_fail "--point absent" - "--point 'ffffffffffff': no point has this id" \
    "$QH" sweep experiments/stories260K_methods.ini --point ffffffffffff
for e in llama7b_table1 llama7b_groupsize; do
    (unset LLAMA7B_PATH; "$QH" sweep "experiments/$e.ini" >"$T/l.out" 2>"$T/l.err")
    rc=$?
    check "$e without LLAMA7B_PATH fails" [ $rc -ne 0 ]
    check "$e names file:line:key and the variable ($(head -c 300 "$T/l.err"))" \
        grep -Eq "experiments/$e\.ini:[0-9]+: model\.path: environment variable LLAMA7B_PATH is not set" "$T/l.err"
    LLAMA7B_PATH=$T/absent/llama-7b.bin "$QH" sweep "experiments/$e.ini" >"$T/l.out" 2>"$T/l.err"
    rc=$?
    check "$e with a missing checkpoint fails" [ $rc -ne 0 ]
    check "$e missing checkpoint message ($(head -c 300 "$T/l.err"))" \
        grep -Eq "experiments/$e\.ini:[0-9]+: model\.path: checkpoint '.*absent/llama-7b\.bin' not found.*LLAMA7B_PATH" "$T/l.err"
done
check "no results folder for a bad file" [ ! -e "$T/bad_out" ]

"$QH" sweep --help >"$T/help.out" 2>&1
rc=$?
check "sweep --help exit status" [ $rc -eq 0 ]
for k in outlier_threshold qq_groupsize max_windows nsamples true_sequential '\[exclude\]'; do
    check "sweep --help lists $k" grep -q "$k" "$T/help.out"
done

# ---- dump ---------------------------------------------------------------------------------
tiny k "$T/k"
"$QH" sweep "$T/k.ini" --dump >"$T/dump.out" 2>"$T/dump.err"
rc=$?
check "dump exit status ($(head -c 200 "$T/dump.err"))" [ $rc -eq 0 ]
sed -n 's/^; \([0-9a-f]\{12\}\)  .*/\1/p' "$T/dump.out" >"$T/ids"
check "dump lists 6 points" [ "$(wc -l <"$T/ids")" -eq 6 ]
check "dump says where values came from" grep -q 'k.ini:11 \[methods\]' "$T/dump.out"
check "dump shows method defaults" grep -q 'spqr default' "$T/dump.out"
check "dump does not create results" [ ! -e "$T/k" ]
"$QH" sweep "$T/k.ini" --check >"$T/chk.out" 2>&1
check "--check accepts the file and finds the model ($(head -c 200 "$T/chk.out"))" grep -q 'valid, 6 points, model found' "$T/chk.out"
check "--check does not create results" [ ! -e "$T/k" ]

# ---- kill part-way, resume ---------------------------------------------------------------
"$QH" sweep "$T/k.ini" >"$T/k1.out" 2>"$T/k1.err" &
pid=$!
i=0
while [ $i -lt 1200 ]; do
    ls "$T"/k/points/*.h5 >/dev/null 2>&1 && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
    i=$((i + 1))
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
stat -c '%n %i %y' "$T"/k/points/*.h5 >"$T/before" 2>/dev/null
nbefore=$(wc -l <"$T/before")
check "the kill came part-way ($nbefore of 6 points finished)" sh -c "[ '$nbefore' -ge 1 ] && [ '$nbefore' -lt 6 ]"
check "finished files readable after the kill" sh -c "for f in $T/k/points/*.h5; do h5dump -H \"\$f\" >/dev/null || exit 1; done"
"$QH" sweep "$T/k.ini" >"$T/k2.out" 2>"$T/k2.err"
rc=$?
check "resume exit status ($(tail -c 300 "$T/k2.err"))" [ $rc -eq 0 ]
for id in $(cat "$T/ids"); do
    n=$(ls "$T"/k/points/ | grep -c "^$id\.h5$")
    check "point $id present once" [ "$n" -eq 1 ]
    check "point $id on one line of the resume output" [ "$(grep -c " $id\$" "$T/k2.out")" -eq 1 ]
done
check "exactly 6 point files" [ "$(ls "$T"/k/points/*.h5 | wc -l)" -eq 6 ]
check "no temporary file left" [ -z "$(find "$T/k" -name '*.tmp.*')" ]
check "no lock left" [ -z "$(find "$T/k" -name '*.lock*')" ]
while read -r f ino mt1 mt2 mt3; do
    check "$(basename "$f") not recomputed (inode, mtime)" [ "$(stat -c '%n %i %y' "$f")" = "$f $ino $mt1 $mt2 $mt3" ]
    id=$(basename "$f" .h5)
    check "$id reported done earlier" grep -q "done earlier  $id\$" "$T/k2.out"
done <"$T/before"
ncomp=$(grep -c ' bits .* [0-9a-f]\{12\}$' "$T/k2.out")
check "resume computed only the missing points ($ncomp vs $nbefore before)" [ "$ncomp" -eq $((6 - nbefore)) ]
check "resume summary line" grep -q "^sweep k: .* 0 failed" "$T/k2.out"
for f in "$T"/k/fp/*.h5 "$T"/k/points/*.h5; do
    check "h5dump -H $(basename "$f")" h5dump -H "$f" >/dev/null 2>&1
done
"$QH" sweep "$T/k.ini" >"$T/k3.out" 2>&1
n3=$(grep -c "done earlier  [0-9a-f]" "$T/k3.out")
check "third run: all 7 jobs done earlier ($n3: $(head -c 300 "$T/k3.out"))" [ "$n3" -eq 7 ]

# ---- progress lines -------------------------------------------------------------------------
check "not a terminal: no layer lines on stderr" [ -z "$(grep -E 'layer [0-9]+ w' "$T/k2.err")" ]
check "not a terminal: one stdout line per point" [ "$(grep -cE '^\[[0-9]+/6\]' "$T/k2.out")" -eq 6 ]
tiny v "$T/v"
sed -i 's/^wbits = 3, 4$/wbits = 4/; s/^run = rtn, gptq, spqr$/run = gptq/' "$T/v.ini"
QH_VERBOSE=1 "$QH" sweep "$T/v.ini" >"$T/v.out" 2>"$T/v.err"
check "terminal progress: per-layer lines" grep -qE 'layer 0 wq' "$T/v.err"
check "terminal progress: a line when a point starts" grep -qE '^\[1/1\] gptq w4 row: running' "$T/v.err"

# ---- two sweeps at once (one with two workers) ---------------------------------------------
tiny c "$T/c"
"$QH" sweep "$T/c.ini" --jobs 2 >"$T/c1.out" 2>"$T/c1.err" &
p1=$!
"$QH" sweep "$T/c.ini" >"$T/c2.out" 2>"$T/c2.err" &
p2=$!
wait $p1
r1=$?
wait $p2
r2=$?
check "concurrent sweeps exit 0 ($r1 $r2: $(tail -c 200 "$T/c1.err") $(tail -c 200 "$T/c2.err"))" sh -c "[ $r1 -eq 0 ] && [ $r2 -eq 0 ]"
for id in $(cat "$T/ids"); do
    n=$(cat "$T/c1.out" "$T/c2.out" | grep -c " bits .*  $id\$")
    check "point $id computed by exactly one worker ($n)" [ "$n" -eq 1 ]
done
check "concurrent: full precision computed once" [ "$(cat "$T/c1.out" "$T/c2.out" | grep -c '^\[fp\] .*(.*s)  ')" -eq 1 ]
check "concurrent: 6 point files" [ "$(ls "$T"/c/points/*.h5 | wc -l)" -eq 6 ]
check "concurrent: no lock or temp left" [ -z "$(find "$T/c" -name '*.lock*' -o -name '*.tmp.*')" ]
check "--jobs 2: one summary line for both workers ($(grep -c '^sweep c: .* jobs computed' "$T/c1.out"))" \
    [ "$(grep -c '^sweep c: .* jobs computed' "$T/c1.out")" -eq 1 ]

# ---- two experiments in one output folder: neither replaces the other's files -------------------
tiny sa "$T/share"
sed -i 's/^run = rtn, gptq, spqr$/run = rtn/; s/^wbits = 3, 4$/wbits = 4/' "$T/sa.ini"
sed 's/^datasets = tinystories, ptb$/datasets = tinystories/' "$T/sa.ini" >"$T/sb.ini"
"$QH" sweep "$T/sa.ini" >"$T/sa1.out" 2>&1
"$QH" sweep "$T/sb.ini" >"$T/sb.out" 2>"$T/sb.err"
check "shared folder: the second experiment is warned about the first ($(head -c 300 "$T/sb.err"))" \
    grep -q "described experiment 'sa'.*it now describes 'sb'" "$T/sb.err"
check "shared folder: two full-precision files ($(ls "$T/share/fp" | tr '\n' ' '))" [ "$(ls "$T/share/fp"/*.h5 | wc -l)" -eq 2 ]
"$QH" sweep "$T/sa.ini" >"$T/sa2.out" 2>&1
check "shared folder: the first experiment again: its fp and point done earlier ($(tail -n 1 "$T/sa2.out"))" \
    grep -q "^sweep sa: 0 of 2 jobs computed, 2 done earlier" "$T/sa2.out"
"$QH" report "$T/share" --quiet >/dev/null 2>&1
check "shared folder: report has the first experiment's full-precision row" grep -q "^| full precision" "$T/share/table.md"

# ---- --jobs N: one combined summary, its exit status from every worker ------------------------
tiny j "$T/j"
"$QH" sweep "$T/j.ini" --jobs 2 >"$T/j.out" 2>"$T/j.err"
rc=$?
check "--jobs 2 alone: exit 0 ($(tail -c 200 "$T/j.err"))" [ $rc -eq 0 ]
check "--jobs 2 alone: one summary, last, counting both workers ($(tail -n 2 "$T/j.out" | head -c 300))" \
    sh -c "grep -c '^sweep j: .* jobs computed' '$T/j.out' | grep -qx 1 &&
           tail -n 2 '$T/j.out' | head -n 1 | grep -q '^sweep j: 7 of 7 jobs computed, 0 done earlier, 0 in progress elsewhere, 0 failed (2 workers, '"
printf 'too short\n' >"$T/short.txt"
tiny jf "$T/jf"
sed -i "s#^dataset = c4\$#dataset = file:$T/short.txt#" "$T/jf.ini"
"$QH" sweep "$T/jf.ini" --jobs 2 >"$T/jf.out" 2>"$T/jf.err"
rc=$?
check "--jobs 2 with failing points: non-zero exit" [ $rc -ne 0 ]
check "--jobs 2 with failing points: one summary counting them ($(grep '^sweep jf:' "$T/jf.out" | tail -n 1))" \
    sh -c "grep -c '^sweep jf: .* jobs computed' '$T/jf.out' | grep -qx 1 &&
           grep -q '^sweep jf: 3 of 7 jobs computed, 0 done earlier, 0 in progress elsewhere, 4 failed (2 workers, ' '$T/jf.out'"
check "--jobs 2: each failing point run once, not once per worker ($(grep -c 'FAILED (see the error above)' "$T/jf.out"))" \
    sh -c "grep -c 'FAILED (see the error above)' '$T/jf.out' | grep -qx 4"

# ---- Slurm ------------------------------------------------------------------------------------
tiny s "$T/s"
"$QH" sweep "$T/s.ini" --slurm >"$T/s.out" 2>"$T/s.err"
rc=$?
check "slurm exit status ($(head -c 200 "$T/s.err"))" [ $rc -eq 0 ]
S=$T/s/slurm/sweep.sbatch
check "slurm script written" [ -f "$S" ]
check "slurm script is valid bash" bash -n "$S"
check "slurm array of 7 tasks" grep -q '^#SBATCH --array=0-6$' "$S"
check "slurm task list: fp + 6 ids" [ "$(sed -n 's/^points=(\(.*\))$/\1/p' "$S" | wc -w)" -eq 7 ]
check "slurm ran nothing" [ -z "$(ls "$T"/s/points/ 2>/dev/null)" ]
second=$(sed -n 2p "$T/ids")
SLURM_ARRAY_TASK_ID=2 bash "$S" >"$T/s2.out" 2>&1
rc=$?
check "slurm task 2 runs ($(tail -c 200 "$T/s2.out"))" [ $rc -eq 0 ]
check "slurm task 2 wrote point 2 only" [ "$(ls "$T"/s/points/)" = "$second.h5" ]

# ---- report ------------------------------------------------------------------------------------
"$QH" report "$T/k" >"$T/r.out" 2>"$T/r.err"
rc=$?
check "report exit status ($(head -c 200 "$T/r.err"))" [ $rc -eq 0 ]
check "table.md written" [ -s "$T/k/table.md" ]
check "table.md: one row per point" [ "$(grep -cE '^\| (RTN|GPTQ|SpQR) ' "$T/k/table.md")" -eq 6 ]
check "table.md: full precision row" [ "$(grep -c '^| full precision ' "$T/k/table.md")" -eq 1 ]
check "table.md: every point once" sh -c "for id in $(tr '\n' ' ' <"$T/ids"); do [ \$(grep -c \"| \$id |\" $T/k/table.md) -eq 1 ] || exit 1; done"
check "table.md: ppl with delta" grep -qE '\| [0-9.]+ \([+-][0-9.]+\) ' "$T/k/table.md"
check "report prints the table" grep -q '^| method | wbits | groupsize' "$T/r.out"
check "table.csv: header + fp + 6 rows" [ "$(wc -l <"$T/k/table.csv")" -eq 8 ]
check "table.csv columns" grep -q '^experiment,id,method,label,.*avg_bits,stored_bits,outlier_fraction,ppl_tinystories,delta_tinystories,ppl_ptb,delta_ptb' "$T/k/table.csv"
"$QH" report "$T/s" >"$T/r2.out" 2>&1
check "partial results: report names the missing points" grep -q '1 point of 6.*missing' "$T/s/table.md"
expect_fail "report of a missing folder" - "not a results folder" "$QH" report "$T/nothing"

# ---- plots ------------------------------------------------------------------------------------
if command -v gnuplot >/dev/null 2>&1; then
    "$QH" plot "$T/k" >"$T/p.out" 2>"$T/p.err"
    rc=$?
    check "plot exit status ($(head -c 300 "$T/p.err"))" [ $rc -eq 0 ]
    fmts="png svg"
    gnuplot -e 'set terminal' 2>&1 | grep -q pdfcairo && fmts="png svg pdf"
    for stem in bits_tinystories bits_ptb outliers_threshold outliers_layers; do
        for x in $fmts; do
            f=$T/k/plots/$stem.$x
            sz=$(stat -c %s "$f" 2>/dev/null || echo 0)
            check "$stem.$x is a non-trivial file ($sz bytes)" [ "$sz" -gt 2000 ]
            case $x in
            png) check "$stem.png is a PNG" sh -c "head -c 8 '$f' | od -An -tx1 | grep -q '89 50 4e 47 0d 0a 1a 0a'" ;;
            svg) check "$stem.svg is SVG" grep -q '<svg' "$f" ;;
            pdf) check "$stem.pdf is PDF" sh -c "head -c 5 '$f' | grep -q '%PDF-'" ;;
            esac
        done
    done
    check "plot data: Pareto front file" [ -s "$T/k/plots/pareto_ptb.dat" ]
    check "plot data: one block per method" [ "$(grep -c '^"' "$T/k/plots/bits_ptb.dat")" -eq 3 ]
    "$QH" plot "$T/k" --formats png --scripts "$T/none" >/dev/null 2>"$T/p2.err"
    rc=$?
    check "plot with a missing scripts folder fails" [ $rc -ne 0 ]
else
    skip "gnuplot not installed: plots not checked"
fi

# ---- make data without a mirror: one line naming DATA_MIRROR ------------------------------------
# offline and fast: a copy of the layout with an empty data/, and a curl that fails at once
mkdir -p "$T/fetch" "$T/bin" "$T/nomirror"
ln -s "$(pwd)/datasets" "$T/fetch/datasets"
printf '#!/bin/sh\necho "curl: (6) Could not resolve host (test stub)" >&2\nexit 6\n' >"$T/bin/curl"
chmod +x "$T/bin/curl"
root=$(pwd)
nomake="env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL" # not a sub-make of `make test`
for mirror in default "$T/nomirror"; do # default: DATA_MIRROR unset, and no ../shared/data beside the copy
    if [ "$mirror" = default ]; then
        (cd "$T/fetch" && PATH="$T/bin:$PATH" $nomake -u DATA_MIRROR timeout 120 make -s -f "$root/Makefile" data)
    else
        (cd "$T/fetch" && PATH="$T/bin:$PATH" $nomake timeout 120 make -s -f "$root/Makefile" data DATA_MIRROR="$mirror")
    fi >"$T/md.out" 2>"$T/md.err"
    rc=$?
    check "make data, mirror '$mirror', downloads failing: non-zero exit, not a timeout ($rc)" sh -c "[ $rc -ne 0 ] && [ $rc -ne 124 ]"
    check "make data, mirror '$mirror': one line names DATA_MIRROR and ../shared/data ($(tail -n 2 "$T/md.err" | head -c 400))" \
        [ "$(grep 'DATA_MIRROR' "$T/md.err" | grep -c '\.\./shared/data')" -eq 1 ]
    check "make data, mirror '$mirror': the sha256-checked files were not faked" [ -z "$(find "$T/fetch/data" -type f 2>/dev/null)" ]
done

summary
