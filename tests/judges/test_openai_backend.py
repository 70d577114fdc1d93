"""`--backend openai`: answers through judges/api/client.py's client (retries) and bounded pool."""

from __future__ import annotations

import json

from conftest import write_jsonl
from fakes.judge_server import FakeJudgeServer

from align.cli import main

QUESTIONS = [
    {"question_id": 1, "category": "math", "turns": ["What is 2+2?", "And 3+3?"]},
    {"question_id": 2, "category": "writing", "turns": ["Write a haiku about rain.", "Make it sadder."]},
    {"question_id": 3, "category": "stem", "turns": ["What is an atom made of?", "Explain to a child."]},
]


def test_openai_backend_answers_every_turn_and_retries(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    qdir = tmp_path / "mt_bench"
    write_jsonl(qdir / "question.jsonl", QUESTIONS)
    answer_file = tmp_path / "answers.jsonl"
    with FakeJudgeServer() as server:
        server.faults += ["429", "500"]  # retried by the client, not failures
        rc = main(["mtbench", "answer", "--backend", "openai", "--base-url", server.base_url, "--model-path", "served",
                   "--model-id", "m", "--answer-file", str(answer_file), "--question-dir", str(qdir),
                   "--max-new-token", "16", "--parallel", "2", "--seed", "7"])
        seen = list(server.seen)
    assert rc == 0
    records = [json.loads(line) for line in answer_file.read_text().splitlines()]
    assert [r["question_id"] for r in records] == [1, 2, 3]
    assert all(len(r["choices"][0]["turns"]) == 2 and all(r["choices"][0]["turns"]) for r in records)
    # 6 turns answered; the second turn carries the first answer; the seed and the server's model name go along
    completed = [body for body in seen if body["messages"][-1]["role"] == "user"]
    assert len({json.dumps(b["messages"]) for b in completed}) == 6
    assert any(len(b["messages"]) == 3 and b["messages"][1]["role"] == "assistant" for b in completed)
    assert {b["seed"] for b in completed} == {7} and {b["model"] for b in completed} == {"served"}
    assert {b["max_tokens"] for b in completed} == {16}
