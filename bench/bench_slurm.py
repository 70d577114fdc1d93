"""A two-entry series on the local two-node Slurm cluster: a job per stage (`--submit slurm`) against one
allocation of both nodes (recipes/series/slurm.sbatch's way), with stand-in stages that each take
--stage-seconds (tests/fakes/stage.py): node-time held idle, wall time, submission overhead.

    make slurm-start && SLURM_CONF=/tmp/align-slurm/slurm.conf python bench/bench_slurm.py [--stage-seconds 10]

Node-time held = what the jobs held (nodes x their run time); busy = the stages' own wall time (manifest
wall_s) x the nodes a stage uses (in one allocation a training stage runs on both nodes through srun, every
other stage on the first node; as its own job, each stage holds one node); idle = held - busy.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FAKE_SERIES = REPO / "tests" / "fakes" / "series_runner.py"
TRAINING = ("sft", "dpo")
BATCHED = ("judge", "pairwise")
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}


def write_series(tmp: Path) -> Path:
    import yaml

    ckpt = tmp / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": 1000, "hidden_size": 64,
                                                  "intermediate_size": 128, "num_hidden_layers": 2,
                                                  "num_attention_heads": 4, "num_key_value_heads": 2}))
    (tmp / "sft.yaml").write_text("learning_rate: 3.0e-5\nmax_steps: 10\n")
    (tmp / "dpo.yaml").write_text("learning_rate: 5.0e-7\nmax_steps: 5\n")
    cpu = {"gpus_per_node": 0, "cpus_per_task": 1, "time": "00:30:00"}
    series = {"name": "bench", "output_dir": str(tmp / "out"), "train": {"launcher": "python"},
              "sft": {"recipe": str(tmp / "sft.yaml")}, "dpo": {"recipe": str(tmp / "dpo.yaml")},
              "answer": {"question_begin": 0, "question_end": 2, "max_new_token": 8},
              "judge": {"model": "stand-in-judge", "base_url": "http://127.0.0.1:9/v1"},
              "cluster": {kind: cpu for kind in ("training", "answer", "judge")},
              "models": [{"name": name, "size": "S", "construction": "scratch", "path": str(ckpt)}
                         for name in ("a", "b")]}
    path = tmp / "series.yaml"
    path.write_text(yaml.safe_dump(series, sort_keys=False))
    return path


def job(job_id: str) -> dict[str, str]:
    line = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True,
                          check=True).stdout
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def wait_all(ids: list[str]) -> dict[str, dict[str, str]]:
    while True:
        states = {i: job(i) for i in ids}
        if all(s["JobState"] in ENDED for s in states.values()):
            return states
        time.sleep(1)


def stamp(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S").timestamp()


def busy_node_seconds(out: Path, one_allocation: bool) -> float:
    entries = json.loads((out / "manifest.json").read_text())["entries"]
    # a batched stage (the judge) is one run recorded under every entry it covered
    runs = {(None if stage.split(":")[0] in BATCHED else entry, stage, rec.get("started")): rec.get("wall_s", 0)
            for entry, stages in entries.items() for stage, rec in stages.items()}
    return sum(wall * (2 if one_allocation and stage in TRAINING else 1) for (_, stage, _), wall in runs.items())


def per_stage_jobs(tmp: Path, env: dict[str, str]) -> dict[str, float]:
    t0 = time.time()
    proc = subprocess.run([sys.executable, str(FAKE_SERIES), str(tmp / "series.yaml"), "--submit", "slurm"],
                          cwd=REPO, capture_output=True, text=True, env=env, check=True)
    submitted = time.time() - t0
    ids = dict(re.findall(r"^(\S+): job (\d+)", proc.stdout, re.M))
    states = wait_all(list(ids.values()))
    starts = {label: stamp(states[i]["StartTime"]) for label, i in ids.items()}
    ends = {label: stamp(states[i]["EndTime"]) for label, i in ids.items()}
    held = sum(ends[k] - starts[k] for k in ids)  # one node each
    waits = []  # a dependent job's start after the last job it waited on ended (its entry's, or all: the end)
    for label in ids:
        before = [k for k in ids if k != label and ends[k] <= starts[label]
                  and (label == "series/judge+report" or k.split("/")[0] == label.split("/")[0])]
        if before:
            waits.append(starts[label] - max(ends[k] for k in before))
    busy = busy_node_seconds(tmp / "out", one_allocation=False)
    return {"jobs": len(ids), "submit_s": submitted, "first_running_s": min(starts.values()) - t0,
            "wall_s": max(ends.values()) - t0, "held_node_s": held, "busy_node_s": busy, "idle_node_s": held - busy,
            "start_after_dependency_s": sum(waits) / max(len(waits), 1),
            "job_overhead_s": (held - busy) / len(ids)}


def one_allocation(tmp: Path, env: dict[str, str]) -> dict[str, float]:
    script = tmp / "one.sbatch"
    script.write_text(f"#!/bin/bash\n#SBATCH --nodes=2 --ntasks-per-node=1 --cpus-per-task=1\n"
                      f"#SBATCH --output={tmp}/one.log\ncd {REPO}\n"
                      f"exec {sys.executable} {FAKE_SERIES} {tmp / 'series.yaml'}\n")
    t0 = time.time()
    job_id = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, env=env,
                            check=True).stdout.strip()
    st = wait_all([job_id])[job_id]
    wall = stamp(st["EndTime"]) - stamp(st["StartTime"])
    busy = busy_node_seconds(tmp / "out", one_allocation=True)
    return {"jobs": 1, "first_running_s": stamp(st["StartTime"]) - t0, "wall_s": stamp(st["EndTime"]) - t0,
            "held_node_s": 2 * wall, "busy_node_s": busy, "idle_node_s": 2 * wall - busy}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--stage-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    import os

    results = {}
    for name, way in (("job per stage", per_stage_jobs), ("one allocation", one_allocation)):
        with tempfile.TemporaryDirectory(prefix="bench-slurm-") as tmp:
            write_series(Path(tmp))
            env = {**os.environ, "FAKE_CALLS": f"{tmp}/calls.jsonl", "FAKE_SLEEP": str(args.stage_seconds)}
            results[name] = way(Path(tmp), env)
    for name, row in results.items():
        print(f"{name}: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
