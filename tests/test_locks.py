"""align.plumbing.locks: one holder at a time, across processes, with the lock file removed on release."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

from align.plumbing.errors import UserError
from align.plumbing.locks import lock_path, output_lock


def test_second_holder_is_refused_naming_the_first_and_release_cleans_up(tmp_path):
    out = tmp_path / "new" / "deeper" / "j.jsonl"
    with output_lock(out, "--output-file") as held:
        assert held == lock_path(out) and held.name == ".j.jsonl.lock"
        with pytest.raises(UserError) as refused:
            with output_lock(tmp_path / "new" / "deeper" / ".." / "deeper" / "j.jsonl", "--output-file"):
                pass  # the same file by another spelling is the same lock
        assert f"(pid {os.getpid()} " in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "new").exists()  # nothing was written: the folders it made are gone too
    with output_lock(out, "--output-file"):  # free again
        pass


RACER = """import os, sys, time
from align.plumbing.errors import UserError
from align.plumbing.locks import output_lock
target, inside, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
held = 0
for _ in range(rounds):
    try:
        with output_lock(target, "--output-file"):
            fd = os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # fails if another holder is inside
            time.sleep(0.002)
            os.close(fd)
            os.unlink(inside)
            held += 1
    except UserError:
        pass
print(held)
"""


def test_racing_processes_never_hold_it_together(tmp_path):
    """Eight processes take and release the lock as fast as they can (each release removes the lock
    file): never two inside at once (an O_EXCL marker file would fail), and all get their turns."""
    target, inside = tmp_path / "j.jsonl", tmp_path / "inside"
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(target), str(inside), "300"], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [proc.communicate(timeout=120) for proc in racers]
    assert all(proc.returncode == 0 for proc in racers), [err[-2000:] for _, err in results]
    assert sum(int(out) for out, _ in results) > 0
    assert not inside.exists() and not lock_path(target).exists()
