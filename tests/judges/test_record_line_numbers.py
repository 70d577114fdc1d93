"""Judgment, failed-list and answer record errors name the file's real line: blank lines count."""

from __future__ import annotations

import json

import pytest

from align.plumbing.errors import UserError
from judges.records import answer_slots, failed_slots, read_judgments


def _lines(path, *rows):
    path.write_text("".join(("" if r is None else json.dumps(r)) + "\n" for r in rows))
    return path


def test_a_bad_judgment_after_blank_lines_names_its_real_line(tmp_path):
    good = {"question_id": 81, "model": "m", "judge": ["gpt-4", "single-v1"], "score": 7, "turn": 1,
            "user_prompt": "", "judgment": "[[7]]", "tstamp": 1.0}
    path = _lines(tmp_path / "j.jsonl", good, None, None, dict(good, question_id=999999))
    with pytest.raises(UserError, match=rf"{path}:4: "):
        read_judgments(path, {81: 2})


def test_a_bad_failed_list_row_after_blank_lines_names_its_real_line(tmp_path):
    path = _lines(tmp_path / "f.jsonl", None, {"model": "m"})
    with pytest.raises(UserError, match=rf"{path}:2: "):
        failed_slots(path)


def test_a_bad_answer_after_a_blank_line_names_its_real_line(tmp_path):
    path = _lines(tmp_path / "a.jsonl", None, {"question_id": "x"})
    with pytest.raises(UserError, match=rf"{path}:2: "):
        answer_slots(path)
