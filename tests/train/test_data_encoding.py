"""Data files that are not UTF-8, and malformed JSON lines under `invalid_rows: skip`."""

from __future__ import annotations

import json

import pytest
from conftest import chat_rows

from align.plumbing.errors import UserError
from align.train.data import load_rows


@pytest.mark.parametrize("encode, message", [
    (lambda text: text.encode("utf-16"), "looks like UTF-16"),
    (lambda text: b"\x00\x01\x02\xff\xfe" + bytes(range(256)), "not UTF-8 text"),
    (lambda text: text.encode("latin-1"), "not UTF-8 text"),
])
@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_data_file_that_is_not_utf8_is_one_line(encode, message, suffix, tmp_path):
    rows = chat_rows(3)
    rows[0]["messages"][1]["content"] += " café"
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) if suffix == ".jsonl" \
        else json.dumps(rows, ensure_ascii=False)
    path = tmp_path / f"chat{suffix}"
    path.write_bytes(encode(text))
    with pytest.raises(UserError) as err:
        load_rows(str(path), kind="chat")
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value) and "\n" not in str(err.value)


def test_skip_also_skips_and_counts_malformed_json_lines(tmp_path):
    lines = [json.dumps(r) for r in chat_rows(5)]
    lines[1] = '{"messages": [{"role": "user", "content": "cut off'
    lines[3] = "not json at all"
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(lines) + "\n")
    loaded = load_rows(str(path), kind="chat", invalid_rows="skip")
    assert (loaded.rows_read, loaded.rows_kept, loaded.rows_skipped) == (5, 3, 2)
    assert loaded.skipped_examples[0].startswith(f"{path}:2: not valid JSON")
    with pytest.raises(UserError, match=f"{path}:2: not valid JSON"):
        load_rows(str(path), kind="chat", invalid_rows="error")


def test_json_with_a_line_separator_inside_a_string_still_reads(tmp_path):
    rows = chat_rows(2)
    rows[0]["messages"][1]["content"] = "one\u2028two"
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert load_rows(str(path), kind="chat").rows_kept == 2
