# sweep_stream_lib.sh: what tests/cli/test_sweep_stream.sh (CPU) and
# tests/gpu/sweep_stream.sh (GPU) share, sourced after lib.sh (TOK, T set):
# the procedural model of 64 blocks of dim 256 (194.1 MB in fp32) and the
# experiment file both sweep (rtn and gptq at 3 bits, 2 x 32 c4 calibration,
# 2 x 64 tinystories evaluation).
SS_MODEL="procedural:custom,dim=256,hidden=688,layers=64,heads=4,vocab=512,seq_len=256,seed=4"

# ss_exp NAME OUTDIR SAVE DEVICE RUN-LINES: write $T/NAME.ini
ss_exp() {
    cat >"$T/$1.ini" <<EOF2
[model]
path = $SS_MODEL
tokenizer = $TOK
[calibration]
dataset = c4
nsamples = 2
seqlen = 32
[methods]
run = rtn, gptq
wbits = 3
[eval]
datasets = tinystories
seqlen = 64
max_windows = 2
[run]
device = $4
$5
[output]
dir = $2
save_models = $3
EOF2
}

# attr FILE /PATH: an HDF5 attribute's value, 17 digits
attr() { h5dump -m %.17g -a "$2" "$1" 2>/dev/null | sed -n 's/^ *(0): //p'; }
