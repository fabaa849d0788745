#!/bin/sh
# check_layers.sh: the include graph of the sources against the layer order.
#
#   tests/check_layers.sh            the self-test, then this repository
#   tests/check_layers.sh ROOT       the tree at ROOT only
#   tests/check_layers.sh --self-test
#   tests/check_layers.sh --order    the library's folders, bottom first (the
#                                    Makefile builds its per-folder include
#                                    paths from this list)
#
# The layers, bottom first; a file may include headers of its own folder and
# of the layers below it, nothing else:
#   base        base/: errors, allocation, files, 16-bit floats, sha256; knows
#               nothing of models, text or quantization
#   quant       quant/: the quantizers (grid, Hessian, RTN / GPTQ / SpQR,
#               packing); needs base/ only, so it sits below all of harness/
#   text        harness/text/: tokenizers and datasets; knows no model file
#   model       harness/model/: model files; opening a model finds its
#               tokenizer (model_open.c -> tokenizer_find), hence above text
#   forward     harness/forward/: the forward pass over a Model
#   kernels     kernels/: the CUDA backend of forward.h and the CUDA quantizer
#               (forward/ and quant/'s public headers); calib/ picks the CUDA
#               quantizer (quant_cuda.h), hence below calib
#   eval        harness/eval/: perplexity over the forward pass and datasets
#   calib       harness/calib/: calibrating and quantizing a whole model
#   store       harness/store/: the HDF5 files; they record evaluations
#               (perplexity.h) and calibration reports (calibrate.h), so store
#               sits above eval and calib (these write nothing themselves)
#   experiment  harness/experiment/: experiment files, sweeps, tables
#   cli         harness/cli/: the command line (main.c, cmd_*.c, cli.h)
#   bench       bench/ and kernels/bench/: benchmark programs, at the top
#               beside cli: they may use every layer but not the command line
# Tests (tests/) are not checked: they may include anything, private headers
# of the folder they test included.
#
# A header whose first line says "private to FOLDER/" may be included only
# from FOLDER. Each `#include "X"` line resolves as the flat include path
# does: X beside the including file, else the one file of the tree named X
# (a name found twice, or nowhere, fails). Fails on every edge that goes up
# or sideways, printing it as
#   file -> header (layer A above layer B)     or (private to FOLDER/)
# and ends, as every test, with "N passed, N failed" (one check per include
# line, plus one per self-test case). POSIX sh and awk only.
set -u

# folder layer rank; the first row whose folder is a prefix of a path wins,
# so kernels/bench comes before kernels
LAYER_TABLE='kernels/bench bench 10
bench bench 10
base base 0
quant quant 1
harness/text text 2
harness/model model 3
harness/forward forward 4
kernels kernels 5
harness/eval eval 6
harness/calib calib 7
harness/store store 8
harness/experiment experiment 9
harness/cli cli 10'
SCANNED="base quant harness kernels bench"

# check_tree ROOT: print offending edges and "N passed, N failed"; exit 1 on any.
check_tree() {
    (
        cd "$1" || exit 2
        files=$(find $SCANNED -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) \
            2>/dev/null | LC_ALL=C sort)
        {
            echo "$LAYER_TABLE" | sed 's/^/L /'
            for f in $files; do echo "F $f"; done
            # a first line saying "private to quant/" -> P file quant
            [ -n "$files" ] && awk 'FNR == 1 && match($0, /private to [A-Za-z0-9_.\/-]*\//) {
                print "P", FILENAME, substr($0, RSTART + 11, RLENGTH - 12) }' $files
            # #include "X" -> I file X
            [ -n "$files" ] && grep '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' $files /dev/null |
                sed 's/^\([^:]*\):[^"]*"\([^"]*\)".*/I \1 \2/'
        } | awk '
        $1 == "L" { nl++; lf[nl] = $2; ln[nl] = $3; lr[nl] = $4; next }
        $1 == "F" { isfile[$2] = 1; n = split($2, p, "/"); byname[p[n]] = byname[p[n]] " " $2; next }
        $1 == "P" { priv[$2] = $3; next }
        $1 == "I" { nin++; ifile[nin] = $2; itarget[nin] = $3; next }
        function layer(path,   i) { # index in the table, 0 when none
            for (i = 1; i <= nl; i++) if (index(path, lf[i] "/") == 1) return i
            return 0
        }
        function dir(path) { sub(/\/[^\/]*$/, "", path); return path }
        function resolve(file, x,   here, n, c, p, base, i, k) {
            here = dir(file) "/" x
            if (here in isfile) return here
            n = split(x, p, "/"); base = p[n]
            c = split(byname[base], p, " "); k = 0
            for (i = 1; i <= c; i++)
                if (p[i] == x || substr(p[i], length(p[i]) - length(x)) == "/" x) { k++; hit = p[i] }
            if (k == 1) return hit
            return k == 0 ? "?none" : "?many" byname[base]
        }
        function bad(msg) { print msg; nbad++ }
        END {
            for (i = 1; i <= nin; i++) {
                f = ifile[i]; h = resolve(f, itarget[i])
                a = layer(f)
                if (a == 0) { bad(f " -> " itarget[i] " (" dir(f) " is in no layer: add it to tests/check_layers.sh)"); continue }
                if (h == "?none") { bad(f " -> " itarget[i] " (no such file in the tree)"); continue }
                if (substr(h, 1, 5) == "?many") { bad(f " -> " itarget[i] " (ambiguous:" substr(h, 6) ")"); continue }
                b = layer(h)
                if (b == 0) { bad(f " -> " h " (" dir(h) " is in no layer: add it to tests/check_layers.sh)"); continue }
                if ((h in priv) && index(f, priv[h] "/") != 1) { bad(f " -> " h " (private to " priv[h] "/)"); continue }
                if (lr[b] > lr[a]) { bad(f " -> " h " (layer " ln[b] " above layer " ln[a] ")"); continue }
                if (lr[b] == lr[a] && ln[b] != ln[a]) { bad(f " -> " h " (layer " ln[b] " beside layer " ln[a] ")"); continue }
                ok++
            }
            printf "%d passed, %d failed\n", ok, nbad
            exit nbad > 0
        }'
    )
}

# ---- self-test: synthetic trees that must pass, and fail with the expected line ----
st_pass=0
st_fail=0
# put ROOT FILE INCLUDE...: FILE under ROOT including each INCLUDE.
put() {
    _r=$1 _f=$2
    shift 2
    mkdir -p "$_r/$(dirname "$_f")"
    : >"$_r/$_f"
    for _i in "$@"; do echo "#include \"$_i\"" >>"$_r/$_f"; done
}
good_tree() {
    put "$1" base/util.h
    put "$1" quant/quant.h util.h
    echo '/* quant_internal.h: private to quant/ (the marker: on the first line) */' >"$1/quant/quant_internal.h"
    echo '#include "quant.h"' >>"$1/quant/quant_internal.h"
    put "$1" quant/engine.c quant_internal.h util.h
    put "$1" harness/text/tokenizer.h util.h
    put "$1" harness/model/model_open.h tokenizer.h
    put "$1" harness/forward/forward.h model_open.h quant.h
    put "$1" kernels/quant_cuda.h quant.h
    put "$1" kernels/quant_cuda.cu quant_cuda.h forward.h
    put "$1" harness/calib/calibrate.c quant_cuda.h
    put "$1" harness/cli/cli.h forward.h
    put "$1" harness/cli/main.c cli.h
    put "$1" bench/bench.c forward.h quant_cuda.h
    put "$1" kernels/bench/bench_gpu.c quant_cuda.h
}
# case NAME STATUS EXPECTED_LINE FILE INCLUDE...: a good tree plus FILE; the
# check must exit STATUS and print EXPECTED_LINE (or, for 0, "0 failed").
st_case() {
    _n=$1 _s=$2 _e=$3
    shift 3
    _t=$(mktemp -d "${TMPDIR:-/tmp}/qh_layers_XXXXXX")
    good_tree "$_t"
    [ $# -gt 0 ] && put "$_t" "$@"
    _out=$(check_tree "$_t")
    _rc=$?
    rm -rf "$_t"
    if [ "$_rc" = "$_s" ] && printf '%s\n' "$_out" | grep -qxF -- "$_e"; then
        st_pass=$((st_pass + 1))
    else
        st_fail=$((st_fail + 1))
        echo "FAIL: self-test '$_n': exit $_rc (expected $_s), output:" >&2
        printf '%s\n' "$_out" | sed 's/^/    /' >&2
        echo "    expected the line: $_e" >&2
    fi
}
self_test() {
    st_case "the good tree passes" 0 "17 passed, 0 failed"
    st_case "store includes cli.h" 1 "harness/store/quant_io.c -> harness/cli/cli.h (layer cli above layer store)" \
        harness/store/quant_io.c cli.h
    st_case "quant includes a harness header" 1 "quant/pack.c -> harness/text/tokenizer.h (layer text above layer quant)" \
        quant/pack.c util.h tokenizer.h
    st_case "a .cu includes a private header" 1 "kernels/quant_kernels.cu -> quant/quant_internal.h (private to quant/)" \
        kernels/quant_kernels.cu quant_internal.h
    st_case "kernels include cli.h" 1 "kernels/forward_cuda.cu -> harness/cli/cli.h (layer cli above layer kernels)" \
        kernels/forward_cuda.cu cli.h
    st_case "forward includes kernels" 1 "harness/forward/forward_cpu.c -> kernels/quant_cuda.h (layer kernels above layer forward)" \
        harness/forward/forward_cpu.c quant_cuda.h
    st_case "a benchmark includes cli.h" 1 "bench/bench_x.c -> harness/cli/cli.h (layer cli beside layer bench)" \
        bench/bench_x.c cli.h
    st_case "one failure among good edges" 1 "20 passed, 1 failed" \
        harness/eval/eval_run.c model_open.h forward.h util.h cli.h
    st_case "an unknown include" 1 "harness/eval/x.c -> nowhere.h (no such file in the tree)" harness/eval/x.c nowhere.h
    st_case "a folder in no layer" 1 "harness/newdir/x.c -> util.h (harness/newdir is in no layer: add it to tests/check_layers.sh)" \
        harness/newdir/x.c util.h
    st_case "a header name found twice" 1 "quant/engine.c -> util.h (ambiguous: base/util.h harness/eval/sub/util.h)" \
        harness/eval/sub/util.h
}

case "${1:-}" in
--order)
    echo "$LAYER_TABLE" | awk '$1 !~ /bench/ { printf "%s%s", sep, $1; sep = " " } END { print "" }'
    exit 0
    ;;
--self-test)
    self_test
    echo "$st_pass passed, $st_fail failed"
    [ "$st_fail" = 0 ]
    exit
    ;;
"")
    self_test
    root=$(cd "$(dirname "$0")/.." && pwd)
    ;;
*)
    root=$1
    ;;
esac
out=$(check_tree "$root")
rc=$?
printf '%s\n' "$out" | sed '$d'
last=$(printf '%s\n' "$out" | tail -n 1)
p=$(echo "$last" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
f=$(echo "$last" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
[ "$rc" != 0 ] && [ "${f:-0}" = 0 ] && f=1
echo "$((st_pass + ${p:-0})) passed, $((st_fail + ${f:-0})) failed"
[ "$rc" = 0 ] && [ "$st_fail" = 0 ]
