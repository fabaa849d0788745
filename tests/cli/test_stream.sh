#!/bin/sh
# test_stream.sh: block-by-block work from the command line on a procedural
# model (--model procedural:..., 291.6 MiB as fp32: 24 blocks of dim 512):
# - eval --max-memory 64 prints the memory plan before the table, gives the
#   perplexity of the same model evaluated in memory digit for digit, and the
#   process's peak resident memory (peak_rss_mb, from getrusage) grows over
#   its baseline (base_rss_mb, /proc/self/statm after opening) by less than
#   the 64 MB budget, a fifth of the model (measured: 17.8 MB, the plan 18.4);
# - a budget below one block is refused naming the block's 12.1 MB (MiB);
# - --max-device-memory is refused with --device cpu;
# - quantize --max-memory 96 (rtn) writes the --save file block by block and
#   evaluates it within the budget (a third of the model; measured 49.9 MB,
#   the plan 78.1); a budget below one block writes nothing;
# - eval --quantized F.h5 --max-memory decodes F.h5 one block at a time: on a
#   SpQR file of a small procedural model (6 blocks of 3.0 MB) the perplexity
#   equals the whole-model `eval --quantized` digit for digit, the plan is
#   printed, a budget below one block is refused naming its 3.0 MB; on the rtn
#   file above (--max-memory 64) it equals quantize's own evaluation, the plan
#   has a part for the block's decoding (quant_io_decode_bytes: one layer's
#   arrays as read, its fp32 copy, the HDF5 library's buffers) and the peak RSS
#   grows by no more than the plan's host total and at least that total less
#   12 MB (the margin of the plan's upper bounds; measured: 27.7 MB, the plan
#   32.5; 31.7 MB against a plan of 18.4 before the decoding was planned and
#   HDF5's metadata cache bounded).
. "$(dirname "$0")/lib.sh"
require_stories260k
json_num() { sed -n "s/.*\"$1\":\([-0-9.eE+]*\).*/\1/p" "$2"; }
# rss_within WHAT JSON MB: the run's peak RSS minus its baseline (base_rss_mb / peak_rss_mb of its --json)
# within MB; leaves B (baseline) and K (peak) set
rss_within() {
    B=$(json_num base_rss_mb "$2")
    K=$(json_num peak_rss_mb "$2")
    check "$1: peak RSS $K MB - baseline $B MB within $3 MB" awk -v b="$B" -v k="$K" -v m="$3" \
        'BEGIN { exit !(b > 0 && k - b <= m) }'
}
TOK=$QH_DATA/models/stories260K/tok512.bin
P="procedural:custom,dim=512,hidden=1376,layers=24,heads=8,vocab=512,seq_len=256,seed=4"
E="--tokenizer $TOK --dataset tinystories --seqlen 128 --max-windows 4 --json"

"$QH" eval --model "$P" $E >"$T/whole.json" 2>"$T/whole.err"
check "eval in memory ($(head -c 200 "$T/whole.err"))" [ $? -eq 0 ]
"$QH" eval --model "$P" $E --max-memory 64 >"$T/mm.json" 2>"$T/mm.err"
check "eval --max-memory 64 ($(head -c 200 "$T/mm.err"))" [ $? -eq 0 ]
check "the plan is printed" grep -q "^memory plan (evaluation, 4 windows of 128" "$T/mm.err"
check "the plan names the block weights" grep -q "block weights (one block)" "$T/mm.err"
P0=$(json_num ppl "$T/whole.json")
P1=$(json_num ppl "$T/mm.json")
check_same "ppl block by block $P1 = in memory $P0" "$P0" "$P1"
rss_within "eval --max-memory 64 (a 291.6 MB model)" "$T/mm.json" 64
W=$(json_num peak_rss_mb "$T/whole.json")
check "in memory the peak ($W MB) holds the model" awk -v w="$W" 'BEGIN { exit !(w > 300) }'

expect_fail "budget below one block" - "one block \\(12\\.1 MB" "$QH" eval --model "$P" $E --max-memory 8
expect_fail "max-device-memory on cpu" - "applies to --device cuda" \
    "$QH" eval --model "$P" $E --max-memory 64 --max-device-memory 1000 --device cpu

Q="--tokenizer $TOK --method rtn --calib none --eval tinystories --eval-seqlen 128 --max-windows 4 --json"
"$QH" quantize --model "$P" $Q --max-memory 96 --save "$T/q.h5" >"$T/q.json" 2>"$T/q.err"
check "quantize --max-memory 96 ($(head -c 200 "$T/q.err"))" [ $? -eq 0 ]
check "its plan is printed" grep -q "^memory plan (quantization" "$T/q.err"
check "the --save file is there" [ -s "$T/q.h5" ]
rss_within "quantize --max-memory 96" "$T/q.json" 96
expect_fail "quantize budget below one block" "$T/q2.h5" "one block \\(12\\.1 MB" \
    "$QH" quantize --model "$P" $Q --max-memory 8 --save "$T/q2.h5"

"$QH" eval --quantized "$T/q.h5" $E --max-memory 64 >"$T/qm.json" 2>"$T/qm.err"
check "eval --quantized (rtn) --max-memory 64 ($(head -c 200 "$T/qm.err"))" [ $? -eq 0 ]
P0=$(json_num ppl "$T/q.json")
P1=$(json_num ppl "$T/qm.json")
check_same "eval --quantized block by block $P1 = quantize --eval $P0" "$P0" "$P1"
rss_within "eval --quantized --max-memory 64" "$T/qm.json" 64
check "the plan has the block's decoding" grep -q "^  block decoding (one layer) " "$T/qm.err"
H=$(sed -n 's/^  total: host \([0-9.]*\) MB.*/\1/p' "$T/qm.err")
check "eval --quantized: peak RSS growth $K - $B MB within the plan's $H MB, by at most 12 MB" \
    awk -v b="$B" -v k="$K" -v h="$H" 'BEGIN { g = k - b; exit !(b > 0 && h > 0 && g <= h && g >= h - 12) }'

# SpQR on a small procedural model: whole-model and block-by-block evaluation of the saved file
PS="procedural:custom,dim=256,hidden=688,layers=6,heads=8,vocab=512,seq_len=256,seed=4"
"$QH" quantize --model "$PS" --tokenizer $TOK --method spqr --nsamples 4 --seqlen 64 --save "$T/s.h5" \
    >"$T/s.out" 2>"$T/s.err"
check "quantize spqr --save ($(head -c 200 "$T/s.err"))" [ $? -eq 0 ]
"$QH" eval --quantized "$T/s.h5" $E >"$T/sw.json" 2>"$T/sw.err"
check "eval --quantized (spqr) in memory ($(head -c 200 "$T/sw.err"))" [ $? -eq 0 ]
"$QH" eval --quantized "$T/s.h5" $E --max-memory 16 >"$T/sm.json" 2>"$T/sm.err"
check "eval --quantized (spqr) --max-memory 16 ($(head -c 200 "$T/sm.err"))" [ $? -eq 0 ]
check "its plan is printed" grep -q "^memory plan (evaluation, 4 windows of 128" "$T/sm.err"
check "the plan names one block of 3.0 MB" grep -q "one block 3\.0 MB" "$T/sm.err"
P0=$(json_num ppl "$T/sw.json")
P1=$(json_num ppl "$T/sm.json")
check_same "spqr ppl block by block $P1 = whole model $P0" "$P0" "$P1"
expect_fail "eval --quantized: budget below one block" - "one block \\(3\\.0 MB" \
    "$QH" eval --quantized "$T/s.h5" $E --max-memory 2
summary
