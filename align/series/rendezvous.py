"""One node's `accelerate launch` in a Slurm allocation, with the rendezvous and the world size read from it.

    srun --ntasks-per-node=1 python -m align.series.rendezvous --machine_rank "$SLURM_NODEID" ACCELERATE_ARGS...

(train.launcher: slurm; stages.slurm_launcher). The head is the allocation's first node
(`scontrol show hostnames $SLURM_JOB_NODELIST`), resolved to an address here: a name that does not resolve
is one line and exit status 2, not a rendezvous that retries silently. Processes per node: ALIGN_PROCS_PER_NODE
(or the older ALIGN_GPUS_PER_NODE) when set, else the GPUs Slurm gave this node (SLURM_GPUS_ON_NODE, then
SLURM_GPUS_PER_NODE), else SLURM_NTASKS_PER_NODE when above 1, else 1 (a CPU node: one process). The port is
ALIGN_MASTER_PORT, else one derived from the job id (two jobs sharing a node do not collide). Every node but
the head waits at most ALIGN_RENDEZVOUS_TIMEOUT_S (default 300) for the head's port, then stops with one line.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from align.plumbing.errors import UserError, exit_on_user_error


def head_node(env: dict[str, str]) -> str:
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        raise UserError("train.launcher slurm: not inside a Slurm allocation (SLURM_JOB_NODELIST is not set)")
    names = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True)
    if names.returncode != 0 or not names.stdout.split():
        raise UserError(f"train.launcher slurm: scontrol show hostnames {nodelist} failed: {names.stderr.strip()}")
    return names.stdout.split()[0]


def address_of(node: str) -> str:
    """The node's IPv4 address (what every rank connects to)."""
    try:
        return socket.getaddrinfo(node, None, family=socket.AF_INET, type=socket.SOCK_STREAM)[0][4][0]
    except OSError as err:
        raise UserError(f"rendezvous: the head node {node!r} does not resolve to an address ({err.strerror}); "
                        "its name must resolve on every node (DNS or /etc/hosts)") from None


def processes_per_node(env: dict[str, str]) -> tuple[int, str]:
    """(processes on each node, where that number came from)."""
    for var in ("ALIGN_PROCS_PER_NODE", "ALIGN_GPUS_PER_NODE", "SLURM_GPUS_ON_NODE", "SLURM_GPUS_PER_NODE"):
        value = (env.get(var) or "").split(":")[-1].split("(")[0]  # SLURM_GPUS_PER_NODE may read `a100:8`
        if value.isdigit() and int(value) > 0:
            return int(value), var
    tasks = (env.get("SLURM_NTASKS_PER_NODE") or "").split("(")[0]
    if tasks.isdigit() and int(tasks) > 1:
        return int(tasks), "SLURM_NTASKS_PER_NODE"
    return 1, "no GPUs on the node: one process"


def master_port(env: dict[str, str]) -> int:
    if env.get("ALIGN_MASTER_PORT"):
        return int(env["ALIGN_MASTER_PORT"])
    return 29500 + int(env.get("SLURM_JOB_ID") or 0) % 2000


def wait_for_head(address: str, port: int, timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    while True:
        try:
            with socket.create_connection((address, port), timeout=5):
                return
        except OSError:
            if time.time() > deadline:
                raise UserError(f"rendezvous: the head {address}:{port} did not open its port within {timeout_s:.0f} s "
                                "(ALIGN_RENDEZVOUS_TIMEOUT_S); see the head node's log") from None
            time.sleep(1)


def launch_argv(argv: list[str], env: dict[str, str]) -> tuple[list[str], str]:
    """(this node's `accelerate launch` command, the line that says how the world was set up)."""
    if len(argv) < 2 or argv[0] != "--machine_rank":
        raise UserError("usage: python -m align.series.rendezvous --machine_rank RANK ACCELERATE_ARGS...")
    rank, rest = int(argv[1]), argv[2:]
    nodes = int(env.get("SLURM_NNODES") or env.get("SLURM_JOB_NUM_NODES") or 1)
    head = head_node(env)
    address, port = address_of(head), master_port(env)
    per_node, source = processes_per_node(env)
    if rank > 0:
        wait_for_head(address, port, float(env.get("ALIGN_RENDEZVOUS_TIMEOUT_S") or 300))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", str(nodes), "--machine_rank",
           str(rank), "--num_processes", str(nodes * per_node), "--main_process_ip", address,
           "--main_process_port", str(port), *rest]
    line = (f"rendezvous: head {head} ({address}:{port}), {nodes} node(s) x {per_node} process(es) ({source}) = "
            f"world size {nodes * per_node}; this is node {rank}")
    return cmd, line


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    cmd, line = launch_argv(sys.argv[1:] if argv is None else argv, dict(os.environ))
    print(line, flush=True)
    os.execv(cmd[0], cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
