"""A series file's `cluster:` block: what each kind of stage job asks Slurm for (`align series --submit slurm`).

    cluster:
      partition: gpu              # optional, every job
      account: my-project         # optional, every job
      signal_lead_s: 300          # SIGUSR1 this long before a job's time limit: checkpoint, requeue
      max_requeues: 3             # a job requeues itself at most this often
      extra_args: ["--qos=high"]  # more sbatch flags, every job
      training: {nodes: 4, gpus_per_node: 8, cpus_per_task: 64, time: "48:00:00"}   # cpt, sft, dpo
      answer: {gpus_per_node: 1}  # MT-Bench answers
      eval: {gpus_per_node: 1}    # base_eval, heldout_sft, heldout_dpo
      grow: {}                    # base: grow / init (CPU)
      judge: {}                   # prepare, judge, pairwise, report (CPU)

Each kind's keys fill in its defaults below; a key the file does not give keeps the default. Which kind a
stage's job is comes from the stage itself (its `resources`, stage_kind.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from align.plumbing.errors import UserError
from align.plumbing.files import read_yaml_mapping

RESOURCE_KEYS = {"nodes", "gpus_per_node", "cpus_per_task", "mem", "time"}
DEFAULTS: dict[str, dict[str, Any]] = {
    "training": {"nodes": 1, "gpus_per_node": 8, "cpus_per_task": 64, "time": "48:00:00"},
    "answer": {"nodes": 1, "gpus_per_node": 1, "cpus_per_task": 8, "time": "12:00:00"},
    "eval": {"nodes": 1, "gpus_per_node": 1, "cpus_per_task": 8, "time": "12:00:00"},
    "grow": {"nodes": 1, "gpus_per_node": 0, "cpus_per_task": 8, "time": "4:00:00"},
    "judge": {"nodes": 1, "gpus_per_node": 0, "cpus_per_task": 4, "time": "12:00:00"},
}
CLUSTER_KEYS = {"partition", "account", "signal_lead_s", "max_requeues", "extra_args", *DEFAULTS}
def load_cluster(series_file: Path) -> dict[str, Any]:
    """The `cluster:` block of a series file with every default filled in; a bad key or value: one line."""
    raw = read_yaml_mapping(series_file, "series file").get("cluster") or {}
    where = f"{series_file}: cluster"
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping, got {raw!r}")
    unknown = sorted(set(raw) - CLUSTER_KEYS)
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(CLUSTER_KEYS))})")
    cluster = {"partition": raw.get("partition"), "account": raw.get("account"),
               "signal_lead_s": _whole(raw.get("signal_lead_s", 300), f"{where}.signal_lead_s", 1),
               "max_requeues": _whole(raw.get("max_requeues", 3), f"{where}.max_requeues", 0),
               "extra_args": raw.get("extra_args") or []}
    if not isinstance(cluster["extra_args"], list) or not all(isinstance(a, str) for a in cluster["extra_args"]):
        raise UserError(f"{where}.extra_args: expected a list of sbatch flags (strings)")
    for kind, default in DEFAULTS.items():
        given = raw.get(kind) or {}
        if not isinstance(given, dict):
            raise UserError(f"{where}.{kind}: expected a mapping of {', '.join(sorted(RESOURCE_KEYS))}")
        bad = sorted(set(given) - RESOURCE_KEYS)
        if bad:
            raise UserError(f"{where}.{kind}: unknown key {bad[0]!r} (allowed: {', '.join(sorted(RESOURCE_KEYS))})")
        res = {**default, **given}
        for key, least in (("nodes", 1), ("gpus_per_node", 0), ("cpus_per_task", 1)):
            res[key] = _whole(res[key], f"{where}.{kind}.{key}", least)
        cluster[kind] = res
    return cluster


def _whole(value: Any, where: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise UserError(f"{where}: expected a whole number of at least {least}, got {value!r}")
    return value


def sbatch_resources(res: dict[str, Any]) -> list[str]:
    """One kind's resources as sbatch flags (one task per node: the stage launches its own processes)."""
    flags = [f"--nodes={res['nodes']}", "--ntasks-per-node=1", f"--cpus-per-task={res['cpus_per_task']}"]
    if res["gpus_per_node"]:
        flags.append(f"--gpus-per-node={res['gpus_per_node']}")
    if res.get("mem"):
        flags.append(f"--mem={res['mem']}")
    if res.get("time"):
        flags.append(f"--time={res['time']}")
    return flags


def describe(res: dict[str, Any]) -> str:
    """`2 nodes x 8 GPUs, 64 CPUs, 48:00:00` for the job graph."""
    gpus = f" x {res['gpus_per_node']} GPU" if res["gpus_per_node"] else " (CPU)"
    nodes = f"{res['nodes']} node{'s' if res['nodes'] > 1 else ''}"
    return f"{nodes}{gpus}, {res['cpus_per_task']} CPU/node" + (f", {res['time']}" if res.get("time") else "")
