"""Chat and preference rows: loading from local files, every check, skip-and-count, demo data."""

from __future__ import annotations

import json
import re

import pytest
from conftest import chat_rows, preference_rows, run_cli, write_jsonl

from align.plumbing.errors import UserError
from align.train.data import conversation_problem, load_rows, preference_problem

U = {"role": "user", "content": "hi"}
A = {"role": "assistant", "content": "hello"}
S = {"role": "system", "content": "be nice"}


def test_chat_rows_load_and_extra_columns_are_dropped(chat_jsonl):
    loaded = load_rows(str(chat_jsonl), kind="chat")
    assert loaded.dataset.column_names == ["messages"]
    assert loaded.rows_kept == loaded.rows_read == 24 and loaded.rows_skipped == 0
    assert loaded.fingerprint.startswith("sha256:")
    assert loaded.dataset[0]["messages"] == chat_rows()[0]["messages"]


def test_preference_rows_load(pref_jsonl):
    loaded = load_rows(str(pref_jsonl), kind="preference", max_rows=5)
    assert loaded.dataset.column_names == ["chosen", "rejected"]
    assert loaded.rows_kept == 5


def test_parquet_and_json_files(tmp_path):
    import datasets

    rows = preference_rows(6)
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "p.parquet"))
    (tmp_path / "p.json").write_text(json.dumps(rows))
    for name in ("p.parquet", "p.json"):
        loaded = load_rows(str(tmp_path / name), kind="preference")
        assert loaded.rows_kept == 6 and loaded.dataset[2]["rejected"] == rows[2]["rejected"]


@pytest.mark.parametrize("messages, problem", [
    ([U, A], None),
    ([S, U, A, U, A], None),
    ([], "non-empty list"),
    ([A, U, A], "role 'assistant', expected 'user'"),
    ([U, U, A], "role 'user', expected 'assistant'"),
    ([U, A, U], "last message must be the assistant's"),
    ([U, {"role": "assistant", "content": "  "}], "message 1 (assistant) has empty or non-string content"),
    ([{"role": "user", "content": 5}, A], "message 0 (user) has empty or non-string content"),
    ([U, A, S, A], "role 'system', expected 'user'"),
])
def test_conversation_checks(messages, problem):
    found = conversation_problem(messages)
    assert (found is None) if problem is None else (problem in found)


def test_preference_checks():
    good = {"chosen": [U, A], "rejected": [U, {"role": "assistant", "content": "no"}]}
    assert preference_problem(good) is None
    other_prompt = {"chosen": [U, A], "rejected": [{"role": "user", "content": "bye"}, A | {"content": "x"}]}
    assert "same prompt" in preference_problem(other_prompt)
    same_answer = {"chosen": [U, A], "rejected": [U, dict(A)]}
    assert "same final answer" in preference_problem(same_answer)
    assert preference_problem({"chosen": [U], "rejected": [U, A]}).startswith("chosen:")


def test_bad_row_names_file_and_line(tmp_path):
    rows = chat_rows(5)
    rows[3]["messages"] = rows[3]["messages"][:1]  # ends with the user
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(UserError) as err:
        load_rows(str(path), kind="chat")
    assert str(err.value) == f"{path}:4: the last message must be the assistant's"


def test_bad_rows_skipped_and_counted(tmp_path):
    rows = preference_rows(8)
    rows[1]["rejected"] = rows[1]["chosen"]
    rows[5]["rejected"][0] = {"role": "user", "content": "a different question"}
    path = write_jsonl(tmp_path / "prefs.jsonl", rows)
    loaded = load_rows(str(path), kind="preference", invalid_rows="skip")
    assert (loaded.rows_read, loaded.rows_kept, loaded.rows_skipped) == (8, 6, 2)
    card = loaded.card()
    assert card["rows_skipped_invalid"] == 2 and f"{path}:2: chosen and rejected have the same final answer" \
        in card["skipped_examples"]


@pytest.mark.parametrize("content, message", [
    ('{"messages": [}\n', "bad.jsonl:1: not valid JSON"),
    ('{"text": "hi"}\n', "bad.jsonl:1: missing key(s) ['messages']"),
    ('[1, 2]\n', "bad.jsonl:1: expected a JSON object"),
])
def test_malformed_files(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(UserError, match=re.escape(message)):
        load_rows(str(path), kind="chat")


def test_missing_dataset_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="could not be loaded"):
        load_rows(str(tmp_path / "nowhere"), kind="chat")


def test_demo_data_files_pass_the_checks(tmp_path):
    proc = run_cli("-m", "align.train.demo_data", "--out", str(tmp_path), "--limit", "40", timeout=120)
    assert proc.returncode == 0, proc.stderr
    chats = load_rows(str(tmp_path / "chat.jsonl"), kind="chat")
    prefs = load_rows(str(tmp_path / "prefs.jsonl"), kind="preference")
    assert chats.rows_kept == 40 and prefs.rows_kept == 40 and prefs.rows_skipped == 0
    row = prefs.dataset[0]
    assert row["chosen"][:-1] == row["rejected"][:-1] and row["chosen"][-1] != row["rejected"][-1]


def test_demo_data_holds_out_its_last_conversations(tmp_path):
    """--test-rows N: the last N conversations are the held-out files, in neither training file."""
    from align.train.demo_data import write_demo_data

    write_demo_data(tmp_path, test_rows=16)
    ids = {name: [json.loads(line)["prompt_id"] for line in (tmp_path / name).open()]
           for name in ("chat.jsonl", "prefs.jsonl", "chat_test.jsonl", "prefs_test.jsonl")}
    assert len(ids["chat_test.jsonl"]) == 16 and ids["prefs_test.jsonl"] == ids["chat_test.jsonl"]
    assert not set(ids["chat_test.jsonl"]) & (set(ids["chat.jsonl"]) | set(ids["prefs.jsonl"]))
    assert load_rows(str(tmp_path / "prefs_test.jsonl"), kind="preference").rows_skipped == 0
    write_demo_data(tmp_path / "all")
    assert not (tmp_path / "all" / "chat_test.jsonl").exists()
    assert len(ids["chat.jsonl"]) + 16 == len((tmp_path / "all" / "chat.jsonl").read_text().splitlines())
