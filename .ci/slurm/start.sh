#!/usr/bin/env bash
# A real Slurm cluster of two nodes on this one host, for the tests and for developers:
#
#   eval "$(.ci/slurm/start.sh)"      # prints `export SLURM_CONF=...`; sinfo, sbatch, squeue then use it
#   .ci/slurm/stop.sh                 # stops exactly the daemons this script started
#
# Debian's Slurm supports several slurmd on one host (MULTIPLE_SLURMD): two NodeNames with the same
# NodeHostname and distinct ports, each its own `slurmd -N NAME`. Everything (config, state, logs, munge's
# socket and the pids) lives under ALIGN_SLURM_DIR (default /tmp/align-slurm); nothing under /etc changes
# except one /etc/hosts line so the node names resolve (a rendezvous on a name that does not resolve
# retries silently). Needs root (it installs the Debian packages when they are missing).
set -euo pipefail
DIR=${ALIGN_SLURM_DIR:-/tmp/align-slurm}
NODES=${ALIGN_SLURM_NODES:-"align-n1 align-n2"}
PORT=${ALIGN_SLURM_PORT:-16817}          # slurmctld; node i listens on PORT + i
CPUS=${ALIGN_SLURM_CPUS:-2}
log() { echo "slurm: $*" >&2; }
die() { echo "slurm: cannot start: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (slurmd runs jobs as any user)"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sinfo >/dev/null \
        || ! command -v munged >/dev/null; then
    log "installing slurmctld slurmd slurm-client munge"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge; } >&2 || die "apt-get install failed"
fi
if [ -s "$DIR/pids" ] && xargs -r kill -0 <"$DIR/pids" 2>/dev/null; then
    die "already running under $DIR (stop it with .ci/slurm/stop.sh)"
fi
rm -rf "$DIR"
mkdir -p "$DIR"/{state,log,spool,munge}
chmod 755 "$DIR"
: >"$DIR/pids"

# munge: its own daemon and socket here, as the munge user (it refuses keys and sockets others can write)
chown munge:munge "$DIR/munge"
chmod 711 "$DIR/munge"   # munged: owner-only writes, but clients must reach the socket
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
fi
SOCKET="$DIR/munge/munge.socket"
runuser -u munge -- munged -F --socket="$SOCKET" --pid-file="$DIR/munge/munged.pid" \
    --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed" >"$DIR/log/munged.out" 2>&1 &
echo $! >>"$DIR/pids"
for _ in $(seq 50); do [ -S "$SOCKET" ] && break; sleep 0.2; done
[ -S "$SOCKET" ] || die "munged did not start: $(tail -n 3 "$DIR/log/munged.out" "$DIR/munge/munged.log" 2>/dev/null)"

# The node names resolve to this host.
for node in $NODES; do
    getent hosts "$node" >/dev/null || echo "127.0.0.1 $node" >>/etc/hosts
done

# Memory: each node gets an equal share of what slurmd sees, less a margin.
nnodes=$(wc -w <<<"$NODES")
total=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
mem=$(( total * 9 / 10 / nnodes ))
host=$(hostname)
{
    echo "ClusterName=align-test"
    echo "SlurmctldHost=$host(127.0.0.1)"
    echo "SlurmctldPort=$PORT"
    echo "SlurmUser=root"
    echo "SlurmdUser=root"
    echo "AuthType=auth/munge"
    echo "CredType=cred/munge"
    # cred_expire also sets how long a requeued job waits before it may start again (default 120 s)
    echo "AuthInfo=socket=$SOCKET,cred_expire=${ALIGN_SLURM_CRED_EXPIRE:-10}"
    echo "StateSaveLocation=$DIR/state"
    echo "SlurmdSpoolDir=$DIR/spool/%n"
    echo "SlurmctldPidFile=$DIR/slurmctld.pid"
    echo "SlurmdPidFile=$DIR/slurmd-%n.pid"
    echo "SlurmctldLogFile=$DIR/log/slurmctld.log"
    echo "SlurmdLogFile=$DIR/log/slurmd-%n.log"
    echo "ProctrackType=proctrack/linuxproc"
    echo "TaskPlugin=task/none"
    echo "SelectType=select/cons_tres"
    echo "SelectTypeParameters=CR_CPU"      # jobs of one CPU share a node: entries side by side
    echo "MpiDefault=none"
    echo "SchedulerType=sched/backfill"
    echo "SchedulerParameters=sched_interval=2"
    echo "AccountingStorageType=accounting_storage/none"
    echo "JobAcctGatherType=jobacct_gather/none"
    echo "JobCompType=jobcomp/none"
    echo "ReturnToService=2"
    echo "KillWait=10"
    echo "MinJobAge=600"                   # finished jobs stay visible to squeue/scontrol for 10 minutes
    echo "InactiveLimit=0"
    echo "SlurmdTimeout=60"
    i=0
    for node in $NODES; do
        i=$((i + 1))
        echo "NodeName=$node NodeHostname=$host NodeAddr=127.0.0.1 Port=$((PORT + i)) CPUs=$CPUS RealMemory=$mem State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=$(tr ' ' ',' <<<"$NODES") Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO"
} >"$DIR/slurm.conf"
export SLURM_CONF="$DIR/slurm.conf"

slurmctld -D -f "$SLURM_CONF" >"$DIR/log/slurmctld.out" 2>&1 &
echo $! >>"$DIR/pids"
for node in $NODES; do
    slurmd -D -N "$node" -f "$SLURM_CONF" >"$DIR/log/slurmd-$node.out" 2>&1 &
    echo $! >>"$DIR/pids"
done

# Ready when every node is idle.
for _ in $(seq ${ALIGN_SLURM_WAIT:-60}); do
    idle=$(sinfo -h -N -o '%N %t' 2>/dev/null | awk '$2 == "idle"' | wc -l || true)
    [ "$idle" -ge "$nnodes" ] && break
    sleep 1
done
if [ "${idle:-0}" -lt "$nnodes" ]; then
    sinfo -N >&2 || true
    tail -n 5 "$DIR"/log/*.log >&2 || true
    "$(dirname "$0")/stop.sh" >&2 || true
    die "the nodes did not come up idle within ${ALIGN_SLURM_WAIT:-60} s (logs: $DIR/log)"
fi
log "$nnodes nodes idle ($NODES); config $SLURM_CONF"
echo "export SLURM_CONF=$SLURM_CONF"
