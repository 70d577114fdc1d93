"""The series' judgment verifiers read records with the report's one check (judges/records.py):
a record of no question, a third turn or a score "7" stops the series with one line naming the
file and line, instead of counting as a judged turn (issue 26.10)."""

from __future__ import annotations

import pytest
from conftest import write_jsonl
from test_series import write_series

from align.plumbing.errors import UserError
from align.series.spec import load_series
from align.series.stages import STAGES, output_path


def _j(model, qid, turn, score=5):
    return {"question_id": qid, "model": model, "judge": ["j", "single-v1"], "score": score, "turn": turn,
            "user_prompt": "p", "judgment": "[[5]]", "tstamp": 1}


def _complete(model):
    return [_j(name, q, t) for name in (model, f"{model}@mismatched") for q in (81, 82, 83) for t in (1, 2)]


def test_complete_valid_judgments_verify(study):
    tmp_path, spec = study
    series = load_series(write_series(tmp_path, spec))
    write_jsonl(output_path(series, None, "judge"), _complete("small-scratch"))
    assert STAGES["judge"].verify(series, "small-scratch") is not None


@pytest.mark.parametrize("bad, named", [
    (_j("small-scratch", 999, 1), "question_id 999"), (_j("small-scratch", 81, 3), "turn 3"),
    (_j("small-scratch", 82, 1, "7"), "score '7'"), (_j("small-scratch", 82, 1, True), "score True"),
])
def test_bad_record_stops_the_verifier_naming_file_and_line(study, bad, named):
    tmp_path, spec = study
    series = load_series(write_series(tmp_path, spec))
    path = output_path(series, None, "judge")
    write_jsonl(path, _complete("small-scratch") + [bad])
    with pytest.raises(UserError, match=f"{path}:13: .*{named}"):
        STAGES["judge"].verify(series, "small-scratch")
