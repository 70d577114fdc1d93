#!/usr/bin/env bash
# Stops exactly the daemons .ci/slurm/start.sh started (their pids in $ALIGN_SLURM_DIR/pids), nothing else.
set -uo pipefail
DIR=${ALIGN_SLURM_DIR:-/tmp/align-slurm}
[ -s "$DIR/pids" ] || { echo "slurm: nothing to stop under $DIR" >&2; exit 0; }
# Daemons first, munged last (tac: reverse start order); TERM, then KILL what has not gone after 10 s.
pids=$(tac "$DIR/pids")
for pid in $pids; do kill -TERM "$pid" 2>/dev/null; done
for _ in $(seq 50); do
    alive=""
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive="$alive $pid"; done
    [ -z "$alive" ] && break
    sleep 0.2
done
for pid in $alive; do kill -KILL "$pid" 2>/dev/null; done
: >"$DIR/pids"
echo "slurm: stopped (state and logs kept in $DIR)" >&2
