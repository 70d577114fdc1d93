"""`align mtbench judge` against servers that misbehave (issues 24, 26): each bad reply is a failed
judgment in `<output>.failed.jsonl` (exit 1), never a traceback; a judge that rejects every request
stops early and says why, in one line with the server's own text."""

from __future__ import annotations

import pytest
from conftest import write_jsonl
from fakes.judge_server import FakeJudgeServer
from test_judge import _answers, _judge, _rows


@pytest.fixture
def answer_files(tmp_path):
    return [write_jsonl(tmp_path / "a.jsonl", _answers("a")),
            write_jsonl(tmp_path / "b.jsonl", _answers("b", suffix=" UNLUCKY"))]


@pytest.mark.parametrize("fault, error", [("html", "not JSON"), ("reset", "connection"),
                                          ("truncated", "cut off"), ("429", "HTTP 429"), ("slow", "timed out")])
def test_a_bad_reply_is_a_failed_judgment_then_a_rerun_judges_it(tmp_path, answer_files, capsys, fault, error):
    out = tmp_path / "j.jsonl"
    failed = tmp_path / "j.jsonl.failed.jsonl"
    with FakeJudgeServer(slow_seconds=2.0) as server:
        server.fail_if, server.fail_with = "UNLUCKY", fault
        assert _judge(server, answer_files, out, "--max-retries", "1", "--timeout", "0.3") == 1
        assert server.requests == 6 + 6 * 2  # a's 6 judgments once, b's 6 tried twice
        assert sorted((r["model"], r["question_id"], r["turn"]) for r in _rows(failed)) == \
            sorted(("b", q, t) for q in (81, 101, 111) for t in (1, 2))
        assert all(error in r["error"] for r in _rows(failed))
        assert {r["model"] for r in _rows(out)} == {"a"}
        err = capsys.readouterr().err
        assert "Traceback" not in err and "6 judgment(s) missing" in err

        server.fail_if = None
        assert _judge(server, answer_files, out) == 0
    assert not failed.exists() and len(_rows(out)) == 12


def test_a_judge_that_rejects_everything_stops_early_and_says_why(tmp_path, answer_files, capsys, caplog,
                                                                  monkeypatch):
    monkeypatch.setenv("ALIGN_TEST_JUDGE_KEY", "sk-secret-never-shown")
    out = tmp_path / "j.jsonl"
    with FakeJudgeServer() as server:
        server.reject_message = "This model's maximum context length is 2048 tokens (sk-secret-never-shown)"
        server.fail_if, server.fail_with = "first answer", "400"  # in every prompt
        assert _judge(server, answer_files, out, "--max-retries", "3") == 1
        assert server.requests <= 5 + 4  # the first five rejections, and what was in flight (--parallel 4)
    err = capsys.readouterr().err + caplog.text  # (in-process, log lines go to caplog)
    stop = [line for line in err.splitlines() if "stopped" in line]
    assert len(stop) == 1, err
    assert "HTTP 400" in stop[0] and "maximum context length is 2048 tokens" in stop[0]
    assert "sk-secret-never-shown" not in err and "Traceback" not in err
    failed = _rows(tmp_path / "j.jsonl.failed.jsonl")
    assert len(failed) == 12  # everything is still missing, and listed
    assert not out.exists() or not _rows(out)


def test_rejections_after_a_success_do_not_stop_the_run(tmp_path, answer_files, capsys, caplog):
    out = tmp_path / "j.jsonl"
    with FakeJudgeServer() as server:
        server.fail_if, server.fail_with = "UNLUCKY", "400"  # only b's prompts are too long, say
        assert _judge(server, answer_files, out, "--parallel", "1") == 1
        assert server.requests == 12  # every judgment asked once: a rejection is not retried
    failed = _rows(tmp_path / "j.jsonl.failed.jsonl")
    assert len(failed) == 6 and all(r["error"].startswith("HTTP 400 from ") for r in failed)
    assert len(_rows(out)) == 6
    err = capsys.readouterr().err + caplog.text
    assert "stopped" not in err
    assert sum("HTTP 400" in line for line in err.splitlines()) == 1  # said once, not once per judgment


def test_answers_from_a_server_that_rejects_everything_stop_early(tmp_path, capsys):
    from test_answer import QUESTIONS

    from align.cli import main

    write_jsonl(tmp_path / "mt_bench" / "question.jsonl", QUESTIONS)
    out = tmp_path / "m.jsonl"
    with FakeJudgeServer() as server:
        server.faults += ["400"] * 50  # every request
        with pytest.raises(SystemExit) as exc:
            main(["mtbench", "answer", "--backend", "openai", "--base-url", server.base_url, "--model-path", "m",
                  "--model-id", "m", "--answer-file", str(out), "--question-dir", str(tmp_path / "mt_bench"),
                  "--parallel", "1", "--api-key-env", "ALIGN_TEST_NO_KEY"])
        assert server.requests == 5  # of 7 questions' first turns
    assert exc.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(err) == 1 and err[0].startswith("error: stopped: the first 5 requests were all rejected")
    assert "maximum of 2048 positions" in err[0] and f"{len(QUESTIONS)} question(s) got no answer" in err[0]
    assert not out.exists()


def test_a_run_too_short_to_stop_says_no_stop(tmp_path, answer_files, capsys, caplog):
    out = tmp_path / "j.jsonl"
    with FakeJudgeServer(latency=0.3) as server:  # all six asked at once, then six rejections
        server.fail_if, server.fail_with = "first answer", "400"
        assert _judge(server, answer_files[:1], out, "--parallel", "6") == 1
        assert server.requests == 6  # everything was asked: nothing was stopped
    assert "stopped" not in capsys.readouterr().err + caplog.text
    assert len(_rows(tmp_path / "j.jsonl.failed.jsonl")) == 6
