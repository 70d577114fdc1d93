"""Output paths of the judge-side commands (issue 29 item 1): `--out` is held to `--answer-file`'s rule,
an input of the same run or a file of another kind is refused (one line, exit 2) before anything is written."""

from __future__ import annotations

import json

import pytest
from conftest import one_line_exit_2, write_jsonl
from test_trust_agreement import write_human_file, write_pair_file

from align.cli import main
from judges.answers.subset import write_subset


@pytest.fixture
def judge_files(tmp_path):
    return write_pair_file(tmp_path / "gpt-4_pair.jsonl"), write_human_file(tmp_path / "human.json")


@pytest.mark.parametrize("which", ["a", "b"])
def test_agreement_out_that_is_an_input_is_refused(which, judge_files, capsys):
    pair, human = judge_files
    target = pair if which == "a" else human
    before = target.read_bytes()
    err = one_line_exit_2(["mtbench", "agreement", str(pair), str(human), "--out", str(target)], capsys)
    assert f"--out {target} is also this run's input {which.upper()}" in err, err
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["gpt-4_pair.jsonl", "human.json"]  # no lock left


@pytest.mark.parametrize("content, holds", [
    (json.dumps({"question_id": 81, "model": "x", "judge": ["gpt-4", "single-v1"], "score": 5, "turn": 1}) + "\n",
     "a single-answer judgment record"),
    (json.dumps([{"question_id": 81, "model_a": "x", "model_b": "y", "winner": "tie", "judge": "h", "turn": 1}]),
     "a list of votes"),
    ('{"messages": []}\n', "a training data record"),
    ("results: 1\n", "something that is not JSON"),
])
def test_agreement_out_of_another_kind_is_refused(content, holds, judge_files, tmp_path, capsys):
    pair, human = judge_files
    target = tmp_path / "other.json"
    target.write_text(content)
    err = one_line_exit_2(["mtbench", "agreement", str(pair), str(human), "--out", str(target)], capsys)
    assert f"--out {target}: holds {holds}, not an earlier agreement JSON" in err, err
    assert target.read_text() == content


def test_agreement_out_replaces_its_own_earlier_output(judge_files, tmp_path, capsys):
    pair, human = judge_files
    out = tmp_path / "agreement.json"
    out.write_text("")  # an empty file holds nothing to lose
    assert main(["mtbench", "agreement", str(pair), str(human), "--out", str(out)]) == 0
    first = json.loads(out.read_text())
    assert main(["mtbench", "agreement", str(human), str(human), "--out", str(out),
                 "--judge-prefix-a", "expert", "--judge-prefix-b", "expert"]) == 0
    second = json.loads(out.read_text())
    assert first["mode"] == "between two judges" and second["mode"] == "within one pool"


def test_subset_out_holding_other_files_is_refused(tmp_path, capsys):
    out = tmp_path / "mt_bench"
    data = write_jsonl(out / "question.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}])
    before = data.read_bytes()
    err = one_line_exit_2(["mtbench", "subset", "--out", str(out)], capsys)
    assert f"--out's question.jsonl: {data}:1: a training data record" in err, err
    assert data.read_bytes() == before and sorted(p.name for p in out.iterdir()) == ["question.jsonl"]
    write_subset(tmp_path / "again", per_category=1)
    write_subset(tmp_path / "again", per_category=2)  # an earlier subset's files are its own: replaced


def test_subset_into_its_own_source_is_refused(tmp_path):
    from align.plumbing.errors import UserError

    source = tmp_path / "data" / "mt_bench"  # FastChat's layout: judge_prompts.jsonl beside mt_bench/
    write_subset(source, per_category=2)
    (source / "judge_prompts.jsonl").rename(source.parent / "judge_prompts.jsonl")
    before = (source / "question.jsonl").read_bytes()
    with pytest.raises(UserError, match="is also this run's input the MT-Bench data"):
        write_subset(source, per_category=1, source=source)
    assert (source / "question.jsonl").read_bytes() == before
