"""Rendezvous and world size from the Slurm allocation (align.series.rendezvous): the first node's address,
processes per node from the allocation or an override, a head name that does not resolve is one line; on the
real two-node test cluster, two training stages run on both nodes with world size 2 and the first node's
address."""

from __future__ import annotations

import json
import sys

import pytest
import yaml
from conftest import REPO, chat_rows, preference_rows, write_jsonl

from align.plumbing.errors import UserError
from align.series import rendezvous

pytestmark = pytest.mark.xdist_group("slurm")  # one test cluster per run: the Slurm tests share a worker (-n)


@pytest.mark.parametrize("env, expected", [
    ({"SLURM_GPUS_ON_NODE": "4", "SLURM_NTASKS_PER_NODE": "1"}, (4, "SLURM_GPUS_ON_NODE")),
    ({"SLURM_GPUS_PER_NODE": "a100:8"}, (8, "SLURM_GPUS_PER_NODE")),
    ({"ALIGN_PROCS_PER_NODE": "2", "SLURM_GPUS_ON_NODE": "8"}, (2, "ALIGN_PROCS_PER_NODE")),
    ({"SLURM_NTASKS_PER_NODE": "8"}, (8, "SLURM_NTASKS_PER_NODE")),
    ({"SLURM_NTASKS_PER_NODE": "1"}, (1, "no GPUs on the node: one process")),
])
def test_processes_per_node_come_from_the_allocation(env, expected):
    assert rendezvous.processes_per_node(env) == expected


def test_a_head_name_that_does_not_resolve_is_one_line():
    with pytest.raises(UserError, match="head node 'no-such-node.invalid' does not resolve"):
        rendezvous.address_of("no-such-node.invalid")


def test_the_port_follows_the_job_unless_given():
    assert rendezvous.master_port({"SLURM_JOB_ID": "4321"}) == 29500 + 4321 % 2000
    assert rendezvous.master_port({"SLURM_JOB_ID": "4321", "ALIGN_MASTER_PORT": "12345"}) == 12345


@pytest.mark.slow
def test_two_training_stages_on_two_nodes(slurm_cluster, tiny_llama_dir, tmp_path):
    train = {"max_steps": 2, "per_device_train_batch_size": 2, "max_length": 64, "report_to": "none"}
    chat = write_jsonl(tmp_path / "chat.jsonl", chat_rows(8))
    prefs = write_jsonl(tmp_path / "prefs.jsonl", preference_rows(4))
    series = {"name": "two-nodes", "output_dir": str(tmp_path / "out"),
              "train": {"launcher": "slurm", "accelerate_config": "ddp", "env": {"CUDA_VISIBLE_DEVICES": ""}},
              "sft": {"recipe": str(REPO / "recipes/sft/cpu-demo.yaml"),
                      "overrides": {**train, "dataset_name": str(chat)}},
              "dpo": {"recipe": str(REPO / "recipes/dpo/cpu-demo.yaml"),
                      "overrides": {**train, "dataset_name": str(prefs)}},
              "answer": {"backend": "hf", "max_new_token": 4}, "judge": {"model": str(tiny_llama_dir)},
              "models": [{"name": "tiny", "size": "S", "construction": "scratch", "path": str(tiny_llama_dir)}]}
    path = tmp_path / "series.yaml"
    path.write_text(yaml.safe_dump(series, sort_keys=False))
    script = tmp_path / "train.sbatch"
    script.write_text(f"#!/bin/bash\n#SBATCH --nodes=2 --ntasks-per-node=1 --cpus-per-task=1\n"
                      f"#SBATCH --output={tmp_path}/job.log\ncd {REPO}\n"
                      f"exec {sys.executable} -m align.cli series {path} --only sft,dpo\n")
    job = slurm_cluster.cmd("sbatch", "--parsable", str(script), cwd=tmp_path)
    st = slurm_cluster.wait(job, timeout=900)
    out = tmp_path / "out" / "tiny"
    logs = {stage: (out / f"{stage}.log").read_text(errors="replace") for stage in ("sft", "dpo")}
    assert st["JobState"] == "COMPLETED", (st, (tmp_path / "job.log").read_text()[-2000:], logs["sft"][-3000:])
    for stage in ("sft", "dpo"):
        assert json.loads((out / stage / "run_card.json").read_text())["world_size"] == 2
        # both nodes' launchers read the same head: the first node, by address
        heads = [line for line in logs[stage].splitlines() if line.startswith("rendezvous: head")]
        assert sorted(h.rsplit(" ", 1)[-1] for h in heads) == ["0", "1"], heads
        assert all(h.startswith("rendezvous: head align-n1 (127.0.0.1:") and "world size 2" in h for h in heads)
