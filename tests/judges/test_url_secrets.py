"""A --base-url carrying credentials (userinfo, `?api-key=`, `?key=`) works, and none of them reaches
the run card, the answers' meta.json, the judgments, the failed list or the log (fake judge server)."""

from __future__ import annotations

import logging
from pathlib import Path

from conftest import write_jsonl
from fakes.judge_server import FakeJudgeServer
from test_judge import _answers

from align.cli import main
from align.series.process import run_logged
from align.series.stages import StageCommand

SECRETS = ("pw-SECRET-1", "q-SECRET-2", "q-SECRET-3")
QUESTIONS = [{"question_id": 1, "category": "writing", "turns": ["Write a haiku.", "Another."]}]


def hostile_url(server) -> str:
    host = server.base_url.split("://", 1)[1]
    return f"http://judge-user:{SECRETS[0]}@{host}?api-key={SECRETS[1]}&key={SECRETS[2]}&api-version=1"


def leaked(folder: Path, *texts: str) -> list[str]:
    found = [f"{p}: {s}" for p in sorted(folder.rglob("*")) if p.is_file() for s in SECRETS
             if s.encode() in p.read_bytes()]
    return found + [f"log: {s}" for text in texts for s in SECRETS if s in text]


def test_judge_with_credentials_in_the_base_url(tmp_path, caplog, capsys, monkeypatch):
    monkeypatch.setenv("ALIGN_TEST_JUDGE_KEY", "EMPTY")
    caplog.set_level(logging.INFO)
    answers = write_jsonl(tmp_path / "model_answer" / "a.jsonl", _answers("a"))
    out = tmp_path / "model_judgment" / "j_single.jsonl"
    with FakeJudgeServer() as server:
        server.fail_if = "second 101"  # one judgment fails: its error goes to the failed list and the log
        rc = main(["mtbench", "judge", "--answer-file", str(answers), "--base-url", hostile_url(server),
                   "--judge-model", "gpt-4", "--output-file", str(out), "--parallel", "2", "--max-retries", "0",
                   "--api-key-env", "ALIGN_TEST_JUDGE_KEY"])
        assert server.requests >= 5
    printed = capsys.readouterr()
    assert rc == 1 and out.is_file() and any(out.parent.glob("*.failed.jsonl"))
    cards = [p for p in out.parent.glob("*run_card*.json")]
    assert cards and "judge-user:<redacted>@" in cards[0].read_text()
    assert leaked(tmp_path, caplog.text, printed.out, printed.err) == []


def test_answers_with_credentials_in_the_base_url(tmp_path, caplog, capsys, monkeypatch):
    monkeypatch.setenv("ALIGN_TEST_JUDGE_KEY", "EMPTY")
    caplog.set_level(logging.INFO)
    write_jsonl(tmp_path / "q" / "question.jsonl", QUESTIONS)
    answer_file = tmp_path / "out" / "m.jsonl"
    with FakeJudgeServer() as server:
        rc = main(["mtbench", "answer", "--backend", "openai", "--base-url", hostile_url(server), "--model-path",
                   "served", "--model-id", "m", "--answer-file", str(answer_file), "--question-dir",
                   str(tmp_path / "q"), "--max-new-token", "8", "--api-key-env", "ALIGN_TEST_JUDGE_KEY"])
    printed = capsys.readouterr()
    assert rc == 0 and answer_file.is_file()
    meta = answer_file.with_name(answer_file.name + ".meta.json").read_text()
    assert "judge-user:<redacted>@" in meta and "api-version=1" in meta
    assert leaked(tmp_path / "out", caplog.text, printed.out, printed.err) == []


def test_series_stage_log_records_the_command_without_credentials(tmp_path):
    log = tmp_path / "judge.log"
    cmd = StageCommand(["true"], ["mtbench", "judge", "--base-url", f"http://u:{SECRETS[0]}@h/v1?key={SECRETS[2]}"])
    assert run_logged(cmd, log, "judge") == 0
    assert "--base-url 'http://u:<redacted>@h/v1?key=<redacted>'" in log.read_text() and leaked(tmp_path) == []
