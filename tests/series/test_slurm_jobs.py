"""`align series FILE --submit slurm` on a real Slurm (the two-node test cluster), with the stand-in stage
programs (tests/fakes/stage.py): a job per stage, entries side by side, each entry's chain in order, the
judging and report after all of them; submitting again submits nothing twice; a failed stage stops only its
own entry's later jobs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

pytestmark = pytest.mark.xdist_group("slurm")  # one test cluster per run: the Slurm tests share a worker (-n)

FAKE_SERIES = REPO / "tests" / "fakes" / "series_runner.py"
CPU_JOB = {"gpus_per_node": 0, "cpus_per_task": 1, "time": "00:10:00"}


def two_entry_series(tmp_path: Path) -> Path:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({
        "model_type": "llama", "vocab_size": 1000, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}))
    (tmp_path / "sft.yaml").write_text("learning_rate: 3.0e-5\nmax_steps: 10\n")
    (tmp_path / "dpo.yaml").write_text("learning_rate: 5.0e-7\nmax_steps: 5\n")
    series = {"name": "jobs", "output_dir": str(tmp_path / "out"), "train": {"launcher": "python"},
              "sft": {"recipe": str(tmp_path / "sft.yaml")}, "dpo": {"recipe": str(tmp_path / "dpo.yaml")},
              "answer": {"question_begin": 0, "question_end": 2, "max_new_token": 8},
              "judge": {"model": "stand-in-judge", "base_url": "http://127.0.0.1:9/v1"},
              "cluster": {"signal_lead_s": 30, **{kind: CPU_JOB for kind in ("training", "answer", "judge")}},
              "models": [{"name": "a", "size": "S", "construction": "scratch", "path": str(ckpt)},
                         {"name": "b", "size": "S", "construction": "scratch", "path": str(ckpt)}]}
    path = tmp_path / "series.yaml"
    path.write_text(yaml.safe_dump(series, sort_keys=False))
    return path


def submit(cluster, tmp_path: Path, **env: str) -> tuple[str, dict[str, str]]:
    """Run `--submit slurm` through the stand-in runner; (its stdout, label -> job id)."""
    proc = subprocess.run([sys.executable, str(FAKE_SERIES), str(tmp_path / "series.yaml"), "--submit", "slurm"],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**cluster.env, "FAKE_CALLS": str(tmp_path / "calls.jsonl"), **env})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, dict(re.findall(r"^(\S+): (?:job|already queued or running as job) (\d+)", proc.stdout, re.M))


def calls(tmp_path: Path) -> dict[tuple[str, str], float]:
    """(entry, stage) -> when its stand-in started."""
    return {(c["entry"], c["stage"]): c["t"] for c in map(json.loads, (tmp_path / "calls.jsonl").read_text()
                                                          .splitlines())}


@pytest.mark.slow
def test_a_job_per_stage_entries_side_by_side_nothing_submitted_twice(slurm_cluster, tmp_path):
    two_entry_series(tmp_path)
    out, jobs = submit(slurm_cluster, tmp_path, FAKE_SLEEP="4")
    assert set(jobs) == {f"{e}/{s}" for e in "ab" for s in ("sft", "dpo", "answer")} | {"series/judge+report"}, out
    again, queued = submit(slurm_cluster, tmp_path, FAKE_SLEEP="4")  # while they are queued or running
    assert queued == jobs and again.count("not submitted again") == len(jobs), again

    end = slurm_cluster.wait(jobs["series/judge+report"], timeout=300)
    states = {label: slurm_cluster.state(job)["JobState"] for label, job in jobs.items()}
    assert set(states.values()) == {"COMPLETED"} and end["JobState"] == "COMPLETED", states
    started = calls(tmp_path)
    assert abs(started[("a", "sft")] - started[("b", "sft")]) < 4  # side by side: each takes 4 s
    for entry in "ab":  # each entry's chain in order, the judging after every answer
        assert started[(entry, "sft")] < started[(entry, "dpo")] < started[(entry, "answer")] < started[
            ("_series", "judge")] < started[("_series", "report")]
    done = json.loads((tmp_path / "out" / "manifest.json").read_text())["entries"]
    assert all(done[e][s]["state"] == "done" for e in "ab" for s in ("sft", "dpo", "answer"))
    assert done["_series"]["report"]["state"] == "done"
    assert "every stage is done; nothing to submit" in submit(slurm_cluster, tmp_path)[0]


@pytest.mark.slow
def test_a_failed_stage_stops_only_its_entrys_later_jobs(slurm_cluster, tmp_path):
    two_entry_series(tmp_path)
    _, jobs = submit(slurm_cluster, tmp_path, FAKE_FAIL="a:dpo")
    slurm_cluster.wait(jobs["series/judge+report"], timeout=300)
    states = {label: slurm_cluster.state(job)["JobState"] for label, job in jobs.items() if label.startswith(("a/",
                                                                                                        "b/"))}
    assert states == {"a/sft": "COMPLETED", "a/dpo": "FAILED", "a/answer": "CANCELLED", "b/sft": "COMPLETED",
                      "b/dpo": "COMPLETED", "b/answer": "COMPLETED"}, states
    assert ("a", "answer") not in calls(tmp_path)
    # The judging and report ran after all (afterany), over the entry that finished; that job's own exit
    # status says the series is not finished (a's judgments are missing).
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["entries"]["_series"]["report"][
        "state"] == "done"
    assert "| b |" in (tmp_path / "out" / "table.md").read_text()


def test_dry_run_prints_the_job_graph_with_resources(tmp_path):
    """No Slurm needed: the graph of what would be submitted, each job's kind, resources and dependencies."""
    path = two_entry_series(tmp_path)
    series = yaml.safe_load(path.read_text())
    series["cluster"]["training"] = {"nodes": 2, "gpus_per_node": 8, "cpus_per_task": 32, "time": "48:00:00"}
    series["models"].append({"name": "c", "size": "L", "construction": "expanded",
                             "grow": {"from": "a", "spec": str(tmp_path / "sft.yaml"), "method": "aki"}})
    path.write_text(yaml.safe_dump(series, sort_keys=False))
    proc = subprocess.run([sys.executable, "-m", "align.cli", "series", str(path), "--submit", "slurm", "--dry-run"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert set(lines) == {f"{e}/{s}" for e in "abc" for s in ("sft", "dpo", "answer")} | {"c/base",
                                                                                          "series/judge+report"}
    assert "[training] 2 nodes x 8 GPU, 32 CPU/node, 48:00:00; afterok: a/sft" in lines["a/dpo"]
    assert "[grow] 1 node (CPU), 8 CPU/node, 4:00:00; afterok: -" in lines["c/base"]  # a's base is given
    assert "afterok: c/base" in lines["c/sft"] and "[judge]" in lines["series/judge+report"]
    assert "afterany: a/sft" in lines["series/judge+report"]
    assert not (tmp_path / "out" / "slurm").exists()  # nothing written


@pytest.mark.parametrize("cluster, message", [
    ({"training": {"gpus": 8}}, "cluster.training: unknown key 'gpus'"),
    ({"training": {"nodes": 0}}, "cluster.training.nodes: expected a whole number of at least 1, got 0"),
    ({"qos": "high"}, "cluster: unknown key 'qos'"),
])
def test_cluster_block_errors_are_one_line(cluster, message, tmp_path, capsys):
    from conftest import one_line_exit_2

    path = two_entry_series(tmp_path)
    series = yaml.safe_load(path.read_text())
    series["cluster"] = cluster
    path.write_text(yaml.safe_dump(series, sort_keys=False))
    assert message in one_line_exit_2(["series", str(path), "--submit", "slurm", "--dry-run"], capsys)
