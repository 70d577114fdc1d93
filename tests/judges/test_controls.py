"""The judge check: `<model>@mismatched` controls, the paired check in the report, and its warning."""

from __future__ import annotations

import csv
import json

from conftest import write_jsonl
from fakes.judge_server import FakeJudgeServer

from align.cli import main
from judges.judging.controls import derangement, mismatched_answers
from judges.questions import load_questions

QIDS = (81, 82, 83, 101)


def _answers(model: str, qids=QIDS) -> list[dict]:
    return [{"question_id": q, "answer_id": f"{model}-{q}", "model_id": model,
             "choices": [{"index": 0, "turns": [f"{model} one two three {q}", f"{model} four {q}"]}],
             "tstamp": 0.0} for q in qids]


def test_derangement_keeps_turn_counts_and_moves_every_answer():
    n_turns = {1: 2, 2: 2, 3: 2, 7: 1, 8: 1, 9: 1, 5: 3}
    mapping = derangement(list(n_turns), n_turns)
    assert set(mapping) == {1, 2, 3, 7, 8, 9}  # 5 is alone in its turn count: no control for it
    assert all(src != qid and n_turns[src] == n_turns[qid] for qid, src in mapping.items())
    assert sorted(mapping.values()) == sorted(mapping)  # a permutation: every answer used once
    assert derangement(list(n_turns), n_turns) == mapping  # fixed


def test_mismatched_answers_are_the_models_own_answers_to_other_questions():
    questions = [q for q in load_questions() if q["question_id"] in QIDS]
    answers = {"m": {r["question_id"]: r for r in _answers("m")}}
    controls = mismatched_answers(answers, questions)
    assert list(controls) == ["m@mismatched"]
    for qid, rec in controls["m@mismatched"].items():
        assert rec["model_id"] == "m@mismatched" and rec["question_id"] == qid
        assert rec["choices"][0]["turns"] == answers["m"][rec["mismatched_from"]]["choices"][0]["turns"]
        assert rec["mismatched_from"] != qid
    assert answers["m"][81]["model_id"] == "m"  # the model's own records are untouched


def test_judge_with_controls_adds_one_models_worth(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", _answers("a"))
    out = tmp_path / "gpt-4_single.jsonl"
    with FakeJudgeServer() as server:
        assert main(["mtbench", "judge", "--answer-file", str(a), "--base-url", server.base_url, "--output-file",
                     str(out), "--controls", "--api-key-env", "ALIGN_TEST_JUDGE_KEY"]) == 0
        assert server.requests == 16  # 4 questions x 2 turns, for a and for a@mismatched
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    control = [r for r in rows if r["model"] == "a@mismatched"]
    assert len(control) == 8
    q81 = next(r for r in control if r["question_id"] == 81 and r["turn"] == 1)
    assert "a one two three 81" not in q81["user_prompt"] and "a one two three" in q81["user_prompt"]


def _single(model, qid, turn, score):
    return {"question_id": qid, "model": model, "judge": ["gpt-4", "single-v1"], "user_prompt": "p",
            "judgment": f"Rating: [[{score}]]", "score": score, "turn": turn, "tstamp": 1}


QS = [q["question_id"] for q in load_questions()[:12]]


def _report(tmp_path, rows, *extra):
    path = write_jsonl(tmp_path / "j.jsonl", rows)
    ans = write_jsonl(tmp_path / "ans.jsonl", _answers("good", QS) + _answers("flat", QS))
    out = tmp_path / "r"
    assert main(["mtbench", "report", "--input-file", str(path), "--answer-file", str(ans), "--out-dir", str(out),
                 "--bootstrap", "500", *extra]) == 0
    return out, json.loads((out / "summary.json").read_text())


def test_report_judge_check_separates_or_warns_first(tmp_path):
    rows = []
    for i, q in enumerate(QS):
        for t in (1, 2):
            rows += [_single("good", q, t, 8 + i % 2), _single("good@mismatched", q, t, 2 + i % 3),
                     _single("flat", q, t, 5), _single("flat@mismatched", q, t, 5)]
    out, summary = _report(tmp_path, rows)
    check = summary["judge_check"]
    assert check["good"]["separates"] is True and check["good"]["ci"][0] > 0 and check["good"]["delta"] > 5
    assert check["flat"] == {"delta": 0.0, "ci": [0.0, 0.0], "separates": False, "n": 12}
    md = (out / "table.md").read_text()
    first = md.splitlines()[0]
    assert first.startswith("**Warning: the judge does not tell the answers of flat from") and "not evidence" in first
    assert "good" not in first
    table_models = [r["model"] for r in csv.DictReader((out / "table.csv").open())]
    assert table_models == ["flat", "good"]  # controls are never rows
    assert "@mismatched |" not in md
    # words per turn: "m one two three q" (5 words) and "m four q" (3) -> 4.0
    assert all(r["words_per_turn"] == 4.0 for r in summary["rows"])
    assert "| 4.0 |" in md


def test_report_without_controls_says_there_is_no_check(tmp_path):
    rows = [_single(m, q, t, 5) for m in ("good", "flat") for q in QS for t in (1, 2)]
    out, summary = _report(tmp_path, rows)
    md = (out / "table.md").read_text()
    assert summary["judge_check"] == {} and not md.startswith("**Warning")
    assert "Judge check: none (judged without --controls)" in md


def test_too_few_questions_never_pass_the_check(tmp_path):
    rows = [_single(m, q, t, s) for q in QS[:3] for t in (1, 2) for m, s in (("good", 9), ("good@mismatched", 1))]
    out, summary = _report(tmp_path, rows)
    assert summary["judge_check"]["good"] == {"delta": 8.0, "ci": [None, None], "separates": False, "n": 3}
    first = (out / "table.md").read_text().splitlines()[0]
    assert first.startswith("**Warning: with fewer than 10 questions the judge check cannot pass for good")
    # The demo's case: few questions and no difference at all is a blind judge, said plainly.
    rows = [_single(m, q, t, 5) for q in QS[:2] for t in (1, 2) for m in ("flat", "flat@mismatched")]
    out, summary = _report(tmp_path / "demo", rows)
    first = (out / "table.md").read_text().splitlines()[0]
    assert first.startswith("**Warning: the judge does not tell the answers of flat from the same answers attached")
