#!/bin/sh
# cluster.sh: a private one-node Slurm cluster on this machine, for tests.
#
#   tests/slurm/cluster.sh start DIR   install Debian's slurm-wlm and munge when
#                                      missing (apt-get, as root, bounded in time),
#                                      then start munged, slurmctld and slurmd with
#                                      every file under DIR (DIR/slurm.conf: export
#                                      SLURM_CONF=DIR/slurm.conf for sbatch & co.)
#   tests/slurm/cluster.sh stop DIR    cancel the cluster's jobs, then stop its three
#                                      daemons by the process ids in their pid files
#
# The cluster: SlurmctldHost=localhost, one node "qhnode" with NodeAddr=127.0.0.1
# (all traffic on the loopback), declared with what `slurmd -C` finds on this
# machine (its real CPUs and memory), one partition "qh"; SlurmUser=root,
# ProctrackType=proctrack/linuxproc, TaskPlugin=task/none, no accounting, and
# CgroupPlugin=cgroup/v1 in cgroup.conf (no cgroup plugin is loaded with these
# settings; nothing needs systemd). munged runs on its own key and socket
# (AuthInfo=socket=...), the daemons on two free TCP ports, so a Slurm or munge
# already running on the machine is left alone, and several test runs at once
# each get their own cluster.
#
# start exits 0 when the node is idle and takes jobs; 77 (the reason on stderr)
# when the cluster cannot be had here: not root, the packages cannot be
# installed, or the daemons do not come up (their logs' last lines are shown).
set -u
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

say() { echo "cluster.sh: $*"; }
unavailable() {
    echo "cluster.sh: $*" >&2
    exit 77
}

# pid_of NAME: the pid in DIR/NAME.pid, if that process still exists.
pid_of() {
    [ -f "$dir/$1.pid" ] || return 1
    _p=$(cat "$dir/$1.pid" 2>/dev/null)
    [ -n "$_p" ] && kill -0 "$_p" 2>/dev/null && echo "$_p"
}

# stop_daemon NAME: TERM, wait up to 10 s, then KILL.
stop_daemon() {
    _p=$(pid_of "$1") || return 0
    kill "$_p" 2>/dev/null
    _i=0
    while kill -0 "$_p" 2>/dev/null && [ $_i -lt 50 ]; do
        sleep 0.2
        _i=$((_i + 1))
    done
    if kill -0 "$_p" 2>/dev/null; then
        kill -9 "$_p" 2>/dev/null
        say "stopped $1 (pid $_p) with KILL"
    else
        say "stopped $1 (pid $_p)"
    fi
}

if [ "$cmd" = stop ]; then
    if [ -f "$dir/slurm.conf" ] && pid_of slurmctld >/dev/null; then
        export SLURM_CONF="$dir/slurm.conf"
        scancel --full --quiet --user="$(id -un)" 2>/dev/null
        _i=0 # the jobs' processes end with their steps (bounded wait)
        while [ -n "$(squeue -h -o %i 2>/dev/null)" ] && [ $_i -lt 50 ]; do
            sleep 0.2
            _i=$((_i + 1))
        done
    fi
    stop_daemon slurmd
    stop_daemon slurmctld
    stop_daemon munged
    exit 0
fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

# ---- the packages ----------------------------------------------------------------------
[ "$(id -u)" = 0 ] || unavailable "not root: the Slurm daemons cannot be installed or started (run make test as root, as CI does)"
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 ||
    ! command -v sbatch >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || unavailable "slurm-wlm / munge are not installed and there is no apt-get"
    say "installing slurm-wlm and munge (apt-get, at most 15 minutes)"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq || unavailable "apt-get update failed or took over 5 minutes"
    timeout 600 apt-get install -y -qq -o DPkg::Lock::Timeout=240 --no-install-recommends slurm-wlm munge >"$dir/apt.log" 2>&1 ||
        { tail -n 5 "$dir/apt.log" >&2; unavailable "apt-get install slurm-wlm munge failed or took over 10 minutes"; }
    say "installed: $(dpkg-query -W -f='${Package} ${Version}, ' slurmctld slurmd munge 2>/dev/null)"
fi

# ---- munge: a key and a socket of our own ------------------------------------------------
mkdir -p "$dir/state" "$dir/spool" || unavailable "cannot create $dir"
chmod 755 "$dir" # munged wants every folder above its socket searchable by all
dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 2>/dev/null && chmod 600 "$dir/munge.key"
munged --key-file="$dir/munge.key" --socket="$dir/munge.socket" --pid-file="$dir/munged.pid" \
    --log-file="$dir/munged.log" --seed-file="$dir/munged.seed" 2>"$dir/munged.err" ||
    { cat "$dir/munged.err" >&2; unavailable "munged did not start"; }
say "munged started (pid $(cat "$dir/munged.pid"), socket $dir/munge.socket)"

# ---- slurm.conf ------------------------------------------------------------------------------
port_free() { # PORT: not bound on this machine (/proc/net/tcp*, hex)
    _h=$(printf ':%04X ' "$1")
    ! cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -q "$_h"
}
ctld_port=""
_p=$((20000 + ($$ % 2000) * 2))
for _try in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    if port_free $_p && port_free $((_p + 1)); then ctld_port=$_p; break; fi
    _p=$((_p + 2))
done
[ -n "$ctld_port" ] || unavailable "no two free TCP ports found near $_p"
node=$(slurmd -C 2>/dev/null | head -n 1 | sed 's/^NodeName=[^ ]*//')
case "$node" in *CPUs=*) ;; *) unavailable "slurmd -C did not describe this machine: $node" ;; esac
cat >"$dir/slurm.conf" <<EOF
# A one-node cluster for qharness's tests (tests/slurm/cluster.sh).
ClusterName=qhtest
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$((ctld_port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
MinJobAge=600
NodeName=qhnode NodeAddr=127.0.0.1$node State=UNKNOWN
PartitionName=qh Nodes=qhnode Default=YES MaxTime=INFINITE State=UP
EOF
echo "CgroupPlugin=cgroup/v1" >"$dir/cgroup.conf"
export SLURM_CONF="$dir/slurm.conf"

# ---- the daemons -------------------------------------------------------------------------------
logs() {
    for _l in slurmctld slurmd; do
        [ -f "$dir/$_l.log" ] && { echo "--- $dir/$_l.log:"; tail -n 8 "$dir/$_l.log"; }
    done >&2
}
slurmctld -f "$dir/slurm.conf" 2>"$dir/slurmctld.err" || { cat "$dir/slurmctld.err" >&2; logs; unavailable "slurmctld did not start"; }
slurmd -f "$dir/slurm.conf" -N qhnode 2>"$dir/slurmd.err" || { cat "$dir/slurmd.err" >&2; logs; unavailable "slurmd did not start"; }
_i=0
state=""
while [ $_i -lt 150 ]; do # 30 s
    state=$(sinfo -h -n qhnode -o %t 2>/dev/null)
    [ "$state" = idle ] && break
    sleep 0.2
    _i=$((_i + 1))
done
[ "$state" = idle ] || { logs; unavailable "node qhnode is '$state', not idle, 30 s after the start"; }
say "slurmctld (pid $(pid_of slurmctld)) and slurmd (pid $(pid_of slurmd)) up on ports $ctld_port-$((ctld_port + 1)):" \
    "node qhnode$(echo "$node" | sed -n 's/.*\( CPUs=[0-9]*\).*\( RealMemory=[0-9]*\).*/\1\2/p'), partition qh"
exit 0
