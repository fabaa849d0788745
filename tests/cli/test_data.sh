#!/bin/sh
# test_data.sh: the paper's C4 shards in `make data` (datasets/fetch.sh with the
# optional rows of datasets/manifest.tsv) and in the results that use them.
# Offline and fast: a curl that fails at once, small gzip shards written by
# `test_c4_shards --write`, a temporary lock file (DATA_LOCK).
#
# - Offline, no mirror holding the shards: exit 0, exactly one line per
#   optional file (naming it and what is used instead), nothing installed, no
#   lock file; DATA_OPTIONAL=0 (make test, make run): one summary line.
# - From a mirror: both shards installed, their sha256 and size recorded in
#   the lock file (as sha256sum and wc -c give them); a second run is silent;
#   with a lock file from "another machine" whose digest differs, the shard is
#   refused and the installed one stays; a shard in place that differs from
#   the lock fails make test's DATA_OPTIONAL=0 pass.
# - A truncated shard and one with a bad JSON line in the mirror: refused with
#   the file and the line, non-zero exit, nothing installed, no .part, no lock.
# - qharness eval on the installed validation shard: the note says which text
#   was used, the result file and --json name the shard and its sha256; the
#   same without the shard says train slice.
# Not here: the sampler's draws (tests/test_c4_shards.c).
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
require_stories260k
SH=$QH_BUILD/tests/test_c4_shards
if [ ! -x "$SH" ]; then
    fail "$SH not built"
    summary
    exit 1
fi
tab=$(printf '\t')
MAN=datasets/manifest.tsv
awk -F"$tab" 'NR == 1 || $7 == "optional"' "$MAN" >"$T/opt.tsv"
check "the manifest has two optional rows" [ "$(wc -l <"$T/opt.tsv")" -eq 3 ]
VAL=text/c4/c4-validation.00000-of-00008.json.gz
TRN=text/c4/c4-train.00000-of-01024.json.gz
mkdir -p "$T/bin"
printf '#!/bin/sh\necho "curl: (6) Could not resolve host (test stub)" >&2\nexit 6\n' >"$T/bin/curl"
chmod +x "$T/bin/curl"
fetch() { # DEST [VAR=VALUE...]: fetch.sh over the optional rows, offline
    _d=$1
    shift
    env PATH="$T/bin:$PATH" DATA_LOCK="$T/lock" QH="$QH" "$@" sh datasets/fetch.sh "$T/opt.tsv" "$_d" >"$T/f.out" 2>"$T/f.err"
}

# ---- offline, no mirror ------------------------------------------------------------------
fetch "$T/d0" DATA_MIRROR="$T/nomirror"
rc=$?
check "offline: exit 0 ($rc; $(head -c 300 "$T/f.err"))" [ $rc -eq 0 ]
check "offline: one line per optional file ($(cat "$T/f.out" "$T/f.err" | head -c 600))" \
    [ "$(cat "$T/f.out" "$T/f.err" | wc -l)" -eq 2 ]
check "offline: the validation shard's line names it and the slice" \
    grep -q "optional 'c4-validation-00000' ($VAL) not fetched.*train slice, flagged" "$T/f.out"
check "offline: the train shard's line" grep -q "optional 'c4-train-00000' ($TRN) not fetched" "$T/f.out"
check "offline: nothing installed" [ -z "$(find "$T/d0" -type f)" ]
check "offline: no lock file" [ ! -e "$T/lock" ]
fetch "$T/d0" DATA_MIRROR="$T/nomirror" DATA_OPTIONAL=0
rc=$?
check "DATA_OPTIONAL=0: exit 0 and one summary line ($(cat "$T/f.out"))" \
    sh -c "[ $rc -eq 0 ] && [ \$(wc -l <'$T/f.out') -eq 1 ] && grep -q 'not fetched by this target.*c4-validation-00000 c4-train-00000' '$T/f.out'"

# ---- from a mirror: installed, recorded, verified ---------------------------------------------
"$SH" --write "$T/mirror" >/dev/null
fetch "$T/d1" DATA_MIRROR="$T/mirror"
rc=$?
check "mirror: exit 0 ($rc; $(head -c 300 "$T/f.err"))" [ $rc -eq 0 ]
check "mirror: both shards installed byte for byte" \
    sh -c "cmp -s '$T/mirror/$VAL' '$T/d1/$VAL' && cmp -s '$T/mirror/$TRN' '$T/d1/$TRN'"
vsha=$(sha256sum "$T/mirror/$VAL" | cut -d' ' -f1)
vbytes=$(wc -c <"$T/mirror/$VAL" | tr -d ' ')
check "mirror: the lock file records the validation shard's sha256 and size" \
    grep -q "^c4-validation-00000${tab}$VAL${tab}$vsha${tab}$vbytes${tab}" "$T/lock"
check "mirror: and the train shard's" grep -q "^c4-train-00000${tab}$TRN${tab}$(sha256sum "$T/mirror/$TRN" | cut -d' ' -f1)${tab}" "$T/lock"
check "mirror: the output says the digest was recorded" grep -q "sha256 recorded in $T/lock" "$T/f.out"
cp "$T/lock" "$T/lock.first"
fetch "$T/d1" DATA_MIRROR="$T/mirror"
rc=$?
check "second run: exit 0, silent, lock unchanged" \
    sh -c "[ $rc -eq 0 ] && [ ! -s '$T/f.out' ] && [ ! -s '$T/f.err' ] && cmp -s '$T/lock' '$T/lock.first'"
# another machine's lock file: same name, other bytes
sed "s/$vsha/$(echo "$vsha" | tr '0-9a-f' '1-9a-f0')/" "$T/lock.first" >"$T/lock"
fetch "$T/d2" DATA_MIRROR="$T/mirror"
rc=$?
check "lock from another machine: non-zero exit" [ $rc -ne 0 ]
check "lock from another machine: sha256 mismatch against the lock file ($(head -c 300 "$T/f.err"))" \
    grep -q "sha256 mismatch for 'c4-validation-00000' ($VAL) from mirror .* (checked against $T/lock)" "$T/f.err"
check "lock from another machine: validation shard not installed" [ ! -e "$T/d2/$VAL" ]
fetch "$T/d1" DATA_MIRROR="$T/nomirror" DATA_OPTIONAL=0
rc=$?
check "a shard in place that differs from the lock fails DATA_OPTIONAL=0 ($(head -c 300 "$T/f.err"))" \
    sh -c "[ $rc -ne 0 ] && grep -q 'is not the file expected (checked against' '$T/f.err'"
check "and the shard in place is untouched" cmp -s "$T/mirror/$VAL" "$T/d1/$VAL"
cp "$T/lock.first" "$T/lock"

# ---- damaged shards in the mirror: refused with the file and the line -----------------------------
mkdir -p "$T/bad/text/c4"
head -c $((vbytes / 2)) "$T/mirror/$VAL" >"$T/bad/$VAL"
gzip -dc "$T/mirror/$TRN" | awk 'NR == 5 { print "{\"text\": 17}"; next } { print }' | gzip -n >"$T/bad/$TRN"
rm -f "$T/lock"
fetch "$T/d3" DATA_MIRROR="$T/bad"
rc=$?
check "damaged shards: non-zero exit" [ $rc -ne 0 ]
check "truncated shard: named, with the line ($(head -c 400 "$T/f.err"))" \
    grep -q "$VAL (from mirror $T/bad)': the gzip stream is truncated: it ends inside line [0-9]" "$T/f.err"
check "bad JSON line: named with its line number" grep -q "$TRN (from mirror $T/bad):5: expected a JSON object" "$T/f.err"
check "damaged shards: nothing installed, no .part" [ -z "$(find "$T/d3" -type f)" ]
check "damaged shards: no lock written" [ ! -e "$T/lock" ]

# ---- results name the shard they used ------------------------------------------------------------
cp "$M" "$T/d1/" 2>/dev/null
mkdir -p "$T/d1/text/c4"
cp "$QH_DATA/text/c4/c4_train_00000_first1000.jsonl" "$T/d1/text/c4/"
"$QH" eval --model "$M" --data "$T/d1" --dataset c4 --seqlen 64 --max-windows 2 --out "$T/r.h5" >"$T/e.out" 2>"$T/e.err"
rc=$?
check "eval on the validation shard: exit 0 ($(head -c 300 "$T/e.err"))" [ $rc -eq 0 ]
check "eval's note says the validation shard ($(grep '^c4' "$T/e.out"))" grep -q "^c4 .*C4 en validation shard 00000 (300 documents)" "$T/e.out"
h5dump -a /eval/c4/dataset_source -a /eval/c4/dataset_sha256 -a /eval/c4/dataset_origin -a /eval/c4/dataset_is_train_data \
    "$T/r.h5" >"$T/r.txt" 2>&1
check "result file: dataset_source is the shard" grep -q "\"$T/d1/$VAL\"" "$T/r.txt"
check "result file: dataset_sha256 is the shard's" grep -q "\"$vsha\"" "$T/r.txt"
check "result file: dataset_origin" grep -q "C4 en validation shard 00000" "$T/r.txt"
check "result file: not train data" sh -c "h5dump -a /eval/c4/dataset_is_train_data '$T/r.h5' | grep -q '(0): 0'"
"$QH" eval --model "$M" --data "$T/d1" --dataset c4 --seqlen 64 --max-windows 2 --json >"$T/e.json" 2>/dev/null
check "--json: dataset_source and sha256 of the shard" \
    sh -c "grep -q '\"dataset_source\":\"$T/d1/$VAL\"' '$T/e.json' && grep -q '\"dataset_sha256\":\"$vsha\"' '$T/e.json'"
rm "$T/d1/$VAL"
"$QH" eval --model "$M" --data "$T/d1" --dataset c4 --seqlen 64 --max-windows 2 >"$T/e.out" 2>&1
check "without the shard: the train slice, flagged ($(grep '^c4' "$T/e.out"))" \
    grep -q "^c4 .*train data: C4 en train shard 00000, first 1000 documents (the offline slice)" "$T/e.out"

# ---- report: one column, two sources -> every cell marked ----------------------------------------
# a sweep on the shards, then one point recomputed after they are gone (the same point id)
mkdir -p "$T/rd"
"$SH" --write "$T/rd" >/dev/null
cp "$QH_DATA/text/c4/c4_train_00000_first1000.jsonl" "$T/rd/text/c4/"
case "$M" in /*) MA=$M ;; *) MA=$(pwd)/$M ;; esac
printf '[model]\npath = %s\n[calibration]\ndataset = c4\nnsamples = 4\nseqlen = 64\n[methods]\nrun = rtn, gptq\nwbits = 4\n[eval]\ndatasets = c4\nseqlen = 64\nmax_windows = 2\n[run]\ndata = %s\n[output]\ndir = %s\n' \
    "$MA" "$T/rd" "$T/res" >"$T/x.ini"
"$QH" sweep "$T/x.ini" >"$T/sw.out" 2>&1
"$QH" report "$T/res" --quiet >/dev/null 2>&1
check "report, one source: no marker, the source listed ($(grep -c '\[a\]' "$T/res/table.md") markers)" \
    sh -c "! grep -q '\[a\]' '$T/res/table.md' && grep -q '^- c4: C4 en validation shard 00000 (300 documents), sha256 ${vsha%????????????????????????????????????????????????}' '$T/res/table.md'"
check "report: the calibration source listed" grep -q '^- calibration (gptq): C4 en train shard 00000 (400 documents)' "$T/res/table.md"
gid=$(grep '^| GPTQ' "$T/res/table.md" | sed 's/.*| \([0-9a-f]*\) |$/\1/')
check "the GPTQ point's file is there ($gid)" [ -f "$T/res/points/$gid.h5" ]
rm -f "$T/res/points/$gid.h5"
rm -f "$T/rd/$VAL" "$T/rd/$TRN"
"$QH" sweep "$T/x.ini" >"$T/sw.out" 2>&1
"$QH" report "$T/res" --quiet >/dev/null 2>&1
check "report, two sources: the GPTQ cell marked [b] ($(grep '^| GPTQ' "$T/res/table.md"))" grep -q '^| GPTQ .* \[b\] |' "$T/res/table.md"
check "report, two sources: the full-precision and RTN cells marked [a]" \
    sh -c "grep -q '^| full precision .* \[a\] |' '$T/res/table.md' && grep -q '^| RTN .* \[a\] |' '$T/res/table.md'"
check "report: [b] explained as the train slice" grep -q '^- c4 \[b\]: C4 en train shard 00000, first 1000 documents (the offline slice)' "$T/res/table.md"
check "report: the mix is said in words" grep -q 'c4 mixes 2 sources' "$T/res/table.md"
check "table.csv: a source column per dataset" grep -q ',seconds,source_c4,calib_source$' "$T/res/table.csv"

summary
