#!/bin/sh
# test_tokenize_hf.sh: Hugging Face tokenizer.json files through the command
# line ($QH_BUILD/qharness), with the Llama-3.2 and Qwen3 files of $QH_DATA:
# - tokenize --jsonl --bos on data/fixtures/bpe_cases.jsonl prints, line by
#   line, exactly the ids the fixture holds for each tokenizer;
# - tokenize --bos of the SPEC wikitext2 string of the validation rows (rows =
#   lines, a blank line "", joined with "\n\n"; built here with awk) writes
#   int32 ids (--dtype auto) equal to data/fixtures/wikitext2_valid_*_ids.i32;
#   --dtype uint16 is refused for them;
# - a Hugging Face checkpoint folder made here (synth + export --format hf
#   --tokenizer tokenizer.json, a 16-wide model with 151,669 embedding rows,
#   ~5 MB, in the temp folder) is evaluated without --tokenizer: the
#   tokenizer.json in it is used (ntokens = tokenize's count of the SPEC
#   wikitext2 test string, no BOS for Qwen), and the JSON and HDF5 results
#   name that file with its sha256; generate runs on it;
# - a model whose embedding table has fewer rows than the tokenizer has ids is
#   refused (export, eval with --tokenizer, eval of a folder holding it), the
#   message naming the file and the JSON path of the id that does not fit.
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

L3=$QH_DATA/tokenizers/llama3/tokenizer.json
Q3=$QH_DATA/tokenizers/qwen3/tokenizer.json
CASES=$QH_DATA/fixtures/bpe_cases.jsonl
if [ ! -x "$QH" ]; then
    fail "$QH not built"
    summary
    exit 1
fi
if [ ! -f "$L3" ] || [ ! -f "$Q3" ] || [ ! -f "$CASES" ]; then
    skip "tokenizers/{llama3,qwen3}/tokenizer.json or fixtures/bpe_cases.jsonl missing under $QH_DATA (make data)"
    summary
    exit $?
fi

# ---- every bpe_cases.jsonl string through `tokenize` ------------------------------------
for name in llama3 qwen3; do
    tok=$QH_DATA/tokenizers/$name/tokenizer.json
    "$QH" tokenize --tokenizer "$tok" --text "$CASES" --jsonl --bos >"$T/$name.ids" 2>"$T/$name.err"
    rc=$?
    check "$name: tokenize --jsonl exit status ($(head -c 200 "$T/$name.err"))" [ $rc -eq 0 ]
    sed -E "s/.*\"$name\": \[([^]]*)\].*/\1/; s/,//g" "$CASES" >"$T/$name.want"
    check "$name: 26 cases" [ "$(wc -l <"$T/$name.want")" -eq 26 ]
    if cmp -s "$T/$name.ids" "$T/$name.want"; then
        pass
    else
        fail "$name: tokenize --jsonl differs from bpe_cases.jsonl: $(diff "$T/$name.ids" "$T/$name.want" | head -c 400)"
    fi
done

# ---- the SPEC wikitext2 string of the validation rows -------------------------------------
join_wikitext2() { # rows = lines with their newline, a whitespace-only line "", joined with "\n\n"
    awk 'BEGIN { ORS = "" } { if (NR > 1) print "\n\n"; if ($0 ~ /[^ \t\r\f\v]/) print $0 "\n" }' "$1"
}
VALID=$QH_DATA/text/wikitext-2-raw/wiki.valid.raw
if [ -f "$VALID" ]; then
    join_wikitext2 "$VALID" >"$T/valid.txt"
    for name in llama3 qwen3; do
        "$QH" tokenize --tokenizer "$QH_DATA/tokenizers/$name/tokenizer.json" --text "$T/valid.txt" --bos \
            --out "$T/valid_$name.i32" 2>"$T/v.err"
        rc=$?
        check "$name: tokenize the validation string ($(head -c 200 "$T/v.err"))" [ $rc -eq 0 ]
        check "$name: int32 chosen by --dtype auto" grep -q "(int32)" "$T/v.err"
        check "$name: ids equal fixtures/wikitext2_valid_${name}_ids.i32" \
            cmp -s "$T/valid_$name.i32" "$QH_DATA/fixtures/wikitext2_valid_${name}_ids.i32"
    done
    expect_fail "uint16 ids for a 151669-id tokenizer" "$T/u16.bin" "does not fit uint16" "$QH" tokenize \
        --tokenizer "$Q3" --text "$T/valid.txt" --dtype uint16 --out "$T/u16.bin"
else
    skip "wiki.valid.raw missing (make data)"
fi

# ---- a Hugging Face checkpoint folder holding tokenizer.json ------------------------------
V=151669 # the Qwen3 file's ids: 151,643 + 26 added
"$QH" synth --dim 16 --hidden 32 --layers 1 --heads 2 --kv-heads 1 --vocab $V --seq-len 64 --seed 5 \
    --out "$T/small.bin" 2>"$T/s.err"
check "synth a 16-wide model with $V rows ($(head -c 200 "$T/s.err"))" [ $? -eq 0 ]
"$QH" export --model "$T/small.bin" --format hf --dtype bf16 --tokenizer "$Q3" --out "$T/hf" 2>"$T/e.err"
check "export --format hf with the tokenizer.json ($(head -c 200 "$T/e.err"))" [ $? -eq 0 ]
check "the folder holds tokenizer.json, a copy of the file" cmp -s "$T/hf/tokenizer.json" "$Q3"
check "the folder holds no other tokenizer" [ ! -e "$T/hf/tokenizer.bin" ]
"$QH" eval --model "$T/hf" --dataset wikitext2 --seqlen 64 --max-windows 2 --json --out "$T/hf.h5" >"$T/hf.json" \
    2>"$T/hf.err"
check "eval of the folder without --tokenizer ($(head -c 300 "$T/hf.err"))" [ $? -eq 0 ]
SHA=$(sha256sum "$Q3" | cut -d' ' -f1)
check "the JSON result names the folder's tokenizer.json ($(head -c 300 "$T/hf.json"))" \
    grep -q "\"tokenizer\":\"$T/hf/tokenizer.json\"" "$T/hf.json"
check "the JSON result gives its sha256" grep -q "\"tokenizer_sha256\":\"$SHA\"" "$T/hf.json"
if command -v h5dump >/dev/null 2>&1; then
    h5dump -a /eval/wikitext2/tokenizer_sha256 "$T/hf.h5" >"$T/h5sha.txt" 2>&1
    check "the HDF5 result records tokenizer_sha256" grep -q "$SHA" "$T/h5sha.txt"
    h5dump -a /eval/wikitext2/tokenizer_path "$T/hf.h5" >"$T/h5path.txt" 2>&1
    check "the HDF5 result records tokenizer_path" grep -q "hf/tokenizer.json" "$T/h5path.txt"
else
    skip "h5dump not installed"
fi
TEST=$QH_DATA/text/wikitext-2-raw/wiki.test.raw
if [ -f "$TEST" ]; then
    join_wikitext2 "$TEST" >"$T/test.txt"
    "$QH" tokenize --tokenizer "$Q3" --text "$T/test.txt" --bos --out "$T/test.i32" 2>/dev/null
    N=$(( $(wc -c <"$T/test.i32") / 4 ))
    check "eval ntokens = tokenize --bos count of the test string ($N)" \
        [ "$(sed -n 's/.*"ntokens":\([0-9]*\).*/\1/p' "$T/hf.json")" = "$N" ]
fi
"$QH" generate --model "$T/hf" --steps 8 >"$T/gen.txt" 2>"$T/gen.err"
check "generate on the folder ($(head -c 200 "$T/gen.err"))" [ $? -eq 0 ]

# ---- an embedding table smaller than the tokenizer --------------------------------------------
"$QH" synth --dim 16 --hidden 32 --layers 1 --heads 2 --kv-heads 1 --vocab 151643 --seq-len 64 \
    --out "$T/short.bin" 2>/dev/null
expect_fail "export with a tokenizer.json the embedding cannot hold" "$T/hf_short" \
    "tokenizer.json.*added_tokens\[25\]\.id.*151668.*151643 rows" \
    "$QH" export --model "$T/short.bin" --format hf --tokenizer "$Q3" --out "$T/hf_short"
expect_fail "eval with --tokenizer the embedding cannot hold" "$T/x.h5" "added_tokens\[25\]\.id" \
    "$QH" eval --model "$T/short.bin" --tokenizer "$Q3" --dataset wikitext2 --out "$T/x.h5"
"$QH" export --model "$T/short.bin" --format hf --no-tokenizer --out "$T/hf_short2" 2>/dev/null
cp "$Q3" "$T/hf_short2/tokenizer.json"
expect_fail "eval of a folder whose tokenizer.json the embedding cannot hold" "$T/x.h5" \
    "hf_short2/tokenizer.json.*added_tokens\[25\]\.id" \
    "$QH" eval --model "$T/hf_short2" --dataset wikitext2 --out "$T/x.h5"
expect_fail "tokenize --vocab-size below the ids" - "added_tokens\[25\]\.id" \
    "$QH" tokenize --tokenizer "$Q3" --vocab-size 151000 --text "$CASES"
echo '{"version": "1.0", "model": {"type": "Unigram"}}' >"$T/bad.json"
expect_fail "an unknown model type" - "bad.json: model.type" "$QH" tokenize --tokenizer "$T/bad.json" --text "$CASES"
head -c 5000 "$Q3" >"$T/trunc.json"
expect_fail "a truncated tokenizer.json" - "trunc.json:[0-9]+:[0-9]+: not valid JSON" \
    "$QH" tokenize --tokenizer "$T/trunc.json" --text "$CASES"

summary
