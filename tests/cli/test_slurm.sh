#!/bin/sh
# test_slurm.sh: sweeps on Slurm (`sweep --slurm [--submit]`, `sweep --status`),
# first against stand-in Slurm commands, then against a real one-node cluster.
#
# Without a cluster (stand-in sinfo / sbatch / squeue / scancel in a folder put
# first in PATH; they record their calls):
# - The array script: --requeue, --open-mode=append, the log path, cpus = 0
#   fitted to this machine (at most 8), every [slurm] key on its #SBATCH line
#   (--gres=gpu:TYPE:N or --gpus=TYPE:N, qos, constraint, mem, each ';' item
#   of extra); the report script runs report and plot.
# - Refused before anything is submitted (no sbatch call, no submission
#   record), each naming FILE:LINE: slurm.KEY: a key Slurm does not know, a
#   time or memory Slurm cannot read, an extra item that is no option; sbatch
#   missing from PATH; against the stand-in cluster (2 CPUs, 4000 MB, no GPU in
#   the default partition, 1 h limit): cpus, gpus, gpu type, mem, constraint,
#   time, an unknown partition. --submit without --slurm.
# - A submission through the stand-ins: sbatch --test-only, then the array
#   (only the tasks without a result), then the report job with
#   --dependency=afterok:<array> --kill-on-invalid-dep=yes; the ids printed
#   and recorded in slurm/submissions.tsv.
# - Locks of other hosts: kept while their Slurm job runs (squeue), taken
#   over when squeue no longer knows the job, or when the job is this task's
#   own (a requeued task that landed on another node).
# - sweep --status of a half-finished local run: done, running (a live lock),
#   failed (a lock left by a run that is gone), missing.
# With a real cluster (tests/slurm/cluster.sh: slurm-wlm and munge installed
# when missing, as root; skipped with the reason where that is impossible,
# failed instead when QH_REQUIRE_SLURM=1, as in CI):
# - A stories260K sweep (full precision + RTN / GPTQ at 3 and 4 bits, small
#   windows) submitted with --submit: one task is stopped (SIGSTOP, so that it
#   cannot finish first) and cancelled (scancel) while it runs its point; the
#   others complete, the report job is never run, and --status says
#   4 done and 1 failed with the log's cancel line.
# - Resubmitted: only the cancelled task is submitted; it is stopped and
#   requeued once while it runs (scontrol requeue) and resumes (restart 1, the stale lock of
#   its first run taken over); the report job completes; the finished point
#   files are untouched (inode and mtime); table.md equals the one a local
#   sweep of the same settings gives, byte for byte; the plots exist.
# - Refused by the real cluster before submitting: gpus = 1 (no GPU), cpus
#   beyond the node, an extra option sbatch does not know.
# - The daemons are stopped by their pids at the end, also on failure.
# No check depends on timing: the waits end when what they wait for happens
# (bounded by QH_SLURM_WAIT seconds, 900 by default, only to catch a hang).
# Lines beginning with "show: " are repeated in make test's output (CI log).
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
require_stories260k
case "$M" in /*) ;; *) M="$(pwd)/$M" ;; esac
QHA=$(cd "$(dirname "$QH")" && pwd)/$(basename "$QH")
show() { echo "show: $*"; }

# exp FILE OUTDIR [SLURM_LINES [WINDOWS]]: a small experiment (RTN / GPTQ at 3
# and 4 bits; GPTQ calibrates on 128 windows of 256 tokens, so that its points
# take seconds: long enough to be caught running; WINDOWS evaluation windows
# of 256 tokens per dataset, default 16).
exp() {
    mkdir -p "$(dirname "$1")"
    cat >"$1" <<EOF
[experiment]
description = test_slurm.sh
[model]
path = $M
[calibration]
dataset = c4
nsamples = 128
seqlen = 256
[methods]
run = rtn, gptq
wbits = 3, 4
[eval]
datasets = tinystories, ptb
seqlen = 256
max_windows = ${4:-16}
[output]
dir = $2
[slurm]
$3
EOF
}

# ---- stand-in Slurm commands -------------------------------------------------------------
F=$T/fakebin
mkdir -p "$F"
cat >"$F/sinfo" <<'EOF'
#!/bin/sh
echo "sinfo $*" >>"$FAKE_LOG"
echo "n1|qh*|2|4000|(null)|avx2|infinite"
echo "n2|qh*|8|2000|(null)|(null)|infinite"
echo "g1|gpu|16|64000|gpu:a100:4(S:0-1)|a100,bigmem|2-00:00:00"
EOF
cat >"$F/sbatch" <<'EOF'
#!/bin/sh
echo "sbatch $*" >>"$FAKE_LOG"
case "$*" in *--test-only*) echo "sbatch: Job 1 to start at now" >&2; exit 0 ;; esac
n=$(grep -c '^sbatch --parsable' "$FAKE_LOG")
echo $((100 + n))
EOF
cat >"$F/squeue" <<'EOF'
#!/bin/sh
echo "squeue $*" >>"$FAKE_LOG"
case "${FAKE_SQUEUE:-}" in
running) echo "RUNNING" ;;
pending) echo "PENDING" ;;
gone) echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1 ;;
array) echo "101_2|RUNNING|None|n1|0:05" ;;
report) echo "102|PENDING|Dependency|(null)|0:00" ;;
esac
exit 0
EOF
printf '#!/bin/sh\necho "scancel $*" >>"$FAKE_LOG"\n' >"$F/scancel"
chmod +x "$F"/*
FAKE_LOG=$T/fake.log
export FAKE_LOG
: >"$FAKE_LOG"
fake() { PATH="$F:$PATH" "$@"; }

# ---- the scripts ------------------------------------------------------------------------------
exp "$T/w/w.ini" "$T/w/out" "cpus = 0
gpus = 2
gpu_type = a100
qos = high
constraint = bigmem
mem = 16G
extra = --mail-type=END,FAIL; --exclusive"
"$QH" sweep "$T/w/w.ini" --slurm >"$T/w.out" 2>"$T/w.err"
check "--slurm exit status ($(head -c 300 "$T/w.err"))" [ $? -eq 0 ]
S=$T/w/out/slurm/sweep.sbatch
fit=$(nproc)
[ "$fit" -gt 8 ] && fit=8
for l in "--array=0-4" "--requeue" "--open-mode=append" "--output=$T/w/out/slurm/%A_%a.log" "--cpus-per-task=$fit" \
    "--time=12:00:00" "--gres=gpu:a100:2" "--qos=high" "--constraint=bigmem" "--mem=16G" "--mail-type=END,FAIL" "--exclusive"; do
    check "script line #SBATCH $l" grep -qx -- "#SBATCH $l" "$S"
done
check "script is valid bash" bash -n "$S"
check "report script runs report and plot" sh -c "grep -q \"' report '$T/w/out'\" '$T/w/out/slurm/report.sbatch' &&
    grep -q \"' plot '$T/w/out'\" '$T/w/out/slurm/report.sbatch'"
sed -i 's/^gpus = 2$/gpus = 2\ngpu_option = gpus/' "$T/w/w.ini"
"$QH" sweep "$T/w/w.ini" --slurm >/dev/null 2>&1
check "gpu_option = gpus: #SBATCH --gpus=a100:2" grep -qx -- "#SBATCH --gpus=a100:2" "$S"

# ---- refused before anything is submitted ------------------------------------------------
# refused NAME SLURM_LINES PATTERN [ENV...]: --slurm --submit must fail with PATTERN, without a
# call to sbatch and without writing the results folder's submission record.
refused() {
    rm -rf "$T/b"
    exp "$T/b/b.ini" "$T/b/out" "$2"
    : >"$FAKE_LOG"
    _n=$1
    _p=$3
    shift 3
    expect_fail "$_n" "$T/b/out/slurm/submissions.tsv" "$_p" env PATH="$F:$PATH" "$@" "$QH" sweep "$T/b/b.ini" \
        --slurm --submit
    check "$_n: no sbatch call" [ -z "$(grep '^sbatch' "$FAKE_LOG")" ]
}
refused "unknown [slurm] key" "nodes = 2" 'b\.ini:19: slurm\.nodes: unknown key'
refused "Slurm time unreadable" "time = 12h" "b\\.ini:19: slurm\\.time: '12h' is not a Slurm time"
refused "memory unreadable" "mem = lots" "b\\.ini:19: slurm\\.mem: 'lots' is not a Slurm memory size"
refused "extra item not an option" "extra = --exclusive; mail-type=END" \
    "b\\.ini:19: slurm\\.extra: 'mail-type=END' is not an sbatch option"
refused "cpus beyond every node" "cpus = 64" \
    "b\\.ini:19: slurm\\.cpus = 64: no node of partition 'qh' has that many CPUs \\(the most is 8"
refused "gpus on a partition without GPUs" "gpus = 1" \
    "b\\.ini:19: slurm\\.gpus = 1: no node of partition 'qh' has a GPU .*lists none"
refused "more GPUs than a node has" "partition = gpu
gpus = 8" "b\\.ini:20: slurm\\.gpus = 8: no node of partition 'gpu' has 8 GPUs \\(the most is 4"
refused "GPU type absent" "partition = gpu
gpus = 1
gpu_type = v100" "slurm\\.gpus = 1: no node of partition 'gpu' has a GPU of type 'v100'"
refused "memory beyond every node" "mem = 8G" "slurm\\.mem = 8G: no node of partition 'qh' has that much memory \\(the most is 4000 MB"
refused "constraint no node has" "constraint = bigmem" "slurm\\.constraint = bigmem: no node of partition 'qh' has the feature"
refused "time beyond the partition's limit" "partition = gpu
time = 3-00:00:00" "b\\.ini:20: slurm\\.time = 3-00:00:00: partition 'gpu' allows at most 2-00:00:00"
refused "unknown partition" "partition = nosuch" \
    "b\\.ini:19: slurm\\.partition = nosuch: the cluster has no partition 'nosuch' \\(sinfo lists: qh,gpu\\)"
refused "each fits a node, not all one node" "cpus = 8
mem = 3000" "asks for cpus = 8, mem = 3000, gpus = 0 together: each fits some node of partition 'qh', but no single node"
exp "$T/b/b.ini" "$T/b/out" ""
expect_fail "sbatch missing from PATH" "$T/b/out/slurm/submissions.tsv" "sbatch is not in PATH" \
    env PATH="$T/nowhere" "$QHA" sweep "$T/b/b.ini" --slurm --submit
check "sbatch missing: nothing written" [ ! -e "$T/b/out/slurm/sweep.sbatch" ]
expect_fail "--submit without --slurm" - "--submit goes with --slurm" "$QH" sweep "$T/b/b.ini" --submit

# ids FILE.ini NAME: the point ids of an experiment in $T/NAME.ids, one a line, and its fp id in $T/NAME.fp
ids() {
    "$QH" sweep "$1" --dump >"$T/$2.dump" 2>&1
    sed -n 's/^; \([0-9a-f]\{12\}\)  .*/\1/p' "$T/$2.dump" >"$T/$2.ids"
    sed -n 's/.*full-precision evaluation \([0-9a-f]\{12\}\)$/\1/p' "$T/$2.dump" >"$T/$2.fp"
}

# ---- a submission through the stand-ins ---------------------------------------------------
exp "$T/f/f.ini" "$T/f/out" "cpus = 0" 2
ids "$T/f/f.ini" f
f1=$(sed -n 1p "$T/f.ids")
"$QH" sweep "$T/f/f.ini" --point "$f1" >"$T/f0.out" 2>&1
check "point 1 computed before the submission ($(tail -c 200 "$T/f0.out"))" [ -f "$T/f/out/points/$f1.h5" ]
: >"$FAKE_LOG"
fake "$QH" sweep "$T/f/f.ini" --slurm --submit >"$T/f.out" 2>"$T/f.err"
check "submit through the stand-ins ($(head -c 300 "$T/f.err"))" [ $? -eq 0 ]
check "cpus = 0 fitted to the partition's largest node (8)" grep -q "cpus = 0: 8 CPUs per task" "$T/f.out"
check "the script asks for 8 CPUs" grep -qx -- "#SBATCH --cpus-per-task=8" "$T/f/out/slurm/sweep.sbatch"
grep '^sbatch' "$FAKE_LOG" >"$T/f.calls"
check "sbatch --test-only first, with the missing tasks" \
    [ "$(sed -n 1p "$T/f.calls")" = "sbatch --test-only --array=0,2-4 $T/f/out/slurm/sweep.sbatch" ]
check "then the array" [ "$(sed -n 2p "$T/f.calls")" = "sbatch --parsable --array=0,2-4 $T/f/out/slurm/sweep.sbatch" ]
check "then the report job after it" [ "$(sed -n 3p "$T/f.calls")" = \
    "sbatch --parsable --dependency=afterok:101 --kill-on-invalid-dep=yes $T/f/out/slurm/report.sbatch" ]
check "three sbatch calls" [ "$(wc -l <"$T/f.calls")" -eq 3 ]
check "array job id printed" grep -q "^submitted array job 101: 4 tasks (--array=0,2-4; 1 of 5 done earlier" "$T/f.out"
check "report job id printed" grep -q "^submitted report job 102:" "$T/f.out"
check "submission recorded" grep -Eq "^101	102	[0-9T:Z-]+	0,2-4	$(cat "$T/f.fp") $(tr '\n' ' ' <"$T/f.ids" | sed 's/ $//')\$" \
    "$T/f/out/slurm/submissions.tsv"
: >"$FAKE_LOG"
FAKE_SQUEUE=array fake "$QH" sweep "$T/f/f.ini" --slurm --submit >"$T/f2.out" 2>"$T/f2.err"
check "refused while a task of an earlier submission is queued" [ $? -ne 0 ]
check "... naming the task and the scancel line" \
    grep -q "an earlier submission is still in the queue (101_2 RUNNING).*scancel 101)" "$T/f2.err"
check "... no sbatch call" [ -z "$(grep '^sbatch' "$FAKE_LOG")" ]
: >"$FAKE_LOG"
FAKE_SQUEUE=report fake "$QH" sweep "$T/f/f.ini" --slurm --submit >"$T/f3.out" 2>"$T/f3.err"
check "an earlier report job left waiting is cancelled ($(head -c 200 "$T/f3.err"))" \
    sh -c "[ \"\$(grep '^scancel' '$FAKE_LOG')\" = 'scancel 102' ] && grep -q 'cancelled report job 102' '$T/f3.out'"
check "... and the new submission made" [ "$(wc -l <"$T/f/out/slurm/submissions.tsv")" -eq 2 ]

# ---- locks of other hosts ------------------------------------------------------------------
exp "$T/l/l.ini" "$T/l/out" "" 2
ids "$T/l/l.ini" l
l1=$(sed -n 1p "$T/l.ids")
mkdir -p "$T/l/out/points"
L=$T/l/out/points/$l1.lock
P=$T/l/out/points/$l1.h5
# lockcase NAME LOCK_CONTENT TAKEN(0|1) ENV...: run the point with a lock of another host in place
lockcase() {
    rm -f "$P"
    printf '%s\n' "$2" >"$L"
    _n=$1
    _t=$3
    shift 3
    env PATH="$F:$PATH" "$@" "$QH" sweep "$T/l/l.ini" --point "$l1" >"$T/lk.out" 2>"$T/lk.err"
    if [ "$_t" = 1 ]; then
        check "$_n: lock taken over, point computed ($(head -c 200 "$T/lk.err"))" \
            sh -c "[ -f '$P' ] && grep -q \"removed the stale lock .*pid 1 on elsewhere\" '$T/lk.err'"
    else
        check "$_n: lock kept, nothing computed" \
            sh -c "[ ! -f '$P' ] && grep -q 'in progress elsewhere (pid 1 on elsewhere' '$T/lk.out'"
    fi
}
lockcase "another host's running Slurm job" "pid 1 host elsewhere start 1 slurm 999 999_1" 0 FAKE_SQUEUE=running
check "... its job named" grep -q "slurm job 999_1)" "$T/lk.out"
lockcase "another host's Slurm job no longer known" "pid 1 host elsewhere start 1 slurm 999 999_1" 1 FAKE_SQUEUE=gone
lockcase "another host's Slurm job requeued (pending)" "pid 1 host elsewhere start 1 slurm 999 999_1" 1 \
    FAKE_SQUEUE=pending
lockcase "this task's own job, an earlier run on another node" "pid 1 host elsewhere start 1 slurm 999 999_1" 1 \
    FAKE_SQUEUE=running SLURM_JOB_ID=999
lockcase "another host's run without Slurm" "pid 1 host elsewhere start 1" 0 FAKE_SQUEUE=gone
rm -f "$L"

# ---- sweep --status of a half-finished local run ---------------------------------------------
exp "$T/s/s.ini" "$T/s/out" "" 2
ids "$T/s/s.ini" s
s1=$(sed -n 1p "$T/s.ids")
s2=$(sed -n 2p "$T/s.ids")
s3=$(sed -n 3p "$T/s.ids")
s4=$(sed -n 4p "$T/s.ids")
"$QH" sweep "$T/s/s.ini" --point "$s1" >/dev/null 2>&1
host=$(uname -n)
printf 'pid %s host %s start 0\n' $$ "$host" >"$T/s/out/points/$s2.lock"
dead=$(sh -c 'echo $$')
printf 'pid %s host %s start 1\n' "$dead" "$host" >"$T/s/out/points/$s3.lock"
"$QH" sweep --status "$T/s/out" >"$T/st.out" 2>"$T/st.err"
check "--status exit status ($(head -c 200 "$T/st.err"))" [ $? -eq 0 ]
check "--status: done" grep -Eq "^  done +$s1 +rtn w3" "$T/st.out"
check "--status: running, with the live lock's holder" grep -Eq "^  running +$s2 .*pid $$ on $host" "$T/st.out"
check "--status: failed, the lock of a run that is gone" \
    grep -Eq "^  failed +$s3 .*its run stopped \(pid $dead on $host\) and left its lock" "$T/st.out"
check "--status: missing" grep -Eq "^  missing +$s4 " "$T/st.out"
check "--status: full precision missing" grep -Eq "^  missing +fp +full precision" "$T/st.out"
check "--status: the count" grep -qx "1 done, 1 running, 0 pending, 1 failed, 2 missing" "$T/st.out"
check "--status removed nothing" [ -f "$T/s/out/points/$s3.lock" ]
expect_fail "--status of a folder without sweep.json" - "sweep\.json' cannot be read" "$QH" sweep --status "$T/nowhere"
expect_fail "--status with an experiment file too" - "takes a results folder and no other option" \
    "$QH" sweep "$T/s/s.ini" --status "$T/s/out"
rm -f "$T/s/out/points/$s2.lock"

# ---- a real one-node cluster ------------------------------------------------------------------
C=$T/cluster
cluster_up=0
stop_cluster() {
    [ "$cluster_up" = 1 ] || return 0
    cluster_up=0
    tests/slurm/cluster.sh stop "$C" >"$T/stop.out" 2>&1
    sed 's/^/show: /' "$T/stop.out"
}
trap 'stop_cluster; rm -rf "$T"' EXIT
trap 'exit 130' INT TERM HUP
chmod 755 "$T" # munged wants the folders above its socket searchable
mkdir -p "$C"
cluster_up=1 # from here on, whatever started is stopped at exit
t0=$(date +%s)
tests/slurm/cluster.sh start "$C" >"$T/cl.out" 2>"$T/cl.err"
rc=$?
sed 's/^/show: /' "$T/cl.out"
if [ $rc -ne 0 ]; then
    why=$(tail -n 1 "$T/cl.err")
    sed 's/^/show: /' "$T/cl.err"
    if [ "${QH_REQUIRE_SLURM:-0}" = 1 ]; then
        fail "QH_REQUIRE_SLURM=1 but no Slurm cluster could be started: $why"
    else
        skip "the real-cluster part: $why"
        show "skipped the real-cluster part: $why"
    fi
    stop_cluster
    summary
    exit $?
fi
pass
export SLURM_CONF="$C/slurm.conf"
el() { echo "$(($(date +%s) - t0)) s"; }

# The waits below end as soon as what they wait for happens; their bounds only catch a hang, and are
# wide (WAIT seconds each, default 900) so that a loaded machine is slow but never fails them.
WAIT=${QH_SLURM_WAIT:-900}
# wait_for FILE PATTERN SECONDS: until FILE exists and holds PATTERN (grep)
wait_for() {
    _end=$(($(date +%s) + $3))
    until [ -f "$1" ] && grep -q -- "$2" "$1" 2>/dev/null; do
        [ "$(date +%s)" -ge $_end ] && return 1
        sleep 0.1
    done
}
# wait_queue JOBS SECONDS: until none of the comma-separated JOBS is queued; each change of their states is shown
wait_queue() {
    _end=$(($(date +%s) + $2))
    _last=x
    while :; do
        _q=$(squeue -h -r -j "$1" -o '%i:%T' 2>/dev/null | sort | tr '\n' ' ')
        [ "$_q" != "$_last" ] && show "  $(el): queue ${_q:-empty}"
        _last=$_q
        [ -z "$_q" ] && return 0
        [ "$(date +%s)" -ge $_end ] && return 1
        sleep 0.5
    done
}
# freeze LOCK: stop (SIGSTOP) the run that holds LOCK (the pid in it), so that it cannot finish its
# point while the test cancels or requeues its task; Slurm's kill (SIGCONT, SIGTERM, SIGKILL) still ends
# it. Fails when that process is gone already.
freeze() {
    FROZEN=$(sed -n 's/^pid \([0-9][0-9]*\) .*/\1/p' "$1")
    [ -n "$FROZEN" ] && kill -STOP "$FROZEN" 2>/dev/null
}
FROZEN=
# states JOB: "TASK STATE" per array task, from the controller's record (MinJobAge keeps it 10 minutes)
states() { scontrol -o show job "$1" | sed -n 's/.*ArrayTaskId=\([0-9]*\) .* JobState=\([A-Z_]*\) .*/\1 \2/p' | sort -n; }
jobstate() { scontrol -o show job "$1" | sed -n 's/.* JobState=\([A-Z_]*\) .*/\1/p'; }

# the reference: the same settings swept locally
exp "$T/local/tst.ini" "$T/local/out" "cpus = 1"
OMP_NUM_THREADS=1 "$QH" sweep "$T/local/tst.ini" >"$T/local.out" 2>&1 && "$QH" report "$T/local/out" >/dev/null 2>&1
check "local sweep and report ($(tail -c 200 "$T/local.out"))" [ -s "$T/local/out/table.md" ]
show "$(el): local sweep done: $(tail -n 1 "$T/local.out")"

exp "$T/sl/tst.ini" "$T/sl/out" "cpus = 1"
ids "$T/sl/tst.ini" sl
g3=$(sed -n 3p "$T/sl.ids") # gptq w3: array task 3
O=$T/sl/out
"$QH" sweep "$T/sl/tst.ini" --slurm --submit >"$T/sub1.out" 2>"$T/sub1.err"
check "submit ($(head -c 300 "$T/sub1.err"))" [ $? -eq 0 ]
sed "s/^/show: $(el): /" "$T/sub1.out"
A1=$(sed -n 's/^submitted array job \([0-9]*\): 5 tasks (--array=0-4;.*/\1/p' "$T/sub1.out")
R1=$(sed -n 's/^submitted report job \([0-9]*\):.*/\1/p' "$T/sub1.out")
check "array job of 5 tasks and report job submitted" sh -c "[ -n '$A1' ] && [ -n '$R1' ]"
if [ -n "$A1" ] && wait_for "$O/points/$g3.lock" "${A1}_3" "$WAIT"; then
    if ! freeze "$O/points/$g3.lock" || [ -f "$O/points/$g3.h5" ]; then
        [ -n "$FROZEN" ] && kill -CONT "$FROZEN" 2>/dev/null # a stopped run would hold its task until the wait's bound
        fail "task ${A1}_3 finished before it could be stopped and cancelled"
    else
        scancel "${A1}_3"
        check "scancel ${A1}_3" [ $? -eq 0 ]
        show "$(el): scancel ${A1}_3 while it runs point $g3 (its lock held, no result yet; its run stopped)"
    fi
else
    fail "task 3 of array '$A1' did not start within $WAIT s"
fi
wait_queue "${A1:-0}" "$WAIT"
check "array $A1 left the queue within $WAIT s" [ $? -eq 0 ]
states "$A1" >"$T/a1.states"
check "array $A1: tasks 0-2 and 4 COMPLETED, 3 CANCELLED ($(tr '\n' ',' <"$T/a1.states"))" \
    [ "$(tr '\n' ',' <"$T/a1.states")" = "0 COMPLETED,1 COMPLETED,2 COMPLETED,3 CANCELLED,4 COMPLETED," ]
show "$(el): array $A1: $(tr '\n' ',' <"$T/a1.states" | sed 's/,$//')"
check "report job $R1 never ran (its array failed): $(jobstate "$R1")" \
    sh -c "[ ! -e '$O/slurm/report_$R1.log' ] && [ ! -e '$O/table.md' ]"
show "$(el): report job $R1: $(jobstate "$R1") ($(scontrol -o show job "$R1" | sed -n 's/.* Reason=\([^ ]*\) .*/\1/p'))"
"$QH" sweep --status "$O" >"$T/st1.out" 2>&1
check "--status after the cancel: 4 done, 1 failed" grep -qx "4 done, 0 running, 0 pending, 1 failed, 0 missing" "$T/st1.out"
check "--status: the cancelled task failed, with its log's cancel line" \
    sh -c "grep -Eq '^  failed +$g3 .*slurm job ${A1}_3 ended without a result' '$T/st1.out' &&
    grep -q '| .*JOB .* CANCELLED AT' '$T/st1.out'"
show "$(el): qharness sweep --status (half finished):"
sed 's/^/show:   /' "$T/st1.out"
stat -c '%n %i %Y' "$O"/points/*.h5 "$O"/fp/*.h5 | sort >"$T/before"

# resubmit: only the cancelled task; requeue it once while it runs, as a preemption would
"$QH" sweep "$T/sl/tst.ini" --slurm --submit >"$T/sub2.out" 2>"$T/sub2.err"
check "resubmit ($(head -c 300 "$T/sub2.err"))" [ $? -eq 0 ]
sed "s/^/show: $(el): /" "$T/sub2.out"
A2=$(sed -n 's/^submitted array job \([0-9]*\): 1 task (--array=3; 4 of 5 done earlier.*/\1/p' "$T/sub2.out")
R2=$(sed -n 's/^submitted report job \([0-9]*\):.*/\1/p' "$T/sub2.out")
check "resubmitted: the cancelled task only" sh -c "[ -n '$A2' ] && [ -n '$R2' ]"
FROZEN=
if [ -n "$A2" ] && wait_for "$O/points/$g3.lock" "${A2}_3" "$WAIT" && freeze "$O/points/$g3.lock" &&
    [ ! -f "$O/points/$g3.h5" ]; then
    scontrol requeue "${A2}_3"
    check "scontrol requeue ${A2}_3" [ $? -eq 0 ]
    # once it is back in the queue (its first run ended), let it start now: a requeued job is held 2 minutes
    _end=$(($(date +%s) + WAIT))
    while [ "$(squeue -h -j "${A2}_3" -o %T 2>/dev/null)" != PENDING ] && [ "$(date +%s)" -lt $_end ]; do
        sleep 0.1
    done
    scontrol update JobId="${A2}_3" StartTime=now
    _rc=$?
    check "scontrol update StartTime=now of the requeued ${A2}_3 ($(squeue -h -j "${A2}_3" -o %T 2>/dev/null))" \
        [ $_rc -eq 0 ]
    show "$(el): scontrol requeue ${A2}_3 while it runs point $g3 (its run stopped)"
else
    [ -n "$FROZEN" ] && kill -CONT "$FROZEN" 2>/dev/null
    fail "task ${A2}_3 did not start within $WAIT s, or finished before it could be stopped and requeued"
fi
wait_queue "${A2:-0},${R2:-0}" "$WAIT"
check "array $A2 and report job $R2 left the queue within $WAIT s" [ $? -eq 0 ]
check "task ${A2}_3 COMPLETED after one restart" \
    sh -c "scontrol -o show job '$A2' | grep -q 'JobState=COMPLETED .*Restarts=1 '"
check "its log: the requeued run took over its first run's lock" \
    sh -c "grep -q 'restart 1) runs point $g3' '$O/slurm/${A2}_3.log' &&
    grep -q 'removed the stale lock .*slurm job ${A2}_3' '$O/slurm/${A2}_3.log'"
show "$(el): array $A2: $(states "$A2" | tr '\n' ',' | sed 's/,$//'), $(grep -c 'runs point' "$O/slurm/${A2}_3.log") runs in its log"
check "report job $R2 COMPLETED" [ "$(jobstate "$R2")" = COMPLETED ]
show "$(el): report job $R2: $(jobstate "$R2")"
stat -c '%n %i %Y' "$O"/points/*.h5 "$O"/fp/*.h5 | sort | grep -v "/$g3.h5 " >"$T/after"
check "the 4 results finished before (fp and 3 points) were not recomputed (inode and mtime)" cmp -s "$T/before" "$T/after"
cmp -s "$T/before" "$T/after" && show "$(el): the $(wc -l <"$T/after") result files (fp and 3 points) finished before the cancel kept their inode and mtime: not recomputed"
check "5 result files" [ "$(ls "$O"/points/*.h5 "$O"/fp/*.h5 | wc -l)" -eq 5 ]
check "table.md identical to the local sweep's" cmp "$T/local/out/table.md" "$O/table.md"
show "$(el): table.md from Slurm == table.md of the local sweep ($(wc -c <"$O/table.md") bytes, $(grep -c '^| [RG]' "$O/table.md") point rows)"
check "plots drawn by the report job" [ -n "$(ls "$O"/plots/*.png 2>/dev/null)" ]
"$QH" sweep --status "$O" >"$T/st2.out" 2>&1
check "--status at the end: all done" grep -qx "5 done, 0 running, 0 pending, 0 failed, 0 missing" "$T/st2.out"
check "no lock or temporary file left" [ -z "$(find "$O" -name '*.lock*' -o -name '*.tmp.*' -o -name '*.claim.*')" ]

# refused by the real cluster, before submitting
ncpu=$(sinfo -h -n qhnode -o %c)
exp "$T/x/tst.ini" "$T/x/out" "gpus = 1"
expect_fail "real cluster: gpus on a node without GPUs" "$T/x/out/slurm/submissions.tsv" \
    "slurm\\.gpus = 1: no node of partition 'qh' has a GPU" "$QH" sweep "$T/x/tst.ini" --slurm --submit
exp "$T/x/tst.ini" "$T/x/out" "cpus = $((ncpu + 1))"
expect_fail "real cluster: more CPUs than the node" "$T/x/out/slurm/submissions.tsv" \
    "slurm\\.cpus = $((ncpu + 1)): no node of partition 'qh' has that many CPUs \\(the most is $ncpu" \
    "$QH" sweep "$T/x/tst.ini" --slurm --submit
exp "$T/x/tst.ini" "$T/x/out" "cpus = 1
extra = --no-such-option"
expect_fail "real cluster: an option sbatch does not know" "$T/x/out/slurm/submissions.tsv" \
    "sbatch --test-only refused .*unrecognized option '--no-such-option'" "$QH" sweep "$T/x/tst.ini" --slurm --submit
check "nothing queued after the refusals" [ -z "$(squeue -h)" ]

pids="$(cat "$C/slurmctld.pid" "$C/slurmd.pid" "$C/munged.pid" 2>/dev/null | tr '\n' ' ')"
stop_cluster
check "the daemons ($pids) are stopped" sh -c "for p in $pids; do ! kill -0 \$p 2>/dev/null || exit 1; done"
summary
