"""Run `transformers serve` on a local checkpoint for the length of a `with` block.

Used for the local judge and to test the OpenAI-compatible answer backend against a real
server. The server listens on 127.0.0.1 only and is pinned to one model (`force_model`), so
clients must send exactly `served_model_name(model_path)` as the model name.

The server never outlives its parent: it runs in its own process group, which is stopped as a
whole when the `with` block ends (normally, on Ctrl-C, or on SIGTERM: `align` turns SIGTERM into
the same interrupt); on Linux it is also sent SIGTERM by the kernel if its parent dies unannounced
(kill -9), through PR_SET_PDEATHSIG, set before the server program starts. (The kernel sends it
when the thread that started the server ends: start it from a thread that lives as long as the block,
as the commands do from their main thread.)
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from align.plumbing.errors import UserError
from align.plumbing.extras import require_extra
from align.plumbing.interrupt import stop_group

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# Flags we set ourselves: letting callers pass them could open the server beyond loopback.
RESERVED_FLAGS = ("--host", "--port")


def served_model_name(model_path: str | os.PathLike) -> str:
    """The name the server knows the model by: the absolute path for a local checkpoint.

    `transformers serve` reads `name@revision`, so a path containing '@' cannot be served.
    """
    name = os.path.abspath(model_path) if os.path.exists(model_path) else str(model_path)
    if "@" in name:
        raise UserError(f"{name}: `transformers serve` cannot load a path containing '@' (read as a revision)")
    return name


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


# Runs first in the child: asks the kernel for SIGTERM when the parent dies, then becomes the server.
# (An exec'd program keeps the setting; preexec_fn would do the same but may deadlock in a threaded parent.)
DIE_WITH_PARENT = """import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit("parent gone before the server started")
os.execv(sys.argv[2], sys.argv[2:])
"""


def serve_command(model_path: str, port: int, extra_args: Sequence[str]) -> list[str]:
    """The server's command line (tests put a stand-in server here)."""
    return [sys.executable, "-m", "transformers.cli.transformers", "serve", served_model_name(model_path),
            "--host", LOOPBACK, "--port", str(port), *extra_args]


def dying_with_parent(cmd: list[str]) -> list[str]:
    """`cmd`, started so that the kernel ends it if this process dies (Linux; elsewhere unchanged)."""
    if not sys.platform.startswith("linux"):
        return cmd
    return [sys.executable, "-c", DIE_WITH_PARENT, str(os.getpid()), *cmd]


@contextmanager
def local_server(model_path: str, *, port: int | None = None, extra_args: Sequence[str] = (),
                 startup_timeout: float = 300.0, log_path: str | None = None) -> Iterator[str]:
    """Start `transformers serve` on 127.0.0.1 (a free port when None), wait for /health, yield the
    base URL ending in /v1, stop it (terminate, then kill) on exit. Failure to start -> UserError
    naming the log."""
    if not os.path.isdir(model_path):
        raise UserError(f"{model_path}: no such checkpoint directory to serve")
    require_extra("serve", f"serving {model_path} with `transformers serve`")
    for arg in extra_args:
        if arg.split("=")[0] in RESERVED_FLAGS:
            raise UserError(f"extra_args may not set {arg.split('=')[0]}: the server listens on {LOOPBACK} only")
    port = port or free_port()
    own_log = log_path is None
    if own_log:
        fd, log_path = tempfile.mkstemp(prefix="transformers-serve-", suffix=".log")
        os.close(fd)
    cmd = dying_with_parent(serve_command(model_path, port, extra_args))
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")  # a local path must never reach for the hub
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    log.info("starting transformers serve for %s on %s:%d (log: %s)", model_path, LOOPBACK, port, log_path)
    with open(log_path, "ab") as log_fh:
        # Its own process group: stopped as a whole by stop_group, and out of the terminal's reach, so a
        # Ctrl-C reaches only us and the cleanup below stops the server.
        proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                process_group=0)
    failed = True
    try:
        deadline = time.monotonic() + startup_timeout
        health = f"http://{LOOPBACK}:{port}/health"
        while not _healthy(health):
            if proc.poll() is not None:
                raise UserError(f"transformers serve exited with status {proc.returncode} before it was ready: "
                                f"see {log_path}")
            if time.monotonic() > deadline:
                raise UserError(f"transformers serve not healthy after {startup_timeout:.0f} s: see {log_path}")
            time.sleep(0.5)
        log.info("transformers serve ready at http://%s:%d/v1", LOOPBACK, port)
        yield f"http://{LOOPBACK}:{port}/v1"
        failed = False
    finally:
        stop_group(proc, grace_s=15)
        if own_log and not failed:
            os.unlink(log_path)
