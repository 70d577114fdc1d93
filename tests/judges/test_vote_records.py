"""Vote records read by `align mtbench agreement` (issue 29.11): a question_id or turn that is not a whole
number (81.9, 1.6, true, "81") is refused in one line naming file:line, never truncated into another
question's or turn's vote."""

from __future__ import annotations

import json

import pytest
from conftest import one_line_exit_2

VOTE = {"question_id": 81, "model_a": "x", "model_b": "y", "winner": "model_a", "judge": "expert_0", "turn": 1}
PAIR = {"question_id": 81, "model_1": "x", "model_2": "y", "g1_winner": "model_1", "g2_winner": "model_1",
        "judge": ["gpt-4", "pair-v2"], "turn": 1, "tstamp": 1.0}


def agreement(tmp_path, first: list[dict], second_text: str, capsys) -> str:
    pair = tmp_path / "gpt-4_pair.jsonl"
    pair.write_text("".join(json.dumps(r) + "\n" for r in first))
    votes = tmp_path / "human.json"
    votes.write_text(second_text)
    err = one_line_exit_2(["mtbench", "agreement", str(pair), str(votes), "--out", str(tmp_path / "a.json")], capsys)
    assert not (tmp_path / "a.json").exists()
    return err


@pytest.mark.parametrize("field, value", [("turn", 1.6), ("question_id", 81.9), ("turn", True),
                                          ("question_id", "81"), ("question_id", 81.0)])
def test_a_vote_whose_question_or_turn_is_not_a_whole_number_is_refused_by_file_and_line(tmp_path, capsys,
                                                                                          field, value):
    votes = [dict(VOTE), dict(VOTE, model_a="y", model_b="x"), dict(VOTE, **{field: value})]
    text = "[\n" + ",\n".join("  " + json.dumps(v) for v in votes) + "\n]\n"  # one vote a line: the bad one on 4
    err = agreement(tmp_path, [PAIR], text, capsys)  # was: truncated to 1 / 81 and counted
    assert f"{tmp_path / 'human.json'}:4: vote 2: {field} {value!r}: expected a whole number" in err


def test_the_line_is_the_votes_own_in_a_file_laid_out_any_way(tmp_path, capsys):
    text = json.dumps([VOTE, VOTE], indent=2)[:-1] + ", " + json.dumps(dict(VOTE, turn=1.6)) + "]"
    line = text.count("\n", 0, text.index('"turn": 1.6')) + 1
    assert f"human.json:{line}: vote 2: turn 1.6" in agreement(tmp_path, [PAIR], text, capsys)


@pytest.mark.parametrize("field, value", [("turn", 1.6), ("question_id", 81.9), ("turn", True)])
def test_a_pair_record_whose_question_or_turn_is_not_a_whole_number_is_refused(tmp_path, capsys, field, value):
    err = agreement(tmp_path, [PAIR, dict(PAIR, **{field: value})], json.dumps([VOTE]), capsys)
    assert f"gpt-4_pair.jsonl:2: {field} {value!r}" in err
