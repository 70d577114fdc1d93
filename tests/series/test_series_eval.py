"""The judge-free stages of a series (`eval:`): `align eval` on each base checkpoint before SFT, `align heldout`
(sft and dpo) on each final model; fingerprinted, skipped when done, reset before a fresh start, side stages
that never re-run training, and read by the report (stand-in stage program: tests/fakes/stage.py)."""

from __future__ import annotations

import json

import pytest
from conftest import chat_rows, write_jsonl
from test_series import calls, drive, manifest, write_series

from align.plumbing.errors import UserError
from align.series.spec import load_series
from align.series.stages import STAGES

ENTRIES = ("small-scratch", "big-expanded", "small-init")


# a local multiple-choice task as lm-eval reads it (the series checks every task before anything trains)
MC_TASK = """task: mc
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
"""


def write_mc_task(tasks, extra: str = "") -> None:
    data = write_jsonl(tasks / "mc.jsonl", [{"question": "2+2?", "choices": ["3", "4"], "label": 1}])
    (tasks / "mc.yaml").write_text(MC_TASK.format(data=data) + extra)


def with_eval(tmp_path, series, **extra) -> dict:
    tasks = tmp_path / "tasks"
    tasks.mkdir(exist_ok=True)
    write_mc_task(tasks)
    series["eval"] = {"tasks": ["mc"], "include_path": [str(tasks)], "limit": 12, "heldout_rows": 16,
                      "sft_data": str(write_jsonl(tmp_path / "chat_test.jsonl", chat_rows(2))),
                      "dpo_data": str(tmp_path / "prefs.jsonl"), **extra}
    write_series(tmp_path, series)
    return series


def test_eval_stages_run_in_place_and_feed_the_report(study):
    tmp_path, series = study
    with_eval(tmp_path, series)
    result = drive(tmp_path)
    assert result.returncode == 0, result.stderr
    ran = calls(tmp_path)
    for entry in ENTRIES:
        mine = [stage for name, stage in ran if name == entry]
        assert mine.index("base_eval") < mine.index("sft")  # the base model, before post-training
        assert mine.index("dpo") < mine.index("heldout_sft") < mine.index("heldout_dpo") < mine.index("answer")
    argv = {(json.loads(line)["entry"], json.loads(line)["stage"]): json.loads(line)["argv"]
            for line in (tmp_path / "calls.jsonl").read_text().splitlines()}
    out = tmp_path / "out"
    assert argv[("small-scratch", "base_eval")][:3] == ["eval", "--model-path", str(tmp_path / "ckpt-small")]
    assert argv[("small-init", "base_eval")][2] == str(out / "small-init" / "base")
    assert ["--tasks", "mc", "--include-path", str(tmp_path / "tasks")] == argv[("small-init", "base_eval")][5:9]
    dpo = argv[("big-expanded", "heldout_dpo")]
    assert dpo[dpo.index("--model-path") + 1] == str(out / "big-expanded" / "dpo")
    assert dpo[dpo.index("--ref-model-path") + 1] == str(out / "big-expanded" / "sft")  # DPO's reference
    assert dpo[dpo.index("--rows") + 1] == "16"
    report = argv[("_series", "report")]
    for entry in ENTRIES:
        assert f"{entry}={out / entry / 'base_eval'}" in report
        assert f"{entry}={out / entry / 'heldout_sft'}" in report and f"{entry}={out / entry / 'heldout_dpo'}" in report
    assert manifest(tmp_path)["small-init"]["heldout_dpo"]["state"] == "done"

    assert drive(tmp_path).returncode == 0
    assert calls(tmp_path) == []  # everything current: skipped


def test_changed_eval_settings_rerun_only_the_measures_and_the_report(study):
    tmp_path, series = study
    with_eval(tmp_path, series)
    assert drive(tmp_path).returncode == 0

    series["eval"]["limit"] = 20
    write_series(tmp_path, series)
    assert drive(tmp_path).returncode == 0
    assert sorted(calls(tmp_path)) == sorted([(e, "base_eval") for e in ENTRIES] + [("_series", "report")])

    series["eval"]["heldout_rows"] = 8  # both held-out stages; no training, no answers, no judging
    write_series(tmp_path, series)
    assert drive(tmp_path).returncode == 0
    assert {s for _, s in calls(tmp_path)} == {"heldout_sft", "heldout_dpo", "report"}

    write_mc_task(tmp_path / "tasks", "description: changed\n")  # a task file's content
    assert drive(tmp_path).returncode == 0
    assert sorted(calls(tmp_path)) == [(e, "base_eval") for e in sorted(ENTRIES)]  # (same results: no new report)


def test_failed_measure_stops_nothing_else_and_is_redone_alone(study):
    tmp_path, series = study
    with_eval(tmp_path, series)
    result = drive(tmp_path, env={"FAKE_FAIL": "small-init:base_eval"})
    assert result.returncode == 1 and "small-init: stage base_eval failed (exit status 3)" in result.stderr
    assert ("small-init", "answer") in calls(tmp_path)  # the chain went on
    assert manifest(tmp_path)["small-init"]["base_eval"]["state"] == "failed"
    assert drive(tmp_path).returncode == 0
    assert calls(tmp_path) == [("small-init", "base_eval"), ("_series", "report")]


def test_fresh_start_removes_stale_measures(study):
    """A changed setting whose run then fails must not leave the previous result verifying as done."""
    tmp_path, series = study
    with_eval(tmp_path, series)
    assert drive(tmp_path).returncode == 0
    folder = tmp_path / "out" / "small-init" / "heldout_sft"
    (folder / "notes.txt").write_text("mine")
    series["eval"]["heldout_rows"] = 4
    write_series(tmp_path, series)
    assert drive(tmp_path, env={"FAKE_FAIL": "small-init:heldout_sft"}).returncode == 1
    assert not (folder / "heldout.json").exists() and not (folder / "heldout.run_card.json").exists()
    assert (folder / "notes.txt").read_text() == "mine"  # only what the stage writes is removed
    assert manifest(tmp_path)["small-init"]["heldout_sft"]["state"] == "failed"


def test_without_an_eval_block_the_stages_are_off(study):
    tmp_path, series = study
    write_series(tmp_path, series)
    assert drive(tmp_path).returncode == 0
    assert not [c for c in calls(tmp_path) if c[1] in ("base_eval", "heldout_sft", "heldout_dpo")]
    plan = drive(tmp_path, "--dry-run").stdout
    assert "base_eval" in plan and "heldout_dpo" in plan and "off" in plan


def test_dry_run_shows_the_measures_pending(study):
    tmp_path, series = study
    with_eval(tmp_path, series)
    result = drive(tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[1].split()
    assert header.index("base") < header.index("base_eval") < header.index("sft")
    assert header.index("dpo") < header.index("heldout_sft") < header.index("heldout_dpo") < header.index("answer")
    assert calls(tmp_path) == []


@pytest.mark.parametrize("block, message", [
    ({"limt": 3}, "eval: unknown key 'limt'"),
    ({"limit": 0}, "eval.limit: expected a whole number of at least 1"),
    ({"heldout_rows": "ten"}, "eval.heldout_rows: expected a whole number"),
    ({"tasks": "mc"}, "eval.tasks: expected a non-empty list"),
    ({"include_path": ["/nowhere/tasks"]}, "eval.include_path[0]: folder '/nowhere/tasks' not found"),
])
def test_eval_block_errors_name_the_key(study, block, message):
    tmp_path, series = study
    series["eval"] = block
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_series(write_series(tmp_path, series))


def test_heldout_beta_is_the_dpo_recipes(study):
    tmp_path, series = study
    (tmp_path / "dpo.yaml").write_text((tmp_path / "dpo.yaml").read_text() + "beta: 0.05\n")
    s = load_series(write_series(tmp_path, with_eval(tmp_path, series)))
    args = STAGES["heldout_dpo"].command(s, "small-init").args
    assert args[args.index("--beta") + 1] == "0.05"
    series["dpo"]["overrides"] = {"beta": 0.2}
    s = load_series(write_series(tmp_path, series))
    args = STAGES["heldout_dpo"].command(s, "small-init").args
    assert args[args.index("--beta") + 1] == "0.2"


def test_a_reset_refuses_a_linked_or_foreign_lm_eval_and_removes_only_what_the_stage_writes(tmp_path):
    """Issue 29.2: a fresh start removes the stage's own files; an `lm_eval` that is a symbolic link (or a
    file) is not ours: refused in one line, its target untouched, nothing removed."""
    from types import SimpleNamespace

    from align.plumbing.errors import UserError
    from align.series.eval_stages import MEASURES, eval_dir

    series = SimpleNamespace(output_dir=tmp_path / "series")
    out = eval_dir(series, "small", "base_eval")
    (out / "lm_eval").mkdir(parents=True)
    (out / "lm_eval" / "results.json").write_text("{}")
    for name in ("eval.run_card.json", "base_eval.json", "notes.txt"):
        (out / name).write_text("{}")
    MEASURES["base_eval"].reset(series, "small")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]

    target = tmp_path / "lm-evaluation-harness"
    (target / "lm_eval").mkdir(parents=True)
    (target / "lm_eval" / "__init__.py").write_text("")
    (out / "lm_eval").symlink_to(target / "lm_eval")
    (out / "base_eval.json").write_text("{}")
    with pytest.raises(UserError, match="lm_eval: a symbolic link, not what base_eval writes"):
        MEASURES["base_eval"].reset(series, "small")
    assert (target / "lm_eval" / "__init__.py").is_file() and (out / "lm_eval").is_symlink()
    assert (out / "base_eval.json").is_file()  # checked before anything is removed
