#!/bin/sh
# test_outputs.sh: the output paths of the commands that write files (quantize
# --save / --out, eval --out, export --out, tokenize --out, synth --out) are
# checked before any work (cli_io_check in harness/cli/cli_common.c):
# - an output that is the same file as an input is refused and the input is
#   left byte for byte as it was: the model (also through a hard link, a
#   symbolic link, a "dir/../" spelling, and the model a --quantized file
#   names), the tokenizer given or found beside the model, the --quantized
#   file, file:PATH datasets and calibration text, tokenize's --text;
# - an output inside a Hugging Face checkpoint folder (given as input or not)
#   under one of its files' names (config.json, *.safetensors, the index,
#   tokenizer*) is refused; so is a named dataset's file under --data;
# - a file output ending with '/' is refused before any work;
# - two outputs naming the same file are refused, and neither is written;
# - an output whose folder is missing, is a file, or is not writable (when not
#   running as root), or a file output that is an existing folder, is refused
#   naming the option, the path and the reason, with nothing on stdout (no
#   table, no quantization run);
# - controls: distinct outputs are written, and an output may replace an
#   earlier output of the same command (a rerun);
# - h5_create's own error names the final path and the system's reason.
# Not here: what the files hold (test_cli.sh, test_quantize_cli.sh, test_export.sh).
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
require_stories260k

STORY=$QH_DATA/text/tinystories/tinystories_sample.txt
E="--dataset tinystories --seqlen 128 --max-windows 1"
# a private copy of the model and its tokenizer, so that nothing shared is at risk
mkdir -p "$T/m"
cp "$M" "$T/m/m.bin"
cp "$TOK" "$T/m/tok512.bin"
cp "$STORY" "$T/story.txt"
MB=$T/m/m.bin
TB=$T/m/tok512.bin
cp "$MB" "$T/m.orig"
cp "$TB" "$T/tok.orig"
cp "$STORY" "$T/story.orig"

# refused NAME FILE ORIG PATTERN COMMAND...: COMMAND fails with PATTERN on
# stderr, prints nothing on stdout, and FILE still equals ORIG byte for byte.
refused() {
    _n=$1
    _f=$2
    _orig=$3
    _p=$4
    shift 4
    expect_fail "$_n" - "$_p" "$@"
    check "$_n: nothing on stdout ($(head -c 100 "$T/ef.out"))" [ ! -s "$T/ef.out" ]
    check "$_n: $_f unchanged" cmp -s "$_f" "$_orig"
    check "$_n: no temp file beside $_f" sh -c "! ls '$_f'.tmp.* >/dev/null 2>&1"
}

# ---- an output that is an input --------------------------------------------------------
refused "quantize --save = --model" "$MB" "$T/m.orig" "--save.*m\.bin.*same file as --model" \
    "$QH" quantize --model "$MB" --tokenizer "$TB" --method rtn --wbits 4 --calib none --save "$MB"
refused "quantize --out = --model (dir/../ spelling)" "$MB" "$T/m.orig" "--out.*same file as --model" \
    "$QH" quantize --model "$MB" --method rtn --calib none --out "$T/m/../m/m.bin"
refused "eval --out = --model" "$MB" "$T/m.orig" "--out.*same file as --model" \
    "$QH" eval --model "$MB" $E --out "$MB"
chmod 444 "$MB"
refused "eval --out = --model, read-only" "$MB" "$T/m.orig" "same file as --model" \
    "$QH" eval --model "$MB" $E --out "$MB"
chmod 644 "$MB"
ln "$MB" "$T/hard.bin"
refused "eval --out = a hard link of --model" "$MB" "$T/m.orig" "--out.*hard\.bin.*same file as --model" \
    "$QH" eval --model "$MB" $E --out "$T/hard.bin"
ln -s "$MB" "$T/soft.bin"
refused "eval --out = a symbolic link to --model" "$MB" "$T/m.orig" "soft\.bin.*same file as --model" \
    "$QH" eval --model "$MB" $E --out "$T/soft.bin"
refused "eval --out = --tokenizer" "$TB" "$T/tok.orig" "--out.*same file as --tokenizer" \
    "$QH" eval --model "$MB" --tokenizer "$TB" $E --out "$TB"
refused "eval --out = the tokenizer found beside the model" "$TB" "$T/tok.orig" "same file as the tokenizer" \
    "$QH" eval --model "$MB" $E --out "$TB"
refused "quantize --save = the tokenizer found beside the model" "$TB" "$T/tok.orig" "--save.*same file as the tokenizer" \
    "$QH" quantize --model "$MB" --method rtn --calib none --save "$TB"
refused "eval --out = a file: dataset" "$T/story.txt" "$T/story.orig" "--out.*same file as --dataset" \
    "$QH" eval --model "$MB" --dataset "tinystories,file:$T/story.txt" --seqlen 64 --max-windows 1 --out "$T/story.txt"
refused "quantize --out = the --calib file" "$T/story.txt" "$T/story.orig" "--out.*same file as --calib" \
    "$QH" quantize --model "$MB" --method gptq --nsamples 2 --seqlen 64 --calib "file:$T/story.txt" --out "$T/story.txt"
refused "quantize --save = an --eval file: dataset" "$T/story.txt" "$T/story.orig" "--save.*same file as --eval" \
    "$QH" quantize --model "$MB" --method rtn --calib none --eval "file:$T/story.txt" --save "$T/story.txt"
refused "tokenize --out = --text" "$T/story.txt" "$T/story.orig" "--out.*same file as --text" \
    "$QH" tokenize --tokenizer "$TB" --text "$T/story.txt" --out "$T/story.txt"
refused "tokenize --out = --tokenizer" "$TB" "$T/tok.orig" "--out.*same file as --tokenizer" \
    "$QH" tokenize --tokenizer "$TB" --text "$T/story.txt" --out "$TB"

# a quantized model: --out over it, and over the model it names (no --model given)
"$QH" quantize --model "$MB" --method rtn --calib none --save "$T/q.h5" >/dev/null 2>"$T/q.err"
rc=$?
check "control: quantize --save exit status ($(head -c 200 "$T/q.err"))" [ $rc -eq 0 ]
cp "$T/q.h5" "$T/q.orig"
refused "eval --out = --quantized" "$T/q.h5" "$T/q.orig" "--out.*same file as --quantized" \
    "$QH" eval --quantized "$T/q.h5" $E --out "$T/q.h5"
refused "eval --out = the model a --quantized file names" "$MB" "$T/m.orig" "--out.*same file as the model" \
    "$QH" eval --quantized "$T/q.h5" $E --out "$MB"
refused "quantize --save = --out" "$T/q.h5" "$T/q.orig" "--save.*q\.h5.*--out.*same file" \
    "$QH" quantize --model "$MB" --method rtn --calib none --save "$T/q.h5" --out "$T/./q.h5"
expect_fail "quantize --save = --out, neither written" "$T/two.h5" "--out.*same file" \
    "$QH" quantize --model "$MB" --method rtn --calib none --save "$T/two.h5" --out "$T/two.h5"

# export: an HF directory over itself
"$QH" export --model "$MB" --format hf --out "$T/hf" >/dev/null 2>&1
check "control: export exit status" [ -s "$T/hf/model.safetensors" ]
cp "$T/hf/model.safetensors" "$T/st.orig"
refused "export --out = --model (a directory)" "$T/hf/model.safetensors" "$T/st.orig" "--out.*hf.*same file as --model" \
    "$QH" export --model "$T/hf" --format hf --out "$T/hf"
# inside a Hugging Face checkpoint folder: its own files are refused, another name is fine
cp "$T/hf/config.json" "$T/cfg.orig"
refused "eval --out = the checkpoint's safetensors" "$T/hf/model.safetensors" "$T/st.orig" \
    "--out.*model\.safetensors.*would replace a file of a Hugging Face checkpoint folder" \
    "$QH" eval --model "$T/hf" $E --out "$T/hf/model.safetensors"
refused "quantize --save = the checkpoint's config.json" "$T/hf/config.json" "$T/cfg.orig" \
    "--save.*config\.json.*would replace a file of a Hugging Face checkpoint folder" \
    "$QH" quantize --model "$T/hf" --method rtn --calib none --save "$T/hf/config.json"
refused "eval --out = a new shard name in the checkpoint" "$T/hf/model.safetensors" "$T/st.orig" \
    "would replace a file of a Hugging Face checkpoint folder" \
    "$QH" eval --model "$T/hf" $E --out "$T/hf/model-00002-of-00002.safetensors"
check "no stray shard left in the checkpoint" [ ! -e "$T/hf/model-00002-of-00002.safetensors" ]
refused "tokenize --out = a checkpoint's config.json (the folder not an input)" "$T/hf/config.json" "$T/cfg.orig" \
    "would replace a file of a Hugging Face checkpoint folder" \
    "$QH" tokenize --tokenizer "$TB" --text "$T/story.txt" --out "$T/hf/config.json"
"$QH" eval --model "$T/hf" $E --out "$T/hf/eval.h5" >/dev/null 2>&1
check "control: eval --out beside the checkpoint's files is written" [ -s "$T/hf/eval.h5" ]
rm -f "$T/hf/eval.h5"

# a named dataset's file under the data root (here a private copy of it) is an input too
mkdir -p "$T/d/text/tinystories"
cp "$STORY" "$T/d/text/tinystories/tinystories_sample.txt"
refused "eval --out = the tinystories file under --data" "$T/d/text/tinystories/tinystories_sample.txt" "$T/story.orig" \
    "--out.*same file as --dataset" \
    "$QH" eval --model "$MB" --data "$T/d" $E --out "$T/d/text/tinystories/tinystories_sample.txt"

# ---- output folders ----------------------------------------------------------------------
expect_fail "eval --out ending with '/', before any work" "$T/ev.h5/" "--out '$T/ev\.h5/' ends with '/'" \
    "$QH" eval --model "$MB" $E --out "$T/ev.h5/"
check "trailing '/': nothing on stdout" [ ! -s "$T/ef.out" ]
expect_fail "quantize --out in a missing folder, before quantizing" "$T/nodir/o.h5" \
    "--out.*$T/nodir/o\.h5.*folder.*$T/nodir.*does not exist" \
    "$QH" quantize --model "$MB" --method gptq --wbits 3 --nsamples 8 --seqlen 64 --out "$T/nodir/o.h5"
check "missing folder: no per-layer table on stdout (nothing quantized)" [ ! -s "$T/ef.out" ]
expect_fail "quantize --save in a missing folder" "$T/nodir/q.h5" "--save.*nodir.*does not exist" \
    "$QH" quantize --model "$MB" --method rtn --calib none --save "$T/nodir/q.h5"
check "missing --save folder: nothing on stdout" [ ! -s "$T/ef.out" ]
expect_fail "eval --out in a missing folder" "$T/nodir/e.h5" "--out.*nodir/e\.h5.*does not exist" \
    "$QH" eval --model "$MB" $E --out "$T/nodir/e.h5"
check "eval, missing folder: no table on stdout" [ ! -s "$T/ef.out" ]
expect_fail "eval --out under a file" - "--out.*story\.txt/e\.h5.*not a folder" \
    "$QH" eval --model "$MB" $E --out "$T/story.txt/e.h5"
mkdir "$T/adir"
expect_fail "eval --out an existing folder" - "--out.*adir.*is a folder" "$QH" eval --model "$MB" $E --out "$T/adir"
check "the folder is still there" [ -d "$T/adir" ]
expect_fail "export --out in a missing folder" "$T/nodir/hf" "--out.*nodir/hf.*does not exist" \
    "$QH" export --model "$MB" --format hf --out "$T/nodir/hf"
expect_fail "tokenize --out in a missing folder" "$T/nodir/ids" "--out.*nodir/ids.*does not exist" \
    "$QH" tokenize --tokenizer "$TB" --text "$T/story.txt" --out "$T/nodir/ids"
expect_fail "synth --out in a missing folder" "$T/nodir/s.bin" "--out.*nodir/s\.bin.*does not exist" \
    "$QH" synth --out "$T/nodir/s.bin"
expect_fail "an empty --out" - "--out is empty" "$QH" eval --model "$MB" $E --out ""
if [ "$(id -u)" != 0 ]; then
    mkdir "$T/ro"
    chmod 555 "$T/ro"
    expect_fail "eval --out in a read-only folder" "$T/ro/e.h5" "--out.*ro/e\.h5.*not writable" \
        "$QH" eval --model "$MB" $E --out "$T/ro/e.h5"
    chmod 755 "$T/ro"
else
    skip "running as root: a read-only folder is writable"
fi

# h5_create's own message (a name the check passes whose temporary name is too
# long): the final path and the reason
LONG=$T/$(printf '%0245d' 0).h5
expect_fail "h5_create names the final path and the reason" "$LONG" "cannot create HDF5 file '$LONG'.*: File name too long" \
    "$QH" eval --model "$MB" $E --out "$LONG"

# ---- controls: what is allowed ---------------------------------------------------------------
"$QH" eval --model "$MB" $E --out "$T/r.h5" >/dev/null 2>"$T/r.err"
check "control: eval --out a new file ($(head -c 200 "$T/r.err"))" [ -s "$T/r.h5" ]
"$QH" eval --model "$MB" $E --out "$T/r.h5" >/dev/null 2>"$T/r.err"
rc=$?
check "control: a rerun replaces its own earlier output ($(head -c 200 "$T/r.err"))" [ $rc -eq 0 ]
"$QH" quantize --model "$MB" --method rtn --calib none --save "$T/s1.h5" --out "$T/s2.h5" >/dev/null 2>"$T/s.err"
check "control: distinct --save and --out both written ($(head -c 200 "$T/s.err"))" sh -c "[ -s '$T/s1.h5' ] && [ -s '$T/s2.h5' ]"
check "the model is intact after everything" cmp -s "$MB" "$T/m.orig"
summary
