"""A judgment record that could not come from judging the question set is refused by the report,
naming file and line, exit 2; it is never averaged in (issue 26.10)."""

from __future__ import annotations

import json

import pytest
from conftest import write_jsonl
from test_report import _j

from align.cli import main


def _pair(qid, turn, g1="model_1", g2="model_2"):
    return {"question_id": qid, "model_1": "a", "model_2": "b", "g1_winner": g1, "g2_winner": g2,
            "judge": ["gpt-4", "pair-v2"], "turn": turn, "tstamp": 1}


GOOD = [_j("m", 81, 1, 7, 1), _j("m", 81, 2, 6, 1)]


@pytest.mark.parametrize("bad, named", [
    (_j("m", 999, 1, 10, 1), "question_id 999"),
    (_j("m", 81, 3, 10, 1), "turn 3"),
    (_j("m", 81, 0, 10, 1), "turn 0"),
    (_j("m", 81, True, 10, 1), "turn True"),
    (_j("m", "81", 1, 10, 1), "question_id '81'"),
    (_j("m", 82, 1, True, 1), "score True"),
    (_j("m", 82, 1, "7", 1), "score '7'"),
    (_j("m", 82, 1, None, 1), "score None"),
])
def test_report_refuses_a_record_from_no_question(tmp_path, capsys, bad, named):
    path = write_jsonl(tmp_path / "gpt-4_single.jsonl", GOOD + [bad])
    out = tmp_path / "report"
    with pytest.raises(SystemExit) as exc:
        main(["mtbench", "report", "--input-file", str(path), "--out-dir", str(out), "--bootstrap", "100"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"{path}:3:" in err and named in err, err
    assert not out.exists()


@pytest.mark.parametrize("bad, named", [
    (_pair(999, 1), "question_id 999"), (_pair(81, 3), "turn 3"), (_pair(81, 1, g1="A"), "g1_winner 'A'"),
])
def test_pairwise_report_refuses_a_record_from_no_question(tmp_path, capsys, bad, named):
    path = write_jsonl(tmp_path / "gpt-4_pair.jsonl", [_pair(81, 1), _pair(81, 2), bad])
    with pytest.raises(SystemExit) as exc:
        main(["mtbench", "report", "--input-file", str(path), "--out-dir", str(tmp_path / "r"), "--bootstrap", "100"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"{path}:3:" in err and named in err, err


def test_valid_records_still_score(tmp_path):
    path = write_jsonl(tmp_path / "gpt-4_single.jsonl", GOOD + [_j("m", 82, 1, -1, 1), _j("m", 82, 2, 8.5, 1)])
    out = tmp_path / "report"
    assert main(["mtbench", "report", "--input-file", str(path), "--out-dir", str(out), "--bootstrap", "100"]) == 0
    row = json.loads((out / "summary.json").read_text())["rows"][0]
    assert (row["judged"], row["invalid"]) == (3, 1) and row["mtbench"] == pytest.approx((7 + 6 + 8.5) / 3)
