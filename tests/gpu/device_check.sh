#!/bin/bash
# device_check.sh: the GPU check of the CUDA forward backend, to run from the
# repo root on a bare GPU machine (x86-64 Debian/Ubuntu-like, CUDA toolkit,
# driver and a C compiler present, none of qharness's -dev packages, no
# network). It
#   1. unpacks the Debian packages that tests/gpu/fetch_devlibs.sh put in
#      .devlibs/debs into a private root (dpkg -x; nothing outside it changes),
#   2. builds the GPU tests, the GPU bench and qharness against that root
#      (make variables PKG_CFLAGS / PKG_LIBS / BLAS_CFLAGS / BLAS_LIBS, rpath
#      into the root; CUDA code for this GPU's architecture only),
#   3. checks that every library the binaries load resolves (the root first),
#   4. runs the GPU tests (test_gpu_kernels, _forward, _families, _quant,
#      _zeroshot, _kld, _qmatvec, _decode, _stream, _pipeline, and
#      tests/gpu/sweep_stream.sh: a sweep under [run] max_memory on the GPU
#      against the unbudgeted one; stories260K from data/ or
#      .devlibs/data, the transformers checkpoints from tests/fixtures/families,
#      the zero-shot items from tests/fixtures/zeroshot), bench/bench_gpu_forward, one
#      LLaMA-7B-shaped block quantized with GPTQ and SpQR
#      (kernels/bench/gpu_block_quant.sh, QH_BLOCK_MATH modes),
#      bench/bench_gpu_quant, bench/bench_gpu_qmatvec (the quantized
#      matrix-vector kernel against cuBLAS fp16 GEMV and the copy bandwidth) and
#      the LLaMA-65B-shaped block-streamed evaluation and SpQR of
#      kernels/bench/stream_65b.sh (QH_STREAM65B=none leaves it out: with it the
#      whole script needs more than one 10-minute device call),
# writes the logs to $OUT (default .devlibs/out) and prints a short table last.
# Exit status 0 when everything passed; a test that reports skipped while
# nvidia-smi lists a GPU counts as failed (CUDA could not start).
# Environment: OUT (log folder), QH_DEVICE_WORK (where the root and the build
# go; default .devlibs/work), QH_CUDA_ARCHS (default: read from nvidia-smi),
# QH_SKIP_UNIT / QH_SKIP_PIPELINE / QH_SKIP_BENCH (leave those steps out),
# QH_STREAM65B=none (leave stream_65b.sh out),
# QH_GPU_BENCH_ARGS (extra bench options), QH_BLOCK_MATH (the 7B-block step's
# GEMM modes, or none), JOBS (make -j).
# A 15-minute lease, one call at most 10 minutes each: first
#   OUT=... QH_STREAM65B=none QH_BLOCK_MATH=none bash tests/gpu/device_check.sh
# (every test and the kernel / forward / quantization benches), then, on the
# same warm machine, kernels/bench/stream_65b.sh .devlibs/work/build alone
# (~6 min; the binaries carry their rpath into the unpacked root).
# Not here: fetching anything (fetch_devlibs.sh does that beforehand), the
# CPU test suite, or installing into the system.
set -u
cd "$(dirname "$0")/../.." || exit 1
REPO=$(pwd)
OUT=${OUT:-$REPO/.devlibs/out}
WORK=${QH_DEVICE_WORK:-$REPO/.devlibs/work}
mkdir -p "$OUT" "$WORK" || exit 1
OUT=$(cd "$OUT" && pwd)
WORK=$(cd "$WORK" && pwd)
R=$WORK/root
B=$WORK/build
MA=x86_64-linux-gnu
LOG=$OUT/device_check.log
: >"$LOG"
exec > >(tee -a "$LOG") 2>&1

STEPS=()
status=0
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }
# record NAME STATUS SECONDS DETAIL
record() {
    STEPS+=("$(printf '%-20s %-8s %8.1f  %s' "$1" "$2" "$3" "$4")")
    [ "$2" = ok ] || [ "$2" = skipped ] || status=1
}

echo "== device_check: $(date -u '+%Y-%m-%d %H:%M:%S UTC') in $REPO"
echo "-- machine"
uname -srm
(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")
ldd --version 2>&1 | head -1
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader 2>&1 || echo "nvidia-smi failed"
# a GPU the driver lists must be used: a test that skips then is a failure (e.g. a driver older than the toolkit)
GPU_LISTED=$(nvidia-smi -L 2>/dev/null | grep -m1 '^GPU ' || true)
NVCC=$(command -v nvcc || { [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda/bin/nvcc; })
[ -n "$NVCC" ] && "$NVCC" --version | tail -2
${CC:-cc} --version | head -1
nproc

# ---- 1. unpack ------------------------------------------------------------------
t0=$(now)
n=$(ls .devlibs/debs/*.deb 2>/dev/null | wc -l)
if [ "$n" -eq 0 ]; then
    echo "device_check: no .deb in .devlibs/debs: run tests/gpu/fetch_devlibs.sh where there is network, and carry .devlibs"
    record unpack failed 0 "no debs"
else
    rm -rf "$R"
    mkdir -p "$R"
    ok=1
    for deb in .devlibs/debs/*.deb; do
        if command -v dpkg >/dev/null; then
            dpkg -x "$deb" "$R" || ok=0
        else # ar + tar, the same thing by hand
            d=$(ar t "$deb" | grep '^data\.tar') && ar p "$deb" "$d" | tar -x -C "$R" -f - || ok=0
        fi
    done
    # absolute symlinks (libz.so -> /lib/...) must point into the root
    find "$R" -type l | while read -r l; do
        t=$(readlink "$l")
        case "$t" in /*) ln -sfn "$R$t" "$l" ;; esac
    done
    dt=$(since "$t0")
    [ $ok = 1 ] && record unpack ok "$dt" "$n packages into $R" || record unpack failed "$dt" "dpkg -x failed"
fi

export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} # as tests/run_tests.sh: the CPU backend beside the GPU

LIBDIRS="$R/usr/lib/$MA $R/lib/$MA $R/usr/lib/$MA/hdf5/serial $R/usr/lib/$MA/openblas-openmp"
RUN_LD_PATH=$(echo $LIBDIRS | tr ' ' ':')

# ---- 2. build -------------------------------------------------------------------
if [ -z "${QH_CUDA_ARCHS:-}" ]; then
    QH_CUDA_ARCHS=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
    [ -n "$QH_CUDA_ARCHS" ] || QH_CUDA_ARCHS="80 90"
fi
L=""
for d in $LIBDIRS; do L="$L -L$d -Wl,-rpath,$d -Wl,-rpath-link,$d"; done
PKG_CFLAGS="-I$R/usr/include/hdf5/serial -I$R/usr/include"
PKG_LIBS="$L -lhdf5 -lgsl -lm -ljansson -linih"
BLAS_CFLAGS="-I$R/usr/include/$MA/openblas-openmp"
BLAS_LIBS="-L$R/usr/lib/$MA/openblas-openmp -lopenblas"
TARGETS="$B/tests/gpu/test_gpu_kernels $B/tests/gpu/test_gpu_forward $B/tests/gpu/test_gpu_families $B/tests/gpu/test_gpu_quant \
$B/tests/gpu/test_gpu_zeroshot $B/tests/gpu/test_gpu_kld $B/tests/gpu/test_gpu_qmatvec $B/tests/gpu/test_gpu_decode \
$B/tests/gpu/test_gpu_pipeline $B/tests/gpu/test_gpu_stream $B/bench/bench_gpu_forward $B/bench/bench_gpu_quant \
$B/bench/bench_gpu_qmatvec $B/qharness"
MAKE_BIN=$(command -v make)
[ -n "$MAKE_BIN" ] && [ -x "$MAKE_BIN" ] || MAKE_BIN=$R/usr/bin/make # the machine has no make: ours
echo "-- build (CUDA archs $QH_CUDA_ARCHS) into $B with $MAKE_BIN"
t0=$(now)
"$MAKE_BIN" -j"${JOBS:-$(nproc)}" BUILD="$B" CUDA_ARCHS="$QH_CUDA_ARCHS" ${NVCC:+NVCC="$NVCC"} \
    PKG_CFLAGS="$PKG_CFLAGS" PKG_LIBS="$PKG_LIBS" BLAS_CFLAGS="$BLAS_CFLAGS" BLAS_LIBS="$BLAS_LIBS" \
    $TARGETS >"$OUT/build.log" 2>&1
rc=$?
dt=$(since "$t0")
grep -E "warning|error|qharness:" "$OUT/build.log" | head -40
if [ $rc = 0 ]; then record build ok "$dt" "make $(echo $TARGETS | wc -w) targets"; else
    tail -30 "$OUT/build.log"
    record build failed "$dt" "make exit $rc (build.log)"
fi

# ---- 3. libraries -----------------------------------------------------------------
if [ $rc = 0 ]; then
    # qharness links every library (the tests, with --as-needed, fewer)
    t0=$(now)
    LDD=$(for b in $TARGETS; do LD_LIBRARY_PATH=$RUN_LD_PATH ldd "$b"; done 2>&1 | sort -u)
    bad=$(echo "$LDD" | grep -E "not found|not a dynamic" || true)
    outside=$(echo "$LDD" | grep -E "libhdf5|libgsl|libjansson|libinih|libopenblas|libsz|libaec|libcurl|libgfortran" |
        grep -v "$R" || true)
    echo "$LDD" | grep "=>" | sed 's/^/   /'
    dt=$(since "$t0")
    if [ -n "$bad" ]; then record libraries failed "$dt" "not found: $(echo $bad | cut -c1-80)"
    elif [ -n "$outside" ]; then record libraries failed "$dt" "resolved outside the root: $(echo $outside | cut -c1-80)"
    else record libraries ok "$dt" "all resolve; packaged ones from the root"; fi
fi

# ---- 4. tests and bench -----------------------------------------------------------------
# run NAME TIMEOUT PATTERN CMD...: output to $OUT/NAME.log, its last line
# matching PATTERN as the detail
run() {
    local name=$1 limit=$2 pat=$3
    shift 3
    echo "-- $name: $*"
    local t0=$(now)
    LD_LIBRARY_PATH=$RUN_LD_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    local dt=$(since "$t0")
    cat "$OUT/$name.log"
    local last=$(grep -E "$pat" "$OUT/$name.log" | tail -1 | tr -s ' ' | cut -c1-90)
    if [ $rc = 0 ] && echo "$last" | grep -q "skipped" && [ -n "$GPU_LISTED" ]; then
        record "$name" failed "$dt" "skipped although nvidia-smi lists a GPU: $last" # CUDA could not start
    elif [ $rc = 0 ] && echo "$last" | grep -q "skipped"; then record "$name" skipped "$dt" "$last"
    elif [ $rc = 0 ]; then record "$name" ok "$dt" "$last"
    elif [ $rc = 124 ]; then record "$name" timeout "$dt" "killed after $limit s"
    else record "$name" failed "$dt" "exit $rc; ${last:-see $name.log}"; fi
}
if [ -x "$B/tests/gpu/test_gpu_kernels" ]; then
    if [ -f data/models/stories260K/stories260K.bin ]; then DATA=data; else DATA=.devlibs/data; fi
    if [ -z "${QH_SKIP_UNIT:-}" ]; then
        run test_gpu_kernels 60 "passed|skipped" "$B/tests/gpu/test_gpu_kernels"
        QH_DATA=$DATA run test_gpu_forward 90 "passed|skipped" "$B/tests/gpu/test_gpu_forward"
        run test_gpu_families 120 "passed|skipped" "$B/tests/gpu/test_gpu_families"
        QH_DATA=$DATA run test_gpu_quant 120 "passed|skipped" "$B/tests/gpu/test_gpu_quant"
        QH_DATA=$DATA run test_gpu_zeroshot 60 "passed|skipped" "$B/tests/gpu/test_gpu_zeroshot"
        QH_DATA=$DATA run test_gpu_kld 60 "passed|skipped" "$B/tests/gpu/test_gpu_kld"
        QH_DATA=$DATA run test_gpu_qmatvec 120 "passed|skipped" "$B/tests/gpu/test_gpu_qmatvec"
        QH_DATA=$DATA run test_gpu_decode 120 "passed|skipped" "$B/tests/gpu/test_gpu_decode"
        QH_DATA=$DATA run test_gpu_stream 120 "passed|skipped" "$B/tests/gpu/test_gpu_stream"
    fi
    [ -z "${QH_SKIP_PIPELINE:-}" ] &&
        QH_DATA=$DATA run test_gpu_pipeline 200 "passed|skipped" "$B/tests/gpu/test_gpu_pipeline"
    # issue 16: a sweep under [run] max_memory / max_device_memory on the GPU equals the unbudgeted one
    [ -z "${QH_SKIP_PIPELINE:-}" ] &&
        QH_DATA=$DATA run sweep_stream 240 "passed|skipped" sh tests/gpu/sweep_stream.sh "$B"
    if [ -z "${QH_SKIP_BENCH:-}" ]; then
        run bench_gpu_forward 200 "^tf32|skipped" "$B/bench/bench_gpu_forward" ${QH_GPU_BENCH_ARGS:-}
        BENCH=$(grep -A4 "^mode " "$OUT/bench_gpu_forward.log" 2>/dev/null)
    fi
    # one LLaMA-7B-shaped block quantized with GPTQ and SpQR, x 32 blocks = the
    # 7B estimate (kernels/bench/gpu_block_quant.sh; QH_BLOCK_MATH = its forward
    # GEMM modes, default fp16 tf32; none leaves the step out)
    if [ "${QH_BLOCK_MATH:-}" != none ]; then
        QH_DATA=$DATA run block7b 400 "^gptq|^spqr|skipped|failed" sh kernels/bench/gpu_block_quant.sh "$B"
        BLOCK=$(grep -E "^method|^gptq|^spqr" "$OUT/block7b.log" 2>/dev/null)
    fi
    # issue 16: block-streamed evaluation and SpQR of a LLaMA-65B-shaped procedural model
    # (kernels/bench/stream_65b.sh, ~6 min; QH_STREAM65B=none leaves it out)
    if [ "${QH_STREAM65B:-}" != none ]; then
        QH_DATA=$DATA run stream65b 480 "^stream_65b|skipped" sh kernels/bench/stream_65b.sh "$B"
        STREAM=$(grep -E "^eval 65B|^spqr 65B|^7B ppl|exit [0-9]+, wall" "$OUT/stream65b.log" 2>/dev/null)
    fi
    [ -z "${QH_SKIP_BENCH:-}" ] &&
        QH_DATA=$DATA run bench_gpu_quant 120 "^11008|^4096|skipped|passed" "$B/bench/bench_gpu_quant" --quick
    [ -z "${QH_SKIP_BENCH:-}" ] &&
        run bench_gpu_qmatvec 240 "^[0-9]+x[0-9]+ |skipped" "$B/bench/bench_gpu_qmatvec"
fi

# ---- summary ---------------------------------------------------------------------------
{
    echo
    GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
    echo "== device_check summary (${GPU:-no GPU visible})"
    printf '%-20s %-8s %8s  %s\n' step status seconds detail
    for s in "${STEPS[@]}"; do echo "$s"; done
    [ -n "${BENCH:-}" ] && echo && echo "$BENCH"
    [ -n "${BLOCK:-}" ] && echo && echo "$BLOCK"
    [ -n "${STREAM:-}" ] && echo && echo "$STREAM"
    echo "logs: $OUT"
    [ $status = 0 ] && echo "RESULT: ok" || echo "RESULT: FAILED"
} | tee "$OUT/summary.txt"
exit $status
