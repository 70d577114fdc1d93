"""`align series --dry-run` checks what a run would stop on, before anything trains (issue 29.9): files an
earlier stage of the same run would make (a prepare step's questions) are to-be-made, not missing."""

from __future__ import annotations

import pytest
from conftest import REPO, run_cli, write_jsonl
from test_series import calls, drive
from test_series_eval import with_eval

from align.series.runner import Runner
from align.series.spec import load_series
from align.series.stages import selected_stages


def demo_copy(tmp_path, name: str):
    """A shipped demo series file with its outputs in tmp_path (a fresh checkout: nothing prepared yet)."""
    text = (REPO / "recipes" / "demo" / name).read_text(encoding="utf-8")
    lines = [f"output_dir: {tmp_path / 'out'}" if ln.startswith("output_dir:") else ln for ln in text.splitlines()]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["series.yaml", "staged.yaml"])
def test_dry_run_plans_a_fresh_demo_whose_questions_a_prepare_step_makes(tmp_path, monkeypatch, name):
    monkeypatch.chdir(REPO)  # the demo's recipe paths are relative to the checkout
    series = load_series(demo_copy(tmp_path, name))
    runner = Runner(series, selected_stages(None), [e.name for e in series.models], dry=True)
    assert runner.run() == 0  # was: "out/mt_bench: no question.jsonl" (the questions step had not run)
    assert runner.status[("_series", "report")] == "pending"
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # > 15 s: two CLI dry runs (TRL's recipe checks, lm-eval's task index)
@pytest.mark.parametrize("name", ["series.yaml", "staged.yaml"])
def test_align_series_dry_run_of_a_fresh_demo_exits_0(tmp_path, name):
    result = run_cli("-m", "align.cli", "series", str(demo_copy(tmp_path, name)), "--dry-run")
    assert result.returncode == 0, result.stderr  # was 2: "no question.jsonl"
    assert "compute estimates" in result.stdout and not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- the measures' inputs (eval:)

@pytest.mark.parametrize("block, message", [
    ({"tasks": ["no_such_task"]}, "eval.tasks: --tasks: unknown lm-eval task(s) no_such_task"),
    ({"sft_data": "missing.jsonl"}, "eval.sft_data: missing.jsonl: file not found"),
    ({"dpo_data": "missing.jsonl"}, "eval.dpo_data: missing.jsonl: file not found"),
    ({"heldout_text": "missing.jsonl"}, "eval.heldout_text: --heldout-text missing.jsonl: file not found"),
])
def test_dry_run_refuses_eval_inputs_that_would_fail_after_training(study, block, message):
    tmp_path, series = study
    with_eval(tmp_path, series, **block)
    result = drive(tmp_path, "--dry-run")
    assert result.returncode == 2, result.stderr  # was 0: it failed only after SFT and DPO had trained
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {tmp_path / 'series.yaml'}: {message}"), errors


def with_helper(tmp_path, series, **block):
    """The stand-in series whose task runs a Python helper from its folder (lm-eval's `!function`)."""
    with_eval(tmp_path, series, **block)
    (tmp_path / "tasks" / "helper.py").write_text("def docs(dataset):\n    return dataset\n")
    mc = tmp_path / "tasks" / "mc.yaml"
    mc.write_text(mc.read_text() + "process_docs: !function helper.docs\n")
    return mc


def test_dry_run_refuses_task_code_not_allowed_and_a_task_file_that_does_not_parse(study):
    tmp_path, series = study
    mc = with_helper(tmp_path, series)
    result = drive(tmp_path, "--dry-run")
    assert result.returncode == 2 and f"eval.tasks: {mc}:9: !function helper.docs" in result.stderr
    assert "then pass eval.allow_code: true" in result.stderr
    with_helper(tmp_path, series, allow_code=True)
    assert drive(tmp_path, "--dry-run").returncode == 0
    mc.write_text("task: [mc\n")
    result = drive(tmp_path, "--dry-run")
    assert result.returncode == 2 and f"eval.tasks: {mc}" in result.stderr


def test_a_real_run_refuses_them_before_anything_runs(study):
    tmp_path, series = study
    with_eval(tmp_path, series, dpo_data=str(write_jsonl(tmp_path / "bad.jsonl", [{"chosen": "a"}])))
    result = drive(tmp_path)
    assert result.returncode == 2 and calls(tmp_path) == []
    assert "eval.dpo_data: --data " in result.stderr and "no usable dpo rows of 1" in result.stderr
    (tmp_path / "bad.jsonl").write_text('{"chosen": [\n')
    result = drive(tmp_path, "--only", "prepare,heldout_dpo")
    assert result.returncode == 2 and f"{tmp_path / 'bad.jsonl'}:1: not valid JSON" in result.stderr


def test_eval_files_a_prepare_step_makes_are_checked_once_it_has_run(study):
    tmp_path, series = study
    made = "{output_dir}/data/chat.jsonl"  # written by the stand-in prepare step (not a chat test split)
    with_eval(tmp_path, series, sft_data=made)
    plan = drive(tmp_path, "--dry-run")
    assert plan.returncode == 0, plan.stderr  # to be made: not missing
    result = drive(tmp_path, "--only", "prepare")  # the prepare job of a chain: its exit holds back the rest
    assert result.returncode == 2 and calls(tmp_path) == [("_series", "prepare")] * 2
    assert f"eval.sft_data: {tmp_path / 'out' / 'data' / 'chat.jsonl'}:1: not valid JSON" in result.stderr
    result = drive(tmp_path)
    assert result.returncode == 2 and calls(tmp_path) == []  # prepared (skipped), and nothing trained
    assert f"eval.sft_data: {tmp_path / 'out' / 'data' / 'chat.jsonl'}:1: not valid JSON" in result.stderr
