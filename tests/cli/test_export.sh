#!/bin/sh
# test_export.sh: `qharness export --format hf` and Hugging Face directories as
# --model, end to end ($QH_BUILD/qharness), on stories260K + tok512 from $QH_DATA.
#
# - export (fp32) writes DIR with config.json, model.safetensors (8-byte length,
#   JSON header, 4 bytes per parameter) and tokenizer.bin, and no DIR.tmp.*;
#   config.json carries the model's shape (checked with jq when installed).
# - eval --model DIR gives the same ppl and ppl_stderr as the .bin, to the last
#   printed digit; generate --model DIR reproduces the llama2.c greedy fixture.
# - a sharded export (--max-shard-bytes) and a re-export of the exported
#   directory (byte-identical model.safetensors) evaluate the same.
# - bf16 and fp16 exports hold 2 bytes per parameter and evaluate within 0.5%
#   of the fp32 ppl: rounding to 8 (bf16) or 11 (fp16) significant bits moves
#   each weight by at most 2^-8 = 0.39% (bf16) of itself, unbiased; the mean NLL
#   moves by a small fraction of that (measured 0.06% on ppl for bf16; the
#   tighter, noise-calibrated bound is in tests/test_hf.c).
# - errors exit non-zero with a message and leave no output: existing output
#   folder (left untouched), unknown --format / --dtype, missing --out /
#   --format, negative --max-shard-bytes; eval refuses a directory without
#   config.json, rope_scaling set, Qwen2ForCausalLM without its biases, an unknown architecture,
#   a truncated model.safetensors, a missing shard, and a directory without a
#   tokenizer (unless --tokenizer is given).
# Not here: the safetensors / config validation in detail, the fuzz target
# (tests/test_hf.c).
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh


require_stories260k

json_num() { sed -n "s/.*\"$1\":\([-0-9.eE+]*\).*/\1/p" "$2"; }
# header length of a safetensors file: the first 8 bytes, little-endian
st_hlen() { od -An -tu8 -N8 "$1" | tr -d ' '; }
# stories260K: D 64, F 172, L 5, V 512, kv dim 32, tied head
PARAMS=$((512 * 64 + 5 * (2 * 64 + 2 * 64 * 64 + 2 * 32 * 64 + 3 * 172 * 64) + 64))

# ---- fp32 export ------------------------------------------------------------------------
H=$T/s260
"$QH" export --model "$M" --format hf --out "$H" >"$T/ex.out" 2>"$T/ex.err"
rc=$?
check "export exit status ($(head -c 200 "$T/ex.err"))" [ $rc -eq 0 ]
for f in config.json model.safetensors tokenizer.bin; do
    check "export wrote $f" [ -s "$H/$f" ]
done
check "tokenizer.bin is tok512.bin" cmp -s "$H/tokenizer.bin" "$TOK"
check "no temporary folder left" sh -c "! ls -d '$H'.tmp.* >/dev/null 2>&1"
HL=$(st_hlen "$H/model.safetensors")
check "header length $HL is a multiple of 8" [ $((HL % 8)) -eq 0 ]
check "model.safetensors is 8 + $HL + 4 * $PARAMS bytes" \
    [ "$(wc -c <"$H/model.safetensors")" -eq $((8 + HL + 4 * PARAMS)) ]
check "header starts with {\"__metadata__\"" sh -c "head -c 24 '$H/model.safetensors' | tail -c 16 | grep -q '{\"__metadata__'"
check "config.json names LlamaForCausalLM" grep -q '"LlamaForCausalLM"' "$H/config.json"
if command -v jq >/dev/null 2>&1; then
    check "config.json: shape and rotary settings" jq -e '.hidden_size == 64 and .intermediate_size == 172
        and .num_hidden_layers == 5 and .num_attention_heads == 8 and .num_key_value_heads == 4 and .head_dim == 8
        and .vocab_size == 512 and .max_position_embeddings == 512 and .tie_word_embeddings == true
        and .rope_theta == 10000 and .rms_norm_eps == 1e-5 and .rope_scaling == null and .torch_dtype == "float32"' \
        "$H/config.json" >/dev/null
else
    skip "jq not installed: config.json checked with grep only"
    check "config.json hidden_size 64" grep -q '"hidden_size": 64' "$H/config.json"
fi

# ---- same perplexity, same generation -----------------------------------------------------
"$QH" eval --model "$M" --dataset tinystories --seqlen 128 --json >"$T/bin.json" 2>"$T/bin.err"
rc=$?
check "eval .bin exit status" [ $rc -eq 0 ]
"$QH" eval --model "$H" --dataset tinystories --seqlen 128 --json >"$T/hf.json" 2>"$T/hf.err"
rc=$?
check "eval DIR exit status ($(head -c 200 "$T/hf.err"))" [ $rc -eq 0 ]
P0=$(json_num ppl "$T/bin.json")
P1=$(json_num ppl "$T/hf.json")
check_same "ppl of DIR $P1 = ppl of .bin $P0" "$P0" "$P1"
check "ppl_stderr identical" [ "$(json_num ppl_stderr "$T/bin.json")" = "$(json_num ppl_stderr "$T/hf.json")" ]
check "ntokens identical" [ "$(json_num ntokens "$T/bin.json")" = "$(json_num ntokens "$T/hf.json")" ]
# block by block from the directory (hf_model_open_streamed): the same perplexity
"$QH" eval --model "$H" --dataset tinystories --seqlen 128 --max-memory 16 --json >"$T/hfmm.json" 2>"$T/hfmm.err"
rc=$?
check "eval DIR --max-memory 16 exit status ($(head -c 200 "$T/hfmm.err"))" [ $rc -eq 0 ]
check "ppl of DIR block by block $(json_num ppl "$T/hfmm.json") = $P0" [ "$(json_num ppl "$T/hfmm.json")" = "$P0" ]
FIX=$QH_DATA/fixtures/stories260K_greedy200.txt
if [ -f "$FIX" ]; then
    "$QH" generate --model "$H" --steps 200 >"$T/gen.txt" 2>/dev/null
    { cat "$FIX"; printf '\n'; } >"$T/gen.expect"
    check "generate --model DIR reproduces the greedy fixture" cmp -s "$T/gen.txt" "$T/gen.expect"
else
    skip "no $FIX"
fi

# ---- sharded export, re-export ---------------------------------------------------------------
"$QH" export --model "$M" --format hf --out "$T/sh" --max-shard-bytes 300000 >/dev/null 2>"$T/sh.err"
rc=$?
check "sharded export exit status ($(head -c 200 "$T/sh.err"))" [ $rc -eq 0 ]
NSH=$(ls "$T/sh" | grep -c '^model-0.*\.safetensors$')
check "sharded export: $NSH shards (>= 4) and an index, no model.safetensors" \
    sh -c "[ $NSH -ge 4 ] && [ -s '$T/sh/model.safetensors.index.json' ] && [ ! -e '$T/sh/model.safetensors' ]"
"$QH" eval --model "$T/sh" --dataset tinystories --seqlen 128 --json >"$T/sh.json" 2>/dev/null
check "sharded: same ppl" [ "$(json_num ppl "$T/sh.json")" = "$P0" ]
"$QH" export --model "$H" --format hf --out "$T/again" >/dev/null 2>&1
check "re-export of DIR: model.safetensors byte-identical" cmp -s "$H/model.safetensors" "$T/again/model.safetensors"
check "re-export of DIR: config.json identical" cmp -s "$H/config.json" "$T/again/config.json"

# ---- bf16 / fp16 ----------------------------------------------------------------------------
for dt in bf16 fp16; do
    "$QH" export --model "$M" --format hf --out "$T/$dt" --dtype $dt >/dev/null 2>"$T/$dt.err"
    rc=$?
    check "$dt export exit status ($(head -c 200 "$T/$dt.err"))" [ $rc -eq 0 ]
    HL=$(st_hlen "$T/$dt/model.safetensors")
    check "$dt: 2 bytes per parameter" [ "$(wc -c <"$T/$dt/model.safetensors")" -eq $((8 + HL + 2 * PARAMS)) ]
    "$QH" eval --model "$T/$dt" --dataset tinystories --seqlen 128 --json >"$T/$dt.json" 2>/dev/null
    PD=$(json_num ppl "$T/$dt.json")
    check "$dt ppl $PD within 0.5% of $P0" awk -v a="$PD" -v b="$P0" \
        'BEGIN { d = (a - b) / b; if (d < 0) d = -d; exit !(a != "" && d <= 0.005) }'
    echo "tinystories ppl: fp32 $P0, $dt $PD"
done
check "bf16 config.json says bfloat16" grep -q '"torch_dtype": "bfloat16"' "$T/bf16/config.json"

# ---- errors ---------------------------------------------------------------------------------
mkdir "$T/exists"
expect_fail "existing output folder" - "already exists" "$QH" export --model "$M" --format hf --out "$T/exists"
check "existing folder untouched and empty" [ -z "$(ls -A "$T/exists")" ]
check "no temp folder beside it" sh -c "! ls -d '$T'/exists.tmp.* >/dev/null 2>&1"
expect_fail "unknown --format" "$T/o1" "format.*gguf" "$QH" export --model "$M" --format gguf --out "$T/o1"
expect_fail "unknown --dtype" "$T/o1" "dtype.*int8" "$QH" export --model "$M" --format hf --dtype int8 --out "$T/o1"
expect_fail "no --out" - "--out" "$QH" export --model "$M" --format hf
expect_fail "no --format" "$T/o1" "--format" "$QH" export --model "$M" --out "$T/o1"
expect_fail "negative --max-shard-bytes" "$T/o1" "max-shard-bytes" "$QH" export --model "$M" --format hf \
    --max-shard-bytes -1 --out "$T/o1"
expect_fail "missing model" "$T/o1" "/nonexistent" "$QH" export --model /nonexistent/m.bin --format hf --out "$T/o1"

# eval refusals on damaged copies of the export
mkdir "$T/noconf"
expect_fail "directory without config.json" - "without a config.json" "$QH" eval --model "$T/noconf"
bad_copy() { rm -rf "$T/bad" && cp -r "$H" "$T/bad"; }
bad_copy
sed 's/"rope_scaling": null/"rope_scaling": {"type": "linear", "factor": 2.0}/' "$H/config.json" >"$T/bad/config.json"
expect_fail "rope_scaling set" - "config.json.*rope_scaling.*linear" "$QH" eval --model "$T/bad" --dataset tinystories
bad_copy
sed 's/LlamaForCausalLM/Qwen2ForCausalLM/' "$H/config.json" >"$T/bad/config.json"
expect_fail "Qwen2ForCausalLM without biases" - "q_proj.bias. is missing" "$QH" eval --model "$T/bad" --dataset tinystories
bad_copy
sed 's/LlamaForCausalLM/FalconForCausalLM/' "$H/config.json" >"$T/bad/config.json"
expect_fail "unknown architecture" - "FalconForCausalLM.*not supported" "$QH" eval --model "$T/bad"
bad_copy
sed 's/"hidden_size": 64/"hidden_size": "64"/' "$H/config.json" >"$T/bad/config.json"
expect_fail "hidden_size a string" - "config.json.*hidden_size.*integer" "$QH" eval --model "$T/bad"
bad_copy
head -c 600000 "$H/model.safetensors" >"$T/bad/model.safetensors"
expect_fail "truncated model.safetensors" - "model.safetensors.*out of range" "$QH" eval --model "$T/bad"
bad_copy
head -c 100 "$H/model.safetensors" >"$T/bad/model.safetensors"
expect_fail "model.safetensors cut inside the header" - "model.safetensors.*header length.*exceeds" \
    "$QH" eval --model "$T/bad"
rm -rf "$T/bad" && cp -r "$T/sh" "$T/bad" && rm "$T/bad/model-00002-of-0000$NSH.safetensors"
expect_fail "missing shard" - "model-00002-of-0000$NSH.safetensors.*missing" "$QH" eval --model "$T/bad"
# no tokenizer inside: refused, unless --tokenizer is given
"$QH" export --model "$M" --format hf --out "$T/notok" --no-tokenizer >/dev/null 2>&1
check "--no-tokenizer: no tokenizer.bin" [ ! -e "$T/notok/tokenizer.bin" ]
expect_fail "eval of a directory without a tokenizer" - "no tokenizer found in" "$QH" eval --model "$T/notok" \
    --dataset tinystories
"$QH" eval --model "$T/notok" --tokenizer "$TOK" --dataset tinystories --seqlen 128 --json >"$T/nt.json" 2>/dev/null
check "with --tokenizer: same ppl" [ "$(json_num ppl "$T/nt.json")" = "$P0" ]
"$QH" export --help >"$T/help.out" 2>&1
rc=$?
check "export --help exits 0" [ $rc -eq 0 ]
check "export --help lists --dtype and --format" sh -c "grep -q -- '--dtype' '$T/help.out' && grep -q -- '--format' '$T/help.out'"
check "no stray temp folders" sh -c "! ls '$T' | grep -q 'tmp\.'"

summary
