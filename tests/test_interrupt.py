"""SIGTERM to an `align` entry point unwinds like Ctrl-C (exit 130, one line), and a launched child
(`align sft --accelerate_config ...` runs `accelerate launch`) goes with all it started (issue 24)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO

# A launcher stand-in: starts a worker, both record their pids, both wait (as accelerate and its ranks).
LAUNCHER = """
import os, subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(sys.argv[1], "w").write(f"{os.getpid()} {worker.pid}")
time.sleep(60)
"""
ENTRY = """
import sys
from align.plumbing.errors import exit_on_user_error
from align.plumbing.interrupt import call_in_own_group

@exit_on_user_error
def main():
    try:
        return call_in_own_group([sys.executable, "-c", sys.argv[1], sys.argv[2]], grace_s=5)
    finally:
        print("cleanup ran", flush=True)

sys.exit(main())
"""


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_sigterm_stops_the_launched_child_and_its_workers(tmp_path):
    pids = tmp_path / "pids"
    proc = subprocess.Popen([sys.executable, "-c", ENTRY, LAUNCHER, str(pids)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not pids.exists() or not pids.read_text():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    launcher, worker = map(int, pids.read_text().split())
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 and "cleanup ran" in out
    assert err.strip().startswith("interrupted:") and "Traceback" not in err
    deadline = time.monotonic() + 5
    while alive(launcher) or alive(worker):
        assert time.monotonic() < deadline, "the launcher or its worker outlived the command"
        time.sleep(0.05)
    for pid in (launcher, worker):
        try:
            os.kill(pid, signal.SIGKILL)  # (only if the test failed above: no stray sleepers)
        except ProcessLookupError:
            pass
