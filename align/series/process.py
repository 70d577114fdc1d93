"""A stage as a subprocess: its own process group, its output appended to its log, a heartbeat.

The runner's lock file descriptor is passed on, so a stage orphaned by a killed runner still holds
the output directory.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

from align.plumbing.interrupt import stop_group
from align.plumbing.redact import redact_argv
from align.plumbing.runcard import utc_timestamp
from align.series.requeue import Preempted, grace_s
from align.series.stage_kind import StageCommand

HEARTBEAT_S = 30


def say(msg: str) -> None:
    print(f"[series {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def last_line(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 4096))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in tail.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1][:160] if lines else ""


def tail_lines(path: Path, n: int = 8) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").replace("\r", "\n").splitlines()
    except OSError:
        return []
    return [ln for ln in lines if ln.strip()][-n:]


def run_logged(cmd: StageCommand, log: Path, label: str, lock_fd: int | None = None) -> int:
    """Run a stage's command with its output appended to `log`, a heartbeat line every HEARTBEAT_S
    seconds, and the whole process tree stopped on Ctrl-C / SIGTERM; returns its exit status."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **cmd.env, "PYTHONUNBUFFERED": "1"}
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"\n===== {utc_timestamp()} {shlex.join(redact_argv(cmd.argv))}\n")
        fh.flush()
        try:
            # Own process group: on Ctrl-C / SIGTERM the whole stage tree (accelerate's workers too)
            # is stopped. The lock's fd is inherited, so a stage orphaned by a killed runner still
            # holds the output directory and a second runner cannot start the same stage beside it.
            proc = subprocess.Popen(cmd.argv, stdout=fh, stderr=subprocess.STDOUT, env=env, process_group=0,
                                    pass_fds=(lock_fd,) if lock_fd is not None else ())
        except OSError as err:
            fh.write(f"cannot start: {err}\n")
            return 127
        started = last_beat = time.time()
        try:
            while proc.poll() is None:
                time.sleep(0.5)
                if time.time() - last_beat >= HEARTBEAT_S:
                    last_beat = time.time()
                    say(f"{label}: running {time.time() - started:.0f} s | {last_line(log)}")
        except BaseException as err:  # Ctrl-C / SIGTERM: the manifest keeps `running` -> resumed next time
            # preempted: training needs the step in flight and its checkpoint before it exits
            stop_group(proc, grace_s() if isinstance(err, Preempted) else 30.0)
            fh.write(f"===== {utc_timestamp()} {'preempted' if isinstance(err, Preempted) else 'interrupted'}\n")
            raise
    return proc.returncode

