"""The series' judge settings: controls on by default, `mode: pairwise` against the same-size scratch entry,
and a report that reads both judgment files and the answers."""

from __future__ import annotations

import json

import pytest
import yaml

from align.plumbing.errors import UserError
from align.series import spec
from align.series.stages import STAGES, output_path, scratch_baseline


def _series(tmp_path, **judge):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir(exist_ok=True)
    (ckpt / "config.json").write_text(json.dumps({"model_type": "llama"}))
    for name in ("sft.yaml", "dpo.yaml"):
        (tmp_path / name).write_text("learning_rate: 1.0e-5\nmax_steps: 1\n")
    data = {"name": "s", "output_dir": str(tmp_path / "out"), "train": {"launcher": "python"},
            "sft": {"recipe": str(tmp_path / "sft.yaml")},
            "dpo": {"recipe": str(tmp_path / "dpo.yaml")},
            "judge": {"model": "gpt-4", "base_url": "http://127.0.0.1:9/v1", "prefill": "Rating: [[", **judge},
            "models": [{"name": "s-scratch", "size": "1B", "construction": "scratch", "path": str(ckpt)},
                       {"name": "s-grown", "size": "1B", "construction": "expanded", "path": str(ckpt)},
                       {"name": "b-scratch", "size": "2B", "construction": "scratch", "path": str(ckpt)},
                       {"name": "b-grown", "size": "2B", "construction": "expanded", "path": str(ckpt)},
                       {"name": "lonely", "size": "3B", "construction": "expanded", "path": str(ckpt)}]}
    path = tmp_path / "series.yaml"
    path.write_text(yaml.safe_dump(data))
    return spec.load_series(str(path))


def _answer_files(series, names):
    files = []
    for name in names:
        path = output_path(series, name, "answer")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n")
        files.append(str(path))
    return files


def _args(series, stage, entry=None, batch=None):
    return STAGES[stage].command(series, entry, batch=batch).args


def test_controls_are_on_by_default_and_can_be_turned_off(tmp_path):
    argv = _args(_series(tmp_path), "judge", batch=["s-grown"])
    assert "--controls" in argv and argv[argv.index("--judge-prefill") + 1] == "Rating: [["
    assert "--controls" not in _args(_series(tmp_path, controls=False), "judge", batch=["s-grown"])


def test_pairwise_judges_each_entry_against_its_same_size_scratch(tmp_path):
    series = _series(tmp_path, mode="pairwise", pair_prefill="[[")
    assert [scratch_baseline(series, e.name) for e in series.models] == [None, "s-scratch", None, "b-scratch", None]
    argv = _args(series, "pairwise", batch=["s-grown", "b-grown"])
    assert argv[argv.index("--mode") + 1] == "pairwise-baseline"
    pairs = [tuple(argv[i + 1:i + 3]) for i, a in enumerate(argv) if a == "--pair"]
    assert pairs == [("s-grown", "s-scratch"), ("b-grown", "b-scratch")]
    assert argv[argv.index("--output-file") + 1] == str(output_path(series, None, "pairwise"))
    assert "--controls" not in argv and argv[argv.index("--judge-prefill") + 1] == "[["  # not "Rating: [["
    # entries without a match (scratch, no scratch of their size) have nothing to run
    _answer_files(series, ["s-scratch", "lonely"])
    pairwise = STAGES["pairwise"]
    assert pairwise.skip(series, "s-grown") is None
    assert pairwise.inputs(series, "s-grown") == [str(output_path(series, "s-scratch", "answer"))]
    skipped = pairwise.skip(_series(tmp_path), "s-grown")  # single mode: never a match
    assert skipped is not None and skipped.label == "not needed" and skipped.output is not None


def test_report_reads_both_judgment_files_and_the_answers(tmp_path):
    series = _series(tmp_path, mode="pairwise")
    files = _answer_files(series, ["s-scratch", "s-grown"])
    for stage in ("judge", "pairwise"):
        output_path(series, None, stage).parent.mkdir(parents=True, exist_ok=True)
        output_path(series, None, stage).write_text("")
    argv = _args(series, "report")
    assert argv[argv.index("--input-file") + 1:argv.index("--answer-file")] == \
        [str(output_path(series, None, "judge")), str(output_path(series, None, "pairwise"))]
    assert argv[argv.index("--answer-file") + 1:argv.index("--out-dir")] == files


@pytest.mark.parametrize("judge, message", [
    ({"mode": "pairwise-all"}, "judge.mode: expected one of single, pairwise"),
    ({"controls": "yes"}, "judge.controls: expected true or false"),
])
def test_bad_judge_settings_are_refused(tmp_path, judge, message):
    with pytest.raises(UserError, match=message):
        _series(tmp_path, **judge)
