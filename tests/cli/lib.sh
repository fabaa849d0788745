# lib.sh: helpers shared by the shell tests in tests/cli/ (sourced, POSIX sh).
# Counting checks and the closing "N passed, N failed[, N skipped]" line, a
# per-test temporary folder, and `expect_fail`, which runs a command that must
# fail with a message on stderr and leave a given output path absent.
# Not here: any knowledge of what a particular subcommand does.

QH_BUILD=${QH_BUILD:-build}
QH=${QH:-$QH_BUILD/qharness}
QH_DATA=${QH_DATA:-data}
export QH_DATA
# No progress lines in captured stderr.
QH_VERBOSE=0
export QH_VERBOSE

npass=0
nfail=0
nskip=0

pass() { npass=$((npass + 1)); }
fail() {
    nfail=$((nfail + 1))
    echo "FAIL: $*" >&2
}
skip() {
    nskip=$((nskip + 1))
    echo "SKIP: $*" >&2
}
# check DESCRIPTION COMMAND...: one check, passed when COMMAND succeeds.
check() {
    _d=$1
    shift
    if "$@"; then pass; else fail "$_d"; fi
}
# check_same DESCRIPTION A B: A is not empty and equals B (as strings). (Not
# `check D [ -n "$A" ] && [ "$A" = "$B" ]`: the shell runs the second test
# outside check, and its result is lost.)
check_same() {
    if [ -n "$2" ] && [ "$2" = "$3" ]; then pass; else fail "$1 ('$2' vs '$3')"; fi
}

# Temporary folder removed on exit: $T
T=$(mktemp -d "${TMPDIR:-/tmp}/qh_cli_XXXXXX")
trap 'rm -rf "$T"' EXIT

# expect_fail NAME OUTPATH PATTERN COMMAND...: COMMAND must exit non-zero,
# print "error" and PATTERN (grep -E, case-insensitive) on stderr, and leave
# OUTPATH (and OUTPATH.tmp.*) absent. OUTPATH may be "-" for none.
expect_fail() {
    _n=$1
    _o=$2
    _p=$3
    shift 3
    "$@" >"$T/ef.out" 2>"$T/ef.err"
    _rc=$?
    if [ "$_rc" -eq 0 ]; then
        fail "$_n: exit status 0, expected failure"
    else
        pass
    fi
    if grep -qi "error" "$T/ef.err" && grep -Eqi -- "$_p" "$T/ef.err"; then
        pass
    else
        fail "$_n: stderr lacks /$_p/: $(head -c 300 "$T/ef.err")"
    fi
    if [ "$_o" != "-" ]; then
        if [ -e "$_o" ] || ls "$_o".tmp.* >/dev/null 2>&1; then
            fail "$_n: output $_o (or a temp file of it) was left behind"
        else
            pass
        fi
    fi
}

summary() {
    if [ "$nskip" -gt 0 ]; then
        echo "$npass passed, $nfail failed, $nskip skipped"
    else
        echo "$npass passed, $nfail failed"
    fi
    [ "$nfail" -eq 0 ]
}

# The built-in model and its tokenizer: $M, $TOK. require_stories260k stops the
# test (a failure when qharness is not built, a skip when the data is missing).
M=$QH_DATA/models/stories260K/stories260K.bin
TOK=$QH_DATA/models/stories260K/tok512.bin
require_stories260k() {
    if [ ! -x "$QH" ]; then
        fail "$QH not built"
        summary
        exit 1
    fi
    if [ ! -f "$M" ] || [ ! -f "$TOK" ]; then
        skip "stories260K / tok512 missing under $QH_DATA (run make data)"
        summary
        exit $?
    fi
}
