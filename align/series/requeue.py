"""A series job warned of its end (Slurm's `--signal=B:USR1@LEAD`) stops its stage with a checkpoint and
puts itself back in the queue, so a time limit or a preemption needs no hand.

SIGUSR1 to the runner raises Preempted (a KeyboardInterrupt: it unwinds the same way). The stage's process
group gets SIGTERM, on which training saves checkpoint-N at the end of the step in flight and exits
(align/train/preemption.py); the manifest keeps the stage `running`, so the next run resumes it from that
checkpoint. Then, inside a Slurm job with restarts left, `scontrol requeue $SLURM_JOB_ID`: the same job
starts again (SLURM_RESTART_COUNT + 1), `--open-mode=append` keeps every attempt's log in one file.
"""

from __future__ import annotations

import os
import subprocess
import sys

from align.plumbing.interrupt import PREEMPTED_EXIT

MAX_REQUEUES = 3  # ALIGN_MAX_REQUEUES overrides: a job that never gets further must not loop forever
GRACE_S = 300     # how long the stage may take to checkpoint and exit (ALIGN_PREEMPT_GRACE_S); then SIGKILL


class Preempted(KeyboardInterrupt):
    """The job's end is near: stop the stage with a checkpoint."""


def raise_preempted(signum, frame):
    raise Preempted


def grace_s() -> float:
    return float(os.environ.get("ALIGN_PREEMPT_GRACE_S", GRACE_S))


def requeue_this_job() -> int:
    """Requeue the Slurm job this runs in (restarts left), say so in one line; the status for the job."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        print("preempted: stopped with a checkpoint; run the same command again to resume", file=sys.stderr,
              flush=True)
        return PREEMPTED_EXIT
    restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    limit = int(os.environ.get("ALIGN_MAX_REQUEUES") or MAX_REQUEUES)
    if restarts >= limit:
        print(f"preempted: job {job} not requeued: it has restarted {restarts} times (ALIGN_MAX_REQUEUES={limit}); "
              "submit it again to resume", file=sys.stderr, flush=True)
        return PREEMPTED_EXIT
    print(f"preempted: requeueing job {job} (restart {restarts + 1} of at most {limit}); it resumes from the "
          "checkpoint", file=sys.stderr, flush=True)
    # Slurm ends this job's processes (this one too) and queues it again; nothing may follow.
    done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"preempted: scontrol requeue {job} failed: {done.stderr.strip()}; submit it again to resume",
              file=sys.stderr, flush=True)
    return PREEMPTED_EXIT
