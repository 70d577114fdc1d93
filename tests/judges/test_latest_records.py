"""One rule for "the latest record per slot" (judges/records.py), the same in every reader: the
judge's cache, the report, the pairwise report, the trust votes, answers and the series' verifiers."""

from __future__ import annotations

import csv

import pytest
from conftest import write_jsonl
from test_judgment_records import _pair
from test_report import _j

from align.cli import main
from align.plumbing.errors import UserError
from judges.judging.engine import read_existing
from judges.records import latest_per_slot, load_answers, load_judgments
from judges.trust.votes import single_scores

TURNS = {81: 2, 82: 2}


def test_highest_tstamp_wins_then_the_later_line():
    a, b, c, d = ({"n": n, "tstamp": t} for n, t in (("a", 5), ("b", 2), ("c", 5), ("d", "yesterday")))
    latest = latest_per_slot([("s", a), ("s", b), ("s", c), ("t", d), ("t", {"n": "e"})])
    # b is older than a though later in the file; c ties a and comes later; a non-numeric tstamp counts as none
    assert latest == {"s": c, "t": {"n": "e"}}


def test_every_reader_picks_the_same_judgment(tmp_path):
    stale, fresh = _j("m", 81, 1, 3, 9), _j("m", 81, 1, 8, 9)
    stale["cache_key"], fresh["cache_key"] = "k-stale", "k-fresh"
    older_later = dict(_j("m", 81, 1, 1, 2), cache_key="k-older")  # appended later, judged earlier
    path = write_jsonl(tmp_path / "gpt-4_single.jsonl", [stale, fresh, older_later])
    judged, _ = load_judgments([path], TURNS)
    assert judged[("m", 81, 1)]["score"] == 8
    assert read_existing(path)[1][("m", 81, 1)] == "k-fresh"
    assert single_scores(str(path), TURNS)[0] == {("m", 81, 1): 8.0}


def test_answers_follow_the_same_rule(tmp_path):
    def answer(text, tstamp):
        return {"question_id": 81, "model_id": "m", "choices": [{"index": 0, "turns": [text]}], "tstamp": tstamp}

    path = write_jsonl(tmp_path / "m.jsonl", [answer("first", 1), answer("newest", 7), answer("older", 3),
                                              answer("tied, later", 7)])
    assert load_answers([str(path)])["m"][81]["choices"][0]["turns"] == ["tied, later"]


def test_a_judgment_with_a_text_tstamp_is_read_not_a_crash(tmp_path, capsys):
    path = write_jsonl(tmp_path / "gpt-4_single.jsonl", [_j("m", 81, 1, 7, "2026-12-04"), _j("m", 81, 2, 5, 1)])
    out = tmp_path / "report"
    assert main(["mtbench", "report", "--input-file", str(path), "--out-dir", str(out), "--bootstrap", "100"]) == 0
    assert next(csv.DictReader((out / "table.csv").open()))["judged"] == "2"


@pytest.mark.parametrize("pairwise", [False, True])
def test_a_failed_list_row_without_its_slot_is_one_line(tmp_path, capsys, pairwise):
    path = write_jsonl(tmp_path / ("gpt-4_pair.jsonl" if pairwise else "gpt-4_single.jsonl"),
                       [_pair(81, 1)] if pairwise else [_j("m", 81, 1, 7, 1)])
    names = {"model_1": "a", "model_2": "b"} if pairwise else {"model": "m"}
    write_jsonl(tmp_path / (path.name + ".failed.jsonl"), [{**names, "question_id": 82, "error": "HTTP 500"}])
    with pytest.raises(UserError, match=r"\.failed\.jsonl:1: expected .*question_id and turn"):
        load_judgments([path], TURNS, pairwise)
    with pytest.raises(SystemExit) as exc:
        main(["mtbench", "report", "--input-file", str(path), "--out-dir", str(tmp_path / "r"), "--bootstrap", "100"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "failed.jsonl:1" in err, err
