"""Several judges in a series (`judge:` a list): each later judge judges what the first judged, into its
own file, and gets its own report (its table and its agreement with the first), with stand-in stages."""

from __future__ import annotations

import json

import pytest
from test_series import drive, manifest, write_series

from align.plumbing.errors import UserError
from align.series.spec import load_series

OPEN_JUDGE = {"name": "open", "model": "open-judge", "base_url": "http://127.0.0.1:9/v1"}


def _calls(tmp_path):
    path = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _two_judges(study):
    tmp_path, series = study
    series["judge"] = [series["judge"], OPEN_JUDGE]
    write_series(tmp_path, series)
    return tmp_path, series


def test_second_judge_gets_its_judgments_and_its_own_report_then_is_skipped(study):
    tmp_path, _ = _two_judges(study)
    out = tmp_path / "out"
    first = drive(tmp_path)
    assert first.returncode == 0, first.stderr + first.stdout
    judge_files = [c["argv"][c["argv"].index("--output-file") + 1] for c in _calls(tmp_path) if c["stage"] == "judge"]
    assert judge_files == [str(out / "model_judgment" / "judgments.jsonl"),
                           str(out / "model_judgment" / "open" / "judgments.jsonl")]
    # the open judge judged every entry the first judged
    rows = (out / "model_judgment/open/judgments.jsonl").read_text().splitlines()
    judged = {json.loads(line)["model"] for line in rows}
    assert judged == {"small-scratch", "big-expanded", "small-init"}
    report = next(c["argv"] for c in _calls(tmp_path) if c["stage"] == "report" and "judges" in str(c["argv"]))
    inputs = report[report.index("--input-file") + 1:report.index("--answer-file")]
    assert inputs == judge_files[::-1]  # its own table first, the reference judge's for the agreement
    assert report[report.index("--out-dir") + 1] == str(out / "judges" / "open")
    assert (out / "judges" / "open" / "table.md").is_file() and (out / "table.md").is_file()
    assert f"report:open: {out / 'judges/open/table.md'}" in first.stdout
    assert {"judge:open", "report:open"} <= {k for k, v in manifest(tmp_path)["_series"].items()
                                             if v["state"] == "done"}

    again = drive(tmp_path)
    assert again.returncode == 0 and _calls(tmp_path) == [], again.stderr

    # its judgments lost: only its judge and its report run again, nothing of the first judge
    (out / "model_judgment" / "open" / "judgments.jsonl").unlink()
    third = drive(tmp_path)
    assert third.returncode == 0, third.stderr
    assert [(c["stage"], c["argv"][c["argv"].index("--out-dir" if c["stage"] == "report" else "--output-file") + 1])
            for c in _calls(tmp_path)] == [("judge", str(out / "model_judgment/open/judgments.jsonl")),
                                           ("report", str(out / "judges/open"))]


def test_dry_run_lists_each_later_judge_stage(study):
    tmp_path, _ = _two_judges(study)
    plan = drive(tmp_path, "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "judge:open: pending" in plan.stdout and "report:open: pending" in plan.stdout
    assert _calls(tmp_path) == []


def test_only_judge_selects_every_judge_and_names_the_reports_not_done(study):
    tmp_path, _ = _two_judges(study)
    run = drive(tmp_path, "--only", "prepare,base,sft,dpo,answer,judge")
    assert run.returncode == 0, run.stderr  # every stage asked for is done (issue 32.4: was 1)
    assert [c["stage"] for c in _calls(tmp_path)].count("judge") == 2
    assert "report:open: not done and not selected" in run.stdout
    assert "not done (not selected by --only): report, report:open" in run.stdout  # neither report is done


@pytest.mark.parametrize("judges, message", [
    ([], "judge: expected a mapping or a non-empty list"),
    ([{"model": "a"}, {"model": "a"}], "two judges of the list have the same model 'a'"),
    ([{"model": "a"}, {"model": "b", "name": "../x"}], "judge[1].name: expected letters"),
    ([{"model": "a", "name": "x"}, {"model": "b", "name": "x"}], "judge[1].name: 'x' names two judges"),
    ([{"model": "a"}, {"model": "b", "mode": "pairwise"}], "every judge of the list needs the same mode"),
    ([{"model": "a"}, {"model": "b", "colour": 1}], "judge[1]: unknown key 'colour'"),
])
def test_bad_judge_list_names_the_key(study, judges, message):
    tmp_path, series = study
    series["judge"] = judges
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_series(write_series(tmp_path, series))


def test_later_judges_are_named_by_default(study):
    tmp_path, series = study
    series["judge"] = [{"model": "a"}, {"model": "b"}]
    loaded = load_series(write_series(tmp_path, series))
    assert loaded.judge.model == "a" and [j.name for j in loaded.more_judges] == ["judge-2"]


def test_pairwise_mode_later_judge_runs_the_matches_whose_sides_were_judged(tmp_path, monkeypatch):
    from align.series import judge_stages
    from align.series.stages import output_path, stage_table

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"model_type": "llama"}))
    for name in ("sft.yaml", "dpo.yaml"):
        (tmp_path / name).write_text("learning_rate: 1.0e-5\nmax_steps: 1\n")
    series = load_series(write_series(tmp_path, {
        "output_dir": str(tmp_path / "out"), "train": {"launcher": "python"},
        "sft": {"recipe": str(tmp_path / "sft.yaml")},
        "dpo": {"recipe": str(tmp_path / "dpo.yaml")},
        "judge": [{"model": "gpt-4", "mode": "pairwise"},
                  {**OPEN_JUDGE, "mode": "pairwise", "pair_prefill": "[["}],
        "models": [{"name": n, "size": s, "construction": c, "path": str(ckpt)} for n, s, c in
                   [("s-scratch", "1B", "scratch"), ("s-grown", "1B", "expanded"), ("b-scratch", "2B", "scratch"),
                    ("b-grown", "2B", "expanded")]]}))
    judge = series.more_judges[0]
    # b-scratch's judgments are not complete: the b match waits
    monkeypatch.setattr(judge_stages, "judged_entries", lambda s: ["s-scratch", "s-grown", "b-grown"])
    single, pair, report = judge_stages.later_judge_stages(series, judge)
    assert [single.name, pair.name, report.name] == ["judge:open", "pairwise:open", "report:open"]
    # every judge in the one table, after the first judge's report; the later report waits for its judgments
    assert list(stage_table(series))[-4:] == ["report", "judge:open", "pairwise:open", "report:open"]
    assert report.needs == ("judge:open", "pairwise:open")
    argv = pair.command(series, None).args
    assert [tuple(argv[i + 1:i + 3]) for i, a in enumerate(argv) if a == "--pair"] == [("s-grown", "s-scratch")]
    assert argv[argv.index("--judge-model") + 1] == "open-judge"
    assert argv[argv.index("--judge-prefill") + 1] == "[["
    assert argv[argv.index("--output-file") + 1] == str(tmp_path / "out/model_judgment/open/judgments_pair.jsonl")
    assert single.command(series, None).args.count("--answer-file") == 1
    assert single.verify(series, None) is None and pair.verify(series, None) is None  # nothing judged yet
    files = [judge_stages.judgment_file(series, judge, k) for k in ("judge", "pairwise")] + \
        [output_path(series, None, k) for k in ("judge", "pairwise")]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("")
    argv = report.command(series, None).args
    assert argv[argv.index("--input-file") + 1:argv.index("--answer-file")] == [str(f) for f in files]
    assert report.inputs(series, None) == [str(f) for f in files]  # their content is in its fingerprint


def test_later_judge_for_real_its_report_has_its_agreement_with_the_first(study):
    """The real `align mtbench judge` (both judges behind the fake judge server, which rates each prompt the
    same way) and the real `align mtbench report` on the stand-in series' answers: the later judge's report
    is its own table plus its agreement with the first judge, 100% here."""
    from conftest import run_cli
    from fakes.judge_server import FakeJudgeServer

    from align.series.judge_stages import later_judge_stages
    from align.series.stages import STAGES

    tmp_path, series = study
    with FakeJudgeServer() as server:
        series["judge"] = [{**series["judge"], "base_url": server.base_url},
                           {**OPEN_JUDGE, "base_url": server.base_url}]
        series["report"] = {"extra_args": ["--bootstrap", "100"]}
        write_series(tmp_path, series)
        drive(tmp_path, "--only", "prepare,base,sft,dpo,answer")  # stand-in answers for every entry
        loaded = load_series(tmp_path / "series.yaml")
        names = [e.name for e in loaded.models]
        later = later_judge_stages(loaded, loaded.more_judges[0])
        with pytest.raises(UserError, match="judge:open: nothing to judge yet"):
            later[0].command(loaded, None)
        for stage, options in [(STAGES["judge"], {"batch": names}), *((st, {}) for st in later)]:
            stage.before_run(loaded, None)  # as the runner does, right before it runs the stage (the study table)
            done = run_cli(*stage.command(loaded, None, **options).argv[1:], timeout=300)  # once the last is done
            assert done.returncode == 0, done.stderr[-2000:]
    assert later[0].verify(loaded, None) is not None and later[1].verify(loaded, None) is not None
    summary = json.loads((tmp_path / "out/judges/open/summary.json").read_text())
    assert summary["agreement"]["judges"] == ["open-judge", "stand-in-judge"]
    assert summary["agreement"]["turn_1"]["with_ties"]["ratio"] == 1.0
    assert summary["judge"] == "open-judge"  # the table is the later judge's
    assert "## Judge agreement (open-judge vs stand-in-judge)" in (tmp_path / "out/judges/open/table.md").read_text()
