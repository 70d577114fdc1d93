"""The series runner: validation, plan, manifest, resume after a kill, re-runs after changes.

The runner's real logic runs; only its command factory is swapped (tests/fakes/series_runner.py)
for one that runs tests/fakes/stage.py, a stand-in that writes the outputs each stage would write,
records every call, and can hang (to be killed) or fail on request. `drive` runs it in this process
(the stand-in stages too); `drive(..., process=True)` and the kill / SIGTERM tests run it as a program
whose stages are subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, run_cli
from fakes.series_runner import run_in_process

from align.plumbing.errors import UserError
from align.series.runner import Runner
from align.series.spec import load_series
from align.series.stages import STAGES, selected_stages

FAKE_SERIES = REPO / "tests" / "fakes" / "series_runner.py"


def write_series(tmp_path: Path, series: dict) -> Path:
    import yaml

    path = tmp_path / "series.yaml"
    path.write_text(yaml.safe_dump(series, sort_keys=False))
    return path


def drive(tmp_path: Path, *args: str, env: dict | None = None, process: bool = False) -> subprocess.CompletedProcess:
    """The stand-in series on tmp_path/series.yaml: in this process (stages in-process too), or with `process`
    as a program whose stages are subprocesses (the runner's own executor, for the process boundary)."""
    calls = tmp_path / "calls.jsonl"
    calls.unlink(missing_ok=True)
    argv, env = [str(tmp_path / "series.yaml"), *args], {"FAKE_CALLS": str(calls), **(env or {})}
    if process:
        return run_cli(str(FAKE_SERIES), *argv, env=env, timeout=120)
    return run_in_process(argv, env)


def calls(tmp_path: Path) -> list[tuple[str, str]]:
    path = tmp_path / "calls.jsonl"
    if not path.exists():
        return []
    return [(c["entry"], c["stage"]) for c in map(json.loads, path.read_text().splitlines())]


def start_until_hung(tmp_path: Path, hang: str, **popen) -> tuple[subprocess.Popen, int]:
    """Start the series in the background until the stand-in stage `hang` (entry:stage) hangs;
    returns the runner's process and the hung stage's pid."""
    call_log = tmp_path / "calls.jsonl"
    env = dict(os.environ, PYTHONUNBUFFERED="1", FAKE_CALLS=str(call_log), FAKE_HANG=hang)
    proc = subprocess.Popen([sys.executable, str(FAKE_SERIES), str(tmp_path / "series.yaml")], cwd=REPO, env=env,
                            **popen)
    pid_file = Path(str(call_log) + ".pid")
    deadline = time.time() + 60
    while not pid_file.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert pid_file.exists(), f"the stand-in {hang} never started"
    time.sleep(0.2)  # the pid file is written just before the stage hangs
    return proc, int(pid_file.read_text())


def kill_stage(pid: int) -> None:
    """SIGKILL a hung stand-in stage (orphaned by its killed runner, so not ours to wait for) and wait until it is
    gone or a zombie: either way it no longer holds the run lock it inherited, and the next run may start."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state == "Z":
            return
        time.sleep(0.05)
    raise AssertionError(f"the stand-in stage {pid} outlived SIGKILL")


def manifest(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "out" / "manifest.json").read_text())["entries"]


ENTRY_STAGES = {("small-scratch", "sft"), ("small-scratch", "dpo"), ("small-scratch", "answer"),
                ("big-expanded", "base"), ("big-expanded", "sft"), ("big-expanded", "dpo"), ("big-expanded", "answer"),
                ("small-init", "base"), ("small-init", "sft"), ("small-init", "dpo"), ("small-init", "answer")}


# ---------------------------------------------------------------------------- validation

@pytest.mark.parametrize("mutate, message", [
    (lambda s: s.update(epochs=1), "top level: unknown key 'epochs'"),
    (lambda s: s["models"][0].update(lr=1), "models[0]: unknown key 'lr'"),
    (lambda s: s["models"][0].update(path="/nowhere/ckpt"), "checkpoint '/nowhere/ckpt' not found"),
    (lambda s: s["models"][1].update(name="small-scratch"), "duplicate name 'small-scratch'"),
    (lambda s: s["models"][0].update(path=None, init={"like": "small-init"}), "grow cycle"),
    (lambda s: s["models"][0].update(path="${ALIGN_TEST_UNSET_CKPT}"), "ALIGN_TEST_UNSET_CKPT is not set"),
    (lambda s: s["models"][0].update(path="<path to the 2B scratch checkpoint>"), "placeholder"),
    (lambda s: s["sft"].update(recipe="missing.yaml"), "sft.recipe: file 'missing.yaml' not found"),
    (lambda s: s["sft"].update(tokens="3e9"), "sft.tokens: expected a number"),
    (lambda s: s["models"][1]["grow"].update(method="magic"), "grow.method: expected fpi or aki"),
    (lambda s: s["models"][2].update(path="x/y"), "give exactly one of path, grow, init"),
    (lambda s: s["judge"].pop("model"), "judge: missing required key 'model'"),
])
def test_series_file_errors_name_the_key(study, mutate, message):
    tmp_path, series = study
    mutate(series)
    path = write_series(tmp_path, series)
    with pytest.raises(UserError) as err:
        load_series(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_bad_series_file_exits_2_with_one_line(study):
    tmp_path, series = study
    series["models"][1]["name"] = "small-scratch"
    write_series(tmp_path, series)
    result = drive(tmp_path, process=True)  # the program's stderr: one line
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "duplicate name" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() and calls(tmp_path) == []


def test_hub_ids_and_env_vars_are_accepted(study, monkeypatch):
    tmp_path, series = study
    monkeypatch.setenv("ALIGN_TEST_CKPT", str(tmp_path / "ckpt-small"))
    series["models"][0]["path"] = "${ALIGN_TEST_CKPT}"
    series["models"][2] = {"name": "hub", "size": "S", "construction": "x", "path": "someorg/some-model"}
    s = load_series(write_series(tmp_path, series))
    assert s.models[0].path == str(tmp_path / "ckpt-small") and s.models[2].path == "someorg/some-model"


def test_only_names_stages_of_the_table():
    assert selected_stages("prepare,grow,sft") == {"prepare", "base", "sft"}
    assert selected_stages(None) == {"prepare", *STAGES}
    with pytest.raises(UserError, match="--only: unknown stage 'trian'"):
        selected_stages("trian")


def test_judge_fingerprint_follows_what_changes_judgments(study):
    """Parallelism does not change a judgment, so it does not re-judge; the judge's prefill does."""
    tmp_path, series = study
    s = load_series(write_series(tmp_path, series))
    runner = Runner(s, selected_stages(None), ["small-init"], dry=True)
    judge = STAGES["judge"]
    before = runner.fingerprint(judge, "small-init", "answers-fp")
    s.judge.parallel = 64
    assert runner.fingerprint(judge, "small-init", "answers-fp") == before
    s.judge.prefill = "Rating: [["
    assert runner.fingerprint(judge, "small-init", "answers-fp") != before
    assert runner.fingerprint(judge, "small-init", "other-answers-fp") != before


# ---------------------------------------------------------------------------- runs

def test_full_run_then_rerun_skips_everything(study):
    tmp_path, series = study
    write_series(tmp_path, series)
    first = drive(tmp_path, process=True)  # stages as subprocesses: the runner's own executor and logs
    assert first.returncode == 0, first.stderr + first.stdout
    ran = calls(tmp_path)
    assert set(ran) - {("_series", "judge"), ("_series", "report"), ("_series", "prepare")} == ENTRY_STAGES
    assert len(ran) == len(set(ran)) + 1  # nothing ran twice (two prepare steps)
    assert ran.count(("_series", "judge")) == 1  # one judge call for all entries
    m = manifest(tmp_path)
    assert all(rec["state"] == "done" for stages in m.values() for rec in stages.values())
    assert "| small-init | x |" in first.stdout  # the table is printed
    assert (tmp_path / "out" / "big-expanded" / "sft.log").is_file()
    # the expanded entry's SFT starts from its grown base, its answers from its DPO output
    argv = {c["entry"] + c["stage"]: c["argv"]
            for c in map(json.loads, (tmp_path / "calls.jsonl").read_text().splitlines())}
    assert argv["big-expandedsft"][argv["big-expandedsft"].index("--model_name_or_path") + 1] == \
        str(tmp_path / "out" / "big-expanded" / "base")
    assert "--report_to" in argv["small-scratchsft"]

    again = drive(tmp_path)
    assert again.returncode == 0, again.stderr
    assert calls(tmp_path) == []
    assert "done, skipped" in again.stdout


def test_killed_mid_stage_resumes_without_redoing_finished_stages(study):
    tmp_path, series = study
    write_series(tmp_path, series)
    call_log = tmp_path / "calls.jsonl"
    proc, stage_pid = start_until_hung(tmp_path, "big-expanded:sft", stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoint = tmp_path / "out" / "big-expanded" / "sft" / "checkpoint-1"
    assert checkpoint.exists()
    os.killpg(proc.pid, signal.SIGKILL)  # the runner, then its stage: like a lost node
    proc.wait()
    kill_stage(stage_pid)
    m = manifest(tmp_path)
    assert m["big-expanded"]["sft"]["state"] == "running"
    assert m["small-scratch"]["answer"]["state"] == "done"
    finished_before = set(calls(tmp_path))

    result = drive(tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    rerun = calls(tmp_path)
    assert not (set(rerun) & (finished_before - {("big-expanded", "sft")}))  # nothing finished is redone
    sft_call = next(json.loads(line) for line in call_log.read_text().splitlines()
                    if json.loads(line)["stage"] == "sft")
    assert sft_call["entry"] == "big-expanded" and "--resume_from_checkpoint" in sft_call["argv"]
    assert checkpoint.exists()  # resumed, not wiped
    assert (tmp_path / "out" / "table.md").is_file()
    assert set(manifest(tmp_path)) >= {"small-scratch", "big-expanded", "small-init", "_series"}
    assert "small-scratch" in (tmp_path / "out" / "table.csv").read_text()


def test_sigterm_stops_the_stage_and_exits_130(study):
    tmp_path, series = study
    write_series(tmp_path, series)
    proc, stage_pid = start_until_hung(tmp_path, "small-scratch:dpo", stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "re-run the same command to resume" in err
    assert "Traceback" not in err
    with pytest.raises(ProcessLookupError):  # the stage went with the runner
        os.kill(stage_pid, 0)
    assert manifest(tmp_path)["small-scratch"]["dpo"]["state"] == "running"


def test_changed_recipe_reruns_exactly_its_dependents(study):
    tmp_path, series = study
    write_series(tmp_path, series)
    assert drive(tmp_path).returncode == 0

    # a per-entry DPO override: that entry's dpo, answer, its judgments and the report
    series["models"][2]["dpo"] = {"overrides": {"beta": 0.01}}
    write_series(tmp_path, series)
    result = drive(tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls(tmp_path) == [("small-init", "dpo"), ("small-init", "answer"), ("_series", "judge"),
                               ("_series", "report")]
    judge_argv = json.loads((tmp_path / "calls.jsonl").read_text().splitlines()[2])["argv"]
    assert [a for a in judge_argv if a.endswith(".jsonl") and "model_answer" in a] == \
        [str(tmp_path / "out" / "small-init" / "model_answer" / "small-init.jsonl")]
    judgments = [json.loads(line) for line in (tmp_path / "out" / "model_judgment" / "judgments.jsonl").open()]
    assert sum(r["model"] == "small-init" for r in judgments) == 6  # stale rows replaced, not duplicated

    # the SFT recipe file itself: every entry's sft and everything after it; no base is rebuilt
    (tmp_path / "sft.yaml").write_text((tmp_path / "sft.yaml").read_text() + "warmup_ratio: 0.1\n")
    assert drive(tmp_path).returncode == 0
    ran = calls(tmp_path)
    assert {s for _, s in ran} == {"sft", "dpo", "answer", "judge", "report"}
    assert len([c for c in ran if c[1] == "sft"]) == 3

    # a prepare step nothing reads: only itself; the data that SFT reads: all training after it
    series["prepare"][1]["command"].append("--v2")
    write_series(tmp_path, series)
    assert drive(tmp_path).returncode == 0
    assert calls(tmp_path) == [("_series", "prepare")]
    series["prepare"][0]["command"].append("--v2")
    write_series(tmp_path, series)
    assert drive(tmp_path).returncode == 0
    ran = calls(tmp_path)
    assert ran[0] == ("_series", "prepare") and len([c for c in ran if c[1] == "sft"]) == 3
    assert not [c for c in ran if c[1] == "base"]


def test_failed_stage_stops_its_entry_others_go_on(study):
    tmp_path, series = study
    write_series(tmp_path, series)
    result = drive(tmp_path, env={"FAKE_FAIL": "small-init:dpo"})
    assert result.returncode == 1
    assert "small-init: stage dpo failed (exit status 3)" in result.stderr
    assert str(tmp_path / "out" / "small-init" / "dpo.log") in result.stderr
    assert "stand-in failure" in result.stderr  # the log's tail is shown
    ran = calls(tmp_path)
    assert ("small-init", "answer") not in ran and ("big-expanded", "answer") in ran
    assert "big-expanded" in (tmp_path / "out" / "table.csv").read_text()
    assert manifest(tmp_path)["small-init"]["dpo"]["state"] == "failed"

    fixed = drive(tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert calls(tmp_path) == [("small-init", "dpo"), ("small-init", "answer"), ("_series", "judge"),
                               ("_series", "report")]


def test_only_and_models_select_work(study):
    tmp_path, series = study
    write_series(tmp_path, series)
    result = drive(tmp_path, "--only", "prepare,grow,sft", "--models", "big-expanded")
    assert result.returncode == 0, result.stderr  # what was asked is done (issue 32.4: was 1); dpo... not asked
    assert "not done (not selected by --only): big-expanded: dpo, answer, judge; report" in result.stdout
    assert set(calls(tmp_path)) == {("_series", "prepare"), ("big-expanded", "base"), ("big-expanded", "sft")}
    assert drive(tmp_path, "--models", "small-scratch").returncode == 0
    assert ("big-expanded", "sft") not in calls(tmp_path)


@pytest.mark.slow  # > 15 s: two dry runs (each counts parameters on torch's meta device) and a series run
def test_dry_run_prints_plan_and_estimates_and_runs_nothing(study):
    tmp_path, series = study
    write_series(tmp_path, series)
    result = drive(tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert calls(tmp_path) == [] and not (tmp_path / "out").exists()
    assert "big-expanded" in result.stdout and "pending" in result.stdout
    # N of the given 64-wide model: 1000*64 + 2*(2*64*64 + 2*64*32 + 3*64*128 + 128) + 64 = 138_048
    assert "small-scratch: N=1.38e+05" in result.stdout
    # D upper bound = 10 steps x 2 x 128 tokens; DPO counts chosen + rejected
    assert "sft D=2.56e+03 (upper bound)" in result.stdout and "dpo D=2.56e+03" in result.stdout
    assert drive(tmp_path).returncode == 0
    series["dpo"]["overrides"] = {"beta": 0.05}
    write_series(tmp_path, series)
    plan_text = drive(tmp_path, "--dry-run").stdout
    line = next(ln for ln in plan_text.splitlines() if ln.startswith("small-scratch"))
    header = next(ln for ln in plan_text.splitlines() if ln.startswith("entry"))
    cells = dict(zip(header.split(), line.split()))  # every cell here is one word
    assert (cells["base"], cells["cpt"], cells["sft"], cells["dpo"]) == ("given", "none", "done", "stale")


# ---------------------------------------------------------------------------- shipped series files

def test_study_series_needs_its_checkpoints_then_plans(tmp_path, monkeypatch):
    for var in [v for v in os.environ if v.startswith("ALIGN_CKPT_")]:
        monkeypatch.delenv(var)
    with pytest.raises(UserError, match="ALIGN_CKPT_2B_SCRATCH is not set"):
        load_series(REPO / "recipes/series/growth-vs-scratch.yaml")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({
        "vocab_size": 50257, "hidden_size": 2560, "intermediate_size": 8960, "num_hidden_layers": 22,
        "num_attention_heads": 20, "num_key_value_heads": 20, "head_dim": 128}))
    for size in ("2B", "4B", "8B"):
        monkeypatch.setenv(f"ALIGN_CKPT_{size}_SCRATCH", str(ckpt))
        monkeypatch.setenv(f"ALIGN_CKPT_{size}_EXPANDED", str(ckpt))
    monkeypatch.setenv("ALIGN_CKPT_8B_EXPANDED_FIXED", "someorg/8b-expanded-fixed")
    monkeypatch.setenv("ALIGN_SERIES_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("ALIGN_LAUNCHER", "slurm")
    series = load_series(REPO / "recipes/series/growth-vs-scratch.yaml")
    assert [(e.size, e.construction) for e in series.models][-1] == ("8B", "expanded-fixed-data")
    assert series.train["accelerate_config"] == "recipes/accelerate/zero3.yaml"  # ${VAR:-default}
    from align.series.estimate import estimate_rows

    rows = estimate_rows(series, ["2b-scratch", "8b-expanded-fixed-data"])
    assert rows[0].startswith("2b-scratch: N=2.") and "sft D=4.26e+08 (given)" in rows[0]
    assert "N=?" in rows[1]  # a hub id: no config offline
    argv = STAGES["sft"].command(series, "2b-scratch").argv
    assert argv[0] == "srun" and '--machine_rank "$SLURM_NODEID"' in " ".join(argv)
    assert argv[argv.index("--config_file") + 1] == "recipes/accelerate/zero3.yaml"
    assert argv[argv.index("--gradient_accumulation_steps") + 1] == "4"


def test_demo_series_is_valid():
    series = load_series(REPO / "recipes/demo/series.yaml")
    assert {e.size for e in series.models} == {"135M"} and len({e.construction for e in series.models}) >= 2
    assert "scratch" in {e.construction for e in series.models}
    assert series.judge.model.startswith("packaged:")
    judge_argv = STAGES["judge"].command(series, "smollm2-pretrained", resolve=False).argv
    assert judge_argv[judge_argv.index("--judge-prefill") + 1] == "Rating: [["
