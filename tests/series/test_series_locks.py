"""A series stage reset never rewrites or deletes an output another align process is writing (issue 24.2):
the reset takes the same lock the stage's command takes, and is refused while someone holds it."""

from __future__ import annotations

import json

import pytest
from test_series import write_series

from align.plumbing.errors import UserError
from align.plumbing.locks import output_lock
from align.series.spec import load_series
from align.series.stages import STAGES, output_path


def test_reset_waits_for_no_one_and_touches_nothing_in_use(study):
    tmp_path, spec = study
    series = load_series(write_series(tmp_path, spec))
    judgments = output_path(series, None, "judge")
    judgments.parent.mkdir(parents=True)
    rows = [{"question_id": 81, "model": m, "turn": 1, "score": 5} for m in ("small-scratch", "small-init")]
    judgments.write_text("".join(json.dumps(r) + "\n" for r in rows))
    answers = output_path(series, "small-init", "answer")
    answers.parent.mkdir(parents=True)
    answers.write_text('{"question_id": 81, "choices": [{"turns": ["a"]}]}\n')
    with output_lock(judgments, "--output-file"):  # a judge run (the series' own, or by hand) is appending
        with pytest.raises(UserError, match="in use by another align process"):
            STAGES["judge"].reset(series, "small-init")
    with output_lock(answers, "--answer-file"):
        with pytest.raises(UserError, match="in use by another align process"):
            STAGES["answer"].reset(series, "small-init")
    assert len(judgments.read_text().splitlines()) == 2 and answers.is_file()  # untouched while in use
    STAGES["judge"].reset(series, "small-init")  # free: the entry's rows go, the others stay
    STAGES["answer"].reset(series, "small-init")
    assert [json.loads(line)["model"] for line in judgments.read_text().splitlines()] == ["small-scratch"]
    assert not answers.exists()
