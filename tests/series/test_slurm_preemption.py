"""Preemption and time limits on a real Slurm (the two-node test cluster): a series job warned of its end
(`--signal=B:USR1@LEAD`, sent here by `scancel --batch --signal=USR1`) checkpoints the step in flight,
requeues itself and resumes, every step in the final trainer state exactly once; a job killed outright
resumes from its last checkpoint when submitted again."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, chat_rows, write_jsonl

pytestmark = pytest.mark.xdist_group("slurm")  # one test cluster per run: the Slurm tests share a worker (-n)

STEPS = 30


def sft_series(tmp_path: Path, model: Path, **sft) -> Path:
    chat = write_jsonl(tmp_path / "chat.jsonl", chat_rows(8))
    overrides = {"max_steps": STEPS, "per_device_train_batch_size": 2, "max_length": 64, "logging_steps": 1,
                 "dataset_name": str(chat), **sft}
    series = {"name": "preempt", "output_dir": str(tmp_path / "out"),
              "train": {"launcher": "python", "env": {"CUDA_VISIBLE_DEVICES": ""}},
              "sft": {"recipe": str(REPO / "recipes/sft/cpu-demo.yaml"), "overrides": overrides},
              "dpo": {"recipe": str(REPO / "recipes/dpo/cpu-demo.yaml")},
              "answer": {"backend": "hf", "max_new_token": 4},
              "judge": {"model": str(model)},
              "models": [{"name": "tiny", "size": "S", "construction": "scratch", "path": str(model)}]}
    path = tmp_path / "series.yaml"
    path.write_text(yaml.safe_dump(series, sort_keys=False))
    return path


def job_script(tmp_path: Path, series: Path) -> Path:
    """What `align series --submit slurm` writes for a training stage, by hand: requeue, a signal ahead of
    the end to the batch shell, one log for every attempt."""
    script = tmp_path / "sft.sbatch"
    script.write_text(f"""#!/bin/bash
#SBATCH --job-name=preempt-sft
#SBATCH --nodes=1 --cpus-per-task=1
#SBATCH --requeue --open-mode=append --signal=B:USR1@60
#SBATCH --output={tmp_path}/job.log
cd {REPO}
exec {sys.executable} -m align.cli series {series} --only sft
""")
    return script


def loss_logs(log: Path) -> int:
    return log.read_text(errors="replace").count("'loss'") if log.is_file() else 0


def wait_for(what, timeout: float = 300, every: float = 0.2):
    deadline = time.time() + timeout
    while not what():
        assert time.time() < deadline, f"timed out waiting for {what.__doc__ or what}"
        time.sleep(every)


def steps_trained(out: Path) -> list[int]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return sorted(h["step"] for h in history if "loss" in h)


@pytest.mark.slow
def test_signal_before_the_end_checkpoints_requeues_and_resumes(slurm_cluster, tiny_llama_dir, tmp_path):
    series = sft_series(tmp_path, tiny_llama_dir)  # the recipe's save_strategy "no": only the signal saves
    job = slurm_cluster.cmd("sbatch", "--parsable", str(job_script(tmp_path, series)), cwd=tmp_path)
    log = tmp_path / "out" / "tiny" / "sft.log"
    wait_for(lambda: loss_logs(log) >= 3)
    slurm_cluster.cmd("scancel", "--batch", "--signal=USR1", job)
    st = slurm_cluster.wait(job, timeout=600, until=lambda s: s["JobState"] in ("COMPLETED", "FAILED")
                            and int(s.get("Restarts", 0)) >= 1)
    sft = tmp_path / "out" / "tiny" / "sft"
    checkpoints = [p.name for p in sft.glob("checkpoint-*")]
    job_log = (tmp_path / "job.log").read_text(errors="replace")
    assert st["Restarts"] == "1" and len(checkpoints) == 1, (st, checkpoints, job_log[-3000:])
    assert f"preempted: requeueing job {job}" in job_log and "sft: resuming" in job_log  # both attempts' logs
    assert steps_trained(sft) == list(range(1, STEPS + 1))  # nothing trained twice
    assert json.loads((sft / "run_card.json").read_text())["resumed_from"].endswith(checkpoints[0])


@pytest.mark.slow
def test_job_killed_outright_resumes_from_its_last_checkpoint(slurm_cluster, tiny_llama_dir, tmp_path):
    series = sft_series(tmp_path, tiny_llama_dir, save_strategy="steps", save_steps=5)
    script = job_script(tmp_path, series)
    first = slurm_cluster.cmd("sbatch", "--parsable", str(script), cwd=tmp_path)
    sft = tmp_path / "out" / "tiny" / "sft"
    wait_for(lambda: (sft / "checkpoint-5" / "trainer_state.json").is_file())
    slurm_cluster.cmd("scancel", "--signal=KILL", first)
    assert slurm_cluster.wait(first, timeout=120)["JobState"] == "CANCELLED"
    assert not (sft / "run_card.json").exists()
    kept = max(int(p.name.split("-")[1]) for p in sft.glob("checkpoint-*"))

    again = slurm_cluster.cmd("sbatch", "--parsable", str(script), cwd=tmp_path)
    slurm_cluster.wait(again, timeout=600)
    assert steps_trained(sft) == list(range(1, STEPS + 1))
    assert json.loads((sft / "run_card.json").read_text())["resumed_from"].endswith(f"checkpoint-{kept}")
