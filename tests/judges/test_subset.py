"""`align mtbench subset`: a smaller MT-Bench that keeps FastChat's layout and every category."""

from __future__ import annotations

import pytest

from align.plumbing.errors import UserError
from judges.answers.subset import write_subset
from judges.questions import load_judge_prompts, load_questions, load_reference_answers


def test_question_subset_keeps_every_category(tmp_path):
    ids = write_subset(tmp_path / "mt_bench", per_category=1)
    questions = load_questions(tmp_path / "mt_bench")
    assert len(questions) == 8 and len({q["category"] for q in questions}) == 8
    assert sorted(load_reference_answers(tmp_path / "mt_bench")) == sorted(
        q["question_id"] for q in questions if q["category"] in ("math", "reasoning", "coding"))
    assert "single-v1" in load_judge_prompts(tmp_path / "mt_bench") and ids[0] == 81
    write_subset(tmp_path / "two", per_category=2, categories=["math", "stem"])
    assert [q["category"] for q in load_questions(tmp_path / "two")] == ["math", "math", "stem", "stem"]
    with pytest.raises(UserError, match="no question in category 'poetry'"):
        write_subset(tmp_path / "bad", per_category=1, categories=["poetry"])
