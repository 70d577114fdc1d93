"""`align mtbench report` with judges/trust: controlled win rates beside the raw ones, Δ at equal length,
and two judges' agreement when --input-file holds both judges' files."""

from __future__ import annotations

import csv
import json
import random

import pytest
from conftest import write_jsonl

from align.cli import main
from judges.reporting.pair_report import summary_fields
from judges.trust.agreement import compare, split_by_judge

SCRATCH, EXPANDED = "m-2b-scratch", "m-2b-expanded"
QIDS = range(81, 101)  # writing and roleplay: 20 questions, two turns each


def _answers(model, lengths):
    return [{"question_id": q, "answer_id": f"{model}-{q}", "model_id": model,
             "choices": [{"index": 0, "turns": ["w " * (lengths[q, 1] // 2), "w " * (lengths[q, 2] // 2)]}],
             "tstamp": 0.0} for q in QIDS]


def _single(model, q, turn, score, judge):
    return {"question_id": q, "model": model, "judge": [judge, "single-v1"], "score": score, "turn": turn,
            "user_prompt": "p", "judgment": f"[[{score}]]", "tstamp": 1.0}


@pytest.fixture
def study(tmp_path):
    """The expanded model writes longer answers; gpt-4 prefers the longer answer and scores length."""
    rng = random.Random(0)
    spans = {SCRATCH: (200, 1200), EXPANDED: (600, 1600)}
    lengths = {m: {(q, t): rng.randint(*span) for q in QIDS for t in (1, 2)} for m, span in spans.items()}
    answers = [write_jsonl(tmp_path / "answers" / f"{m}.jsonl", _answers(m, lengths[m])) for m in lengths]
    single = [_single(m, q, t, min(10, 2 + lengths[m][q, t] // 200), judge)
              for judge in ("gpt-4",) for m in lengths for q in QIDS for t in (1, 2)]
    other = [_single(m, q, t, rng.randint(1, 10), "claude") for m in lengths for q in QIDS for t in (1, 2)]
    pairs = []
    for q in QIDS:
        for t in (1, 2):
            longer = "model_1" if lengths[EXPANDED][q, t] > lengths[SCRATCH][q, t] else "model_2"
            pairs.append({"question_id": q, "model_1": EXPANDED, "model_2": SCRATCH, "g1_winner": longer,
                          "g2_winner": longer, "judge": ["gpt-4", "pair-v2"], "turn": t, "tstamp": 1.0})
    files = {"single": write_jsonl(tmp_path / "gpt-4_single.jsonl", single),
             "pair": write_jsonl(tmp_path / "gpt-4_pair.jsonl", pairs),
             "other": write_jsonl(tmp_path / "claude_single.jsonl", other)}
    return files, answers


def test_report_adds_controls_equal_length_delta_and_agreement(study, tmp_path, capsys):
    files, answers = study
    out = tmp_path / "report"
    assert main(["mtbench", "report", "--input-file", str(files["single"]), str(files["pair"]), str(files["other"]),
                 "--answer-file", *map(str, answers), "--out-dir", str(out), "--bootstrap", "200"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["judge"] == "gpt-4"  # the tables are the first judge's
    pair = summary["pairwise"]["pairs"][0]
    for name in ("length_controlled_win_rate", "equal_style_win_rate"):
        low, high = pair[f"{name}_ci"]
        assert 0 <= low <= pair[name] <= high <= 1
    expanded = next(r for r in summary["rows"] if r["name"] == EXPANDED)
    adjusted = expanded["length_adjusted"]
    # gpt-4's scores are length alone: the plain Δ is large, the Δ at equal length about 0
    assert expanded["diff"]["mean"] > 1.0 and adjusted["n"] == 20
    assert abs(adjusted["value"]) < 0.3 and adjusted["ci"][0] < 0 < adjusted["ci"][1]
    agreement = summary["agreement"]
    expected = compare(str(files["single"]), str(files["other"]))
    assert agreement["turn_1"] == expected["turn_1"] and agreement["turn_2"] == expected["turn_2"]
    assert agreement["turn_1"]["with_ties"]["total"] == 20
    md = (out / "table.md").read_text()
    assert "## Judge agreement (gpt-4 vs claude)" in md and "Δ at equal length" in md and "LC win rate" in md
    assert "LC win rate" in capsys.readouterr().out
    table = {r["model"]: r for r in csv.DictReader((out / "table.csv").open())}
    assert float(table[EXPANDED]["diff_equal_length"]) == pytest.approx(adjusted["value"], abs=1e-6)


def test_without_answers_the_controls_are_empty(study, tmp_path):
    files, _ = study
    out = tmp_path / "report"
    assert main(["mtbench", "report", "--input-file", str(files["pair"]), "--out-dir", str(out),
                 "--bootstrap", "200"]) == 0
    pair = json.loads((out / "summary.json").read_text())["pairwise"]["pairs"][0]
    assert pair["length_controlled_win_rate"] is None and pair["equal_style_win_rate_ci"] == [None, None]
    assert "agreement" not in json.loads((out / "summary.json").read_text())


def test_three_judges_exit_2(study, tmp_path, capsys):
    files, _ = study
    third = write_jsonl(tmp_path / "x_single.jsonl", [_single(SCRATCH, 81, 1, 5, "x")])
    with pytest.raises(SystemExit) as exc:
        main(["mtbench", "report", "--input-file", str(files["single"]), str(files["other"]), str(third),
              "--out-dir", str(tmp_path / "r")])
    assert exc.value.code == 2 and "3 judges" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_parts(study):
    files, _ = study
    assert split_by_judge([str(files["single"]), str(files["other"]), str(files["pair"])]) == [
        ("gpt-4", [str(files["single"]), str(files["pair"])]), ("claude", [str(files["other"])])]
    assert summary_fields(None) == {"length_controlled_win_rate": None, "length_controlled_win_rate_ci": [None, None],
                                    "length_controlled_win_rate_not_estimable": None,
                                    "equal_style_win_rate": None, "equal_style_win_rate_ci": [None, None],
                                    "equal_style_win_rate_not_estimable": None, "model_1_longer_share": None,
                                    "control_warnings": []}
    missing = "no/such_single.jsonl"  # no judge to read: it goes with the first, whose reader names the problem
    assert split_by_judge([str(files["other"]), missing]) == [("claude", [str(files["other"]), missing])]
