"""Ctrl-C and SIGTERM end a command the same way: cleanly, with one line and exit status 130.

SIGTERM (`kill PID`, a scheduler's preemption, a series runner stopping its stage) would otherwise
end Python at once, skipping every `finally` and `with` exit: child servers left running, locks
held. Raised as KeyboardInterrupt instead, it unwinds exactly as Ctrl-C does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

INTERRUPTED_EXIT = 130  # the shell's 128 + SIGINT, for SIGTERM too (one "interrupted" status)
# A run stopped on a scheduler's warning with a checkpoint (sysexits' EX_TEMPFAIL): "not done, resume me"
PREEMPTED_EXIT = 75


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside: SIGTERM raises KeyboardInterrupt in the main thread. The previous handler is put
    back after (tests call entry points in-process). Outside the main thread: nothing to install."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_interrupted() -> None:
    """Say so in one line and exit 130. Cleanup has already run (the interrupt unwound the stack);
    worker threads still waiting on a network reply are abandoned rather than waited for: their
    results would be discarded anyway, and a timeout can be minutes."""
    print("interrupted: every record written is whole; run the same command again to continue (training: "
          "with --resume_from_checkpoint true)", file=sys.stderr, flush=True)
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.stdout.flush()
        os._exit(INTERRUPTED_EXIT)
    sys.exit(INTERRUPTED_EXIT)


def call_in_own_group(cmd: list[str], grace_s: float = 30.0) -> int:
    """`subprocess.call(cmd)`, with the child and everything it starts (a launcher's workers) in their
    own process group, which an interrupt stops as a whole: SIGTERM, SIGKILL after `grace_s`.
    (subprocess.call would SIGKILL the launcher alone and orphan its workers.)"""
    proc = subprocess.Popen(cmd, process_group=0)
    try:
        return proc.wait()
    except BaseException:
        stop_group(proc, grace_s)
        raise


def stop_group(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM the process group led by `proc`, SIGKILL it if `proc` is still there after `grace_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue
