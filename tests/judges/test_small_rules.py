"""The judge side's small rules, one of each: NaN -> None for JSON, and which judgment a record is."""

import json
import math

import numpy as np
import pytest

from align.errors import UserError
from judges.kinds import PAIRWISE, SINGLE, first_judgment_kind, judgment_kind
from judges.records import is_pair_file
from judges.stats import finite_or_none
from judges.trust.votes import file_kind


def test_finite_or_none_is_what_json_can_hold():
    assert [finite_or_none(x) for x in (None, math.nan, math.inf, -math.inf, np.float32("nan"))] == [None] * 5
    assert finite_or_none(3) == 3 and isinstance(finite_or_none(3), int)  # an int stays an int
    assert finite_or_none(0.25) == 0.25 and finite_or_none(np.float64(0.5)) == 0.5
    assert finite_or_none("N/A") == "N/A"
    json.dumps([finite_or_none(x) for x in (math.nan, 1.5)], allow_nan=False)


@pytest.mark.parametrize("record, kind", [
    ({"model_1": "a", "model_2": "b", "g1_winner": "tie"}, PAIRWISE),
    ({"model_1": "a"}, PAIRWISE),  # damaged: still read as pairwise, so its reader names what it lacks
    ({"question_id": 81, "model": "a", "score": 7}, SINGLE),
    ({"question_id": 81, "choices": []}, None), ({}, None)])
def test_judgment_kind_by_the_fields_that_tell_them_apart(record, kind):
    assert judgment_kind(record) == kind


def test_one_sniffing_rule_for_the_report_and_the_votes(tmp_path):
    pair, single, answers, empty = (tmp_path / n for n in ("p.jsonl", "s.jsonl", "a.jsonl", "e.jsonl"))
    pair.write_text(json.dumps({"model_1": "a", "model_2": "b", "g1_winner": "tie"}) + "\n")
    single.write_text(json.dumps({"question_id": 81, "model": "a", "score": 7}) + "\n")
    answers.write_text(json.dumps({"question_id": 81, "choices": []}) + "\n")
    empty.write_text("")
    assert [first_judgment_kind(p) for p in (pair, single, answers, empty)] == [PAIRWISE, SINGLE, None, None]
    assert [is_pair_file(str(p)) for p in (pair, single, answers, empty)] == [True, False, False, False]
    assert [file_kind(str(p)) for p in (pair, single)] == ["pair", "single"]
    with pytest.raises(UserError, match="a.jsonl:1: neither a pairwise judgment"):
        file_kind(str(answers))
    with pytest.raises(UserError, match="e.jsonl: no judgments in it"):
        file_kind(str(empty))
