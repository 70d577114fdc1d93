"""The stage table as kinds (issue 30): every stage of a series, the later judges' included, in one table;
each stage's resources kind (what `--submit slurm` asks for); an explicit skip with its reason; and no
file written while a command is built (the report's pretraining sources are written just before it runs)."""

from __future__ import annotations

from test_series import write_series

from align.series.pretraining import curve_sources_path
from align.series.spec import load_series
from align.series.stages import STAGES, selected_stages, stage_table
from align.series.walk import Runner


def test_one_table_per_series_in_order_with_each_stages_resources(study):
    tmp_path, spec = study
    spec["judge"] = [spec["judge"], {"model": "open-judge", "name": "open"}]
    table = stage_table(load_series(write_series(tmp_path, spec)))
    assert list(table) == ["prepare:data", "prepare:notes", "base", "cpt", "base_eval", "sft", "dpo", "heldout_sft",
                           "heldout_dpo", "answer", "judge", "pairwise", "report", "judge:open", "report:open"]
    assert {name: stage.resources for name, stage in table.items()} == {
        "prepare:data": "judge", "prepare:notes": "judge", "base": "grow", "cpt": "training",
        "base_eval": "eval", "sft": "training", "dpo": "training", "heldout_sft": "eval", "heldout_dpo": "eval",
        "answer": "answer", "judge": "judge", "pairwise": "judge", "report": "judge", "judge:open": "judge",
        "report:open": "judge"}
    assert table["report:open"].needs == ("judge:open",) and not table["report"].needs


def test_a_skip_says_why(study):
    tmp_path, spec = study
    series = load_series(write_series(tmp_path, spec))
    assert STAGES["base"].skip(series, "small-scratch").label == "given"   # `path:` gives its base
    assert STAGES["base"].skip(series, "small-init") is None
    assert STAGES["cpt"].skip(series, "small-init").label == "none"        # no `cpt:` block: absent
    assert STAGES["cpt"].skip(series, "small-init").output is None         # its upstream passes through
    assert STAGES["base_eval"].skip(series, "small-init").label == "off"   # no `eval:` block
    assert STAGES["pairwise"].skip(series, "small-init").label == "not needed"  # single mode: no match


def test_building_the_report_command_writes_nothing_running_it_writes_its_sources(study):
    tmp_path, spec = study
    (tmp_path / "cpt.yaml").write_text("max_length: 64\nper_device_train_batch_size: 2\nbf16: false\n")
    spec["cpt"] = {"recipe": str(tmp_path / "cpt.yaml")}
    spec["models"][2]["cpt"] = {"tokens": 5000}
    series = load_series(write_series(tmp_path, spec))
    report = STAGES["report"]
    sources = curve_sources_path(series)
    assert sources == tmp_path / "out" / "pretraining.json"
    args = report.command(series, None).args
    Runner(series, selected_stages(None), [e.name for e in series.models], dry=True).fingerprint(
        report, None, "upstream")
    assert args[args.index("--pretraining") + 1] == str(sources) and not sources.exists()
    report.before_run(series, None)
    assert sources.is_file()


def test_the_report_reads_the_study_table_the_runner_writes(study):
    """The runner writes <output_dir>/study.json (entries, sizes, constructions, baselines) just before a report
    runs and hands it over with --study; the report never gets the series file."""
    import json

    from test_series import drive

    tmp_path, spec = study
    write_series(tmp_path, spec)
    assert drive(tmp_path).returncode == 0
    report = next(json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()
                  if json.loads(line)["stage"] == "report")["argv"]
    assert "--series" not in report and report[report.index("--study") + 1] == str(tmp_path / "out" / "study.json")
    table = json.loads((tmp_path / "out" / "study.json").read_text())
    assert table == {"entries": [
        {"name": "small-scratch", "size": "S", "construction": "scratch", "baseline": None},
        {"name": "big-expanded", "size": "B", "construction": "expanded", "baseline": None},
        {"name": "small-init", "size": "S", "construction": "init", "baseline": "small-scratch"}]}


def test_judge_eval_answer_are_typed_configs_with_their_defaults(study):
    """`judge:`, `eval:`, `answer:` load into dataclasses (spec_blocks.py holds every default); a later judge is named
    judge-<position> unless named."""
    from align.series.spec import AnswerConfig, EvalConfig, JudgeConfig

    tmp_path, spec = study
    spec["judge"] = [spec["judge"], {"model": "open-judge"}]
    spec["eval"] = {"heldout_rows": None}
    series = load_series(write_series(tmp_path, spec))
    assert series.judge == JudgeConfig(model="stand-in-judge", base_url="http://127.0.0.1:9/v1", max_tokens=16,
                                       name="judge-1")
    assert (series.judge.mode, series.judge.controls, series.judge.extra_args) == ("single", True, [])
    assert series.more_judges == [JudgeConfig(model="open-judge", name="judge-2")]
    assert series.answer == AnswerConfig(question_begin=0, question_end=3, max_new_token=8)
    assert series.eval == EvalConfig() and series.eval.heldout_rows == 1000 and not series.eval.allow_code
    assert series.eval.sft_data == "HuggingFaceH4/ultrachat_200k"
    assert series.eval.dpo_data == "HuggingFaceH4/ultrafeedback_binarized"
