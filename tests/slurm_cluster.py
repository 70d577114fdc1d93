"""The real Slurm cluster of the Slurm tests: two nodes on this host (.ci/slurm/start.sh), started once
for the session when a Slurm test asks for it (the `slurm_cluster` fixture, registered in conftest.py),
stopped at the end; the tests skip with one line where Slurm cannot start (not root, no packages and no
apt, daemons that do not come up)."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
START, STOP = REPO / ".ci/slurm/start.sh", REPO / ".ci/slurm/stop.sh"
DONE_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
               "BOOT_FAIL", "DEADLINE"}


def free_port_run(n: int = 3) -> int:
    """A port p with p .. p+n-1 free: slurmctld's and one per node."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        try:
            for p in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port range for Slurm")


class SlurmCluster:
    """A started cluster: its SLURM_CONF, and waiting on jobs."""

    def __init__(self, directory: Path, conf: str):
        self.dir, self.conf = directory, conf
        self.env = {**os.environ, "SLURM_CONF": conf}

    def cmd(self, *argv: str, check: bool = True, cwd: Path | None = None) -> str:
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True, cwd=cwd, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def state(self, job: str) -> dict[str, str]:
        """`scontrol show job -o` as a dict (JobState, ExitCode, Restarts, NodeList, ...)."""
        line = self.cmd("scontrol", "show", "job", "-o", job)
        return dict(part.split("=", 1) for part in line.split() if "=" in part)

    def wait(self, job: str, timeout: float = 300, until=None) -> dict[str, str]:
        """Poll until the job has ended (or until(state) holds); its last state."""
        deadline = time.time() + timeout
        while True:
            st = self.state(job)
            if (until(st) if until else st["JobState"] in DONE_STATES):
                return st
            if time.time() > deadline:
                raise AssertionError(f"job {job} still {st['JobState']} after {timeout} s: {st}")
            time.sleep(1)


@pytest.fixture(scope="session")
def slurm_cluster():
    """The two-node cluster (align-n1, align-n2); SLURM_CONF is set for this process while it runs."""
    if os.environ.get("ALIGN_SLURM_CONF"):  # a developer's cluster, already started: use it as it is
        conf = os.environ["ALIGN_SLURM_CONF"]
        os.environ["SLURM_CONF"] = conf
        yield SlurmCluster(Path(conf).parent, conf)
        return
    if os.geteuid() != 0:
        pytest.skip("Slurm tests skipped: starting the test cluster (.ci/slurm/start.sh) needs root")
    directory = Path(tempfile.mkdtemp(prefix="align-slurm-", dir="/tmp"))
    env = {**os.environ, "ALIGN_SLURM_DIR": str(directory), "ALIGN_SLURM_PORT": str(free_port_run())}
    proc = subprocess.run([str(START)], env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        subprocess.run([str(STOP)], env=env, capture_output=True)
        pytest.skip(f"Slurm tests skipped: the test cluster cannot start: {why}")
    conf = str(directory / "slurm.conf")
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    try:
        yield SlurmCluster(directory, conf)
    finally:
        subprocess.run([str(STOP)], env=env, capture_output=True, timeout=120)
        if before is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = before
