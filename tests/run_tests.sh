#!/bin/sh
# run_tests.sh BUILD: run every test binary (BUILD/tests/test_*, BUILD/tests/gpu/test_*),
# every shell test (tests/cli/test_*.sh) and the source checks (tests/check_*.sh:
# the include graph), from the repository root. Each prints "N passed, N
# failed[, N skipped]" last; this script adds them up and ends with the same
# line for the whole suite. Exit status 1 if anything failed. Lines a test
# prints beginning with "show: " are repeated under its summary line (what the
# CI log must show of a test, e.g. the Slurm jobs of test_slurm.sh).
set -u
build=${1:-build}
export QH_BUILD="$build"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
tp=0; tf=0; ts=0; bad=""
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "$build"/tests/test_* "$build"/tests/gpu/test_* tests/cli/test_*.sh tests/check_*.sh; do
    [ -e "$t" ] || continue
    case "$t" in *.d|*.o) continue ;; esac
    start=$(date +%s)
    if [ "${t%.sh}" != "$t" ]; then sh "$t" >"$log" 2>&1; rc=$?; else "$t" >"$log" 2>&1; rc=$?; fi
    secs=$(( $(date +%s) - start ))
    line=$(grep -E '^[A-Za-z]*:? ?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    p=$(echo "$line" | sed -E -n 's/^[^0-9]*([0-9]+) passed.*/\1/p')
    f=$(echo "$line" | sed -E -n 's/.* ([0-9]+) failed.*/\1/p')
    s=$(echo "$line" | sed -E -n 's/.* ([0-9]+) skipped.*/\1/p')
    p=${p:-0}; f=${f:-0}; s=${s:-0}
    if [ "$rc" != 0 ] || [ -z "$line" ]; then
        [ "$f" = 0 ] && f=1
        bad="$bad $t"
        echo "---- $t (exit $rc) ----"
        tail -n 40 "$log"
    fi
    printf '%-44s %s  (%ss)\n' "$t" "${line:-no summary line}" "$secs"
    sed -n 's/^show: /    /p' "$log"
    tp=$((tp + p)); tf=$((tf + f)); ts=$((ts + s))
done
[ -n "$bad" ] && echo "failed:$bad"
if [ "$ts" -gt 0 ]; then echo "$tp passed, $tf failed, $ts skipped"; else echo "$tp passed, $tf failed"; fi
[ "$tf" = 0 ]
