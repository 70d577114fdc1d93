"""Outputs that are someone else's (issues 24 and 26): a file of another kind or one of the run's inputs
is refused before anything is written; every command's run card is its own; one writer per output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import REPO, one_line_exit_2, write_jsonl
from fakes.judge_server import FakeJudgeServer
from test_answer import QUESTIONS
from test_judge import _answers, _judge, _rows

from align.cli import main
from align.plumbing.locks import output_lock


def _single(model: str, qid: int, turn: int) -> dict:
    return {"question_id": qid, "model": model, "judge": ["gpt-4", "single-v1"], "user_prompt": "p",
            "judgment": "Rating: [[5]]", "score": 5, "turn": turn, "tstamp": 1.0}


def _answer_argv(tmp_path, server, answer_file) -> list[str]:
    write_jsonl(tmp_path / "mt_bench" / "question.jsonl", QUESTIONS[:2])
    return ["mtbench", "answer", "--backend", "openai", "--model-path", "m", "--model-id", "m",
            "--question-dir", str(tmp_path / "mt_bench"), "--api-key-env", "ALIGN_TEST_NO_KEY",
            "--max-new-token", "8", "--base-url", server.base_url, "--answer-file", str(answer_file)]


# ---------------------------------------------------------------- A: files of another kind, inputs

@pytest.mark.parametrize("kind, rows", [
    ("single-answer judgment", [_single(m, q, t) for m in ("a",) for q in (1, 2) for t in (1, 2)]),
    ("training data", [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}]),
])
def test_answer_refuses_a_file_of_another_kind(kind, rows, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ALIGN_TEST_NO_KEY", raising=False)
    target = write_jsonl(tmp_path / "not_answers.jsonl", rows)
    before = target.read_bytes()
    with FakeJudgeServer() as server:
        err = one_line_exit_2(_answer_argv(tmp_path, server, target), capsys)
        assert server.requests == 0  # refused before any answer was asked for
    assert f"--answer-file {target}" in err and f"a {kind} record" in err, err
    assert target.read_bytes() == before  # not rewritten (4 -> 2 records), not appended to
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mt_bench", "not_answers.jsonl"]  # no meta.json


def test_answer_refuses_to_write_into_its_question_data(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ALIGN_TEST_NO_KEY", raising=False)
    refs = write_jsonl(tmp_path / "mt_bench" / "reference_answer" / "gpt-4.jsonl",  # answer-shaped records
                       [{"question_id": 1, "model_id": "gpt-4", "choices": [{"turns": ["4", "6"]}]}])
    before = refs.read_bytes()
    with FakeJudgeServer() as server:
        err = one_line_exit_2(_answer_argv(tmp_path, server, refs), capsys)
    assert "is also this run's input --question-dir" in err, err
    assert refs.read_bytes() == before


def test_judge_output_that_is_its_own_answer_file_is_refused(tmp_path, capsys):
    a = write_jsonl(tmp_path / "a.jsonl", _answers("a"))
    before = a.read_bytes()
    with FakeJudgeServer() as server:
        with pytest.raises(SystemExit) as exc:
            _judge(server, [a], a, "--first-n", "1")
        assert exc.value.code == 2 and server.requests == 0
    err = capsys.readouterr().err
    assert "is also this run's input --answer-file" in err and err.count("\n") == 1, err
    assert a.read_bytes() == before  # later runs still read the answers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl"]  # no run card, no lock left


@pytest.mark.parametrize("mode, existing, kind", [
    ("single", "pair", "pairwise judgment"),        # a single run into the pairwise file
    ("pairwise", "single", "single-answer judgment"),  # and the other way round
    ("single", "answers", "MT-Bench answer"),       # into another model's answers
])
def test_judge_refuses_an_output_of_another_kind(mode, existing, kind, tmp_path, capsys):
    a = write_jsonl(tmp_path / "a.jsonl", _answers("a"))
    b = write_jsonl(tmp_path / "b.jsonl", _answers("b"))
    rows = {"pair": [{"question_id": 81, "model_1": "a", "model_2": "b", "g1_winner": "model_1",
                      "g2_winner": "tie", "judge": ["gpt-4", "pair-v2"], "turn": 1}],
            "single": [_single("a", 81, 1)], "answers": _answers("c")}[existing]
    out = write_jsonl(tmp_path / "out.jsonl", rows)
    before = out.read_bytes()
    extra = ["--mode", "pairwise-baseline", "--baseline-model", "b"] if mode == "pairwise" else []
    with FakeJudgeServer() as server:
        with pytest.raises(SystemExit) as exc:
            _judge(server, [a, b], out, "--first-n", "1", *extra)
        assert exc.value.code == 2 and server.requests == 0
    err = capsys.readouterr().err
    assert f":1: a {kind} record" in err and err.count("\n") == 1, err
    assert out.read_bytes() == before


def test_report_refuses_to_overwrite_its_own_input(tmp_path, capsys):
    out = tmp_path / "report"
    judgments = write_jsonl(out / "table.md", [_single("a", 81, t) for t in (1, 2)])  # an input named table.md
    before = judgments.read_bytes()
    err = one_line_exit_2(["mtbench", "report", "--input-file", str(judgments), "--out-dir", str(out),
                   "--bootstrap", "100"], capsys)
    assert "is also this run's input --input-file" in err, err
    assert judgments.read_bytes() == before and sorted(p.name for p in out.iterdir()) == ["table.md"]


# ---------------------------------------------------------------- B: every command's run card is its own

def test_judge_and_report_keep_the_folders_run_card(tmp_path, capsys):
    folder = tmp_path / "dpo"  # a checkpoint folder with its training record
    folder.mkdir()
    dpo_card = '{"stage": "dpo", "global_step": 478}\n'
    (folder / "run_card.json").write_text(dpo_card)
    a = write_jsonl(tmp_path / "a.jsonl", _answers("a"))
    b = write_jsonl(tmp_path / "b.jsonl", _answers("b"))
    single, pair = folder / "judgments.jsonl", folder / "judgments_pair.jsonl"
    with FakeJudgeServer() as server:
        assert _judge(server, [a, b], single, "--first-n", "1") == 0
        assert _judge(server, [a, b], pair, "--first-n", "1", "--mode", "pairwise-all") == 0
    assert main(["mtbench", "report", "--input-file", str(single), str(pair), "--out-dir", str(folder),
                 "--bootstrap", "100"]) == 0
    capsys.readouterr()
    assert (folder / "run_card.json").read_text() == dpo_card  # the DPO checkpoint's record is untouched
    cards = {name: json.loads((folder / name).read_text()) for name in
             ("judgments.run_card.json", "judgments_pair.run_card.json", "report.run_card.json")}
    assert cards["judgments.run_card.json"]["mode"] == "single"  # single and pairwise each keep their own
    assert cards["judgments_pair.run_card.json"]["mode"] == "pairwise-all"
    assert cards["report.run_card.json"]["stage"] == "mtbench-report"


def test_a_run_card_of_another_stage_in_the_way_is_refused(tmp_path, capsys):
    a = write_jsonl(tmp_path / "a.jsonl", _answers("a"))
    other = tmp_path / "j.run_card.json"
    other.write_text('{"stage": "dpo"}\n')
    with FakeJudgeServer() as server:
        with pytest.raises(SystemExit) as exc:
            _judge(server, [a], tmp_path / "j.jsonl", "--first-n", "1")
        assert exc.value.code == 2 and server.requests == 0
    assert "refusing to replace it" in capsys.readouterr().err
    assert other.read_text() == '{"stage": "dpo"}\n' and not (tmp_path / "j.jsonl").exists()


# ---------------------------------------------------------------- C: one writer per output

def test_judge_while_another_holds_the_file_is_refused(tmp_path, capsys):
    a = write_jsonl(tmp_path / "a.jsonl", _answers("a"))
    out = write_jsonl(tmp_path / "j.jsonl", [_single("a", 81, 1)])
    before = out.read_bytes()
    with FakeJudgeServer() as server, output_lock(out, "--output-file"):  # the other run
        with pytest.raises(SystemExit) as exc:
            _judge(server, [a], out, "--first-n", "1")
        assert exc.value.code == 2 and server.requests == 0  # nothing paid twice
        err = capsys.readouterr().err
    assert f"--output-file {out} is in use by another align process (pid " in err and err.count("\n") == 1, err
    assert out.read_bytes() == before
    with FakeJudgeServer() as server:  # released: the next run goes ahead
        assert _judge(server, [a], out, "--first-n", "1") == 0
    assert len(_rows(out)) == 3


def test_answer_while_another_holds_the_file_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ALIGN_TEST_NO_KEY", raising=False)
    target = tmp_path / "answers" / "m.jsonl"
    with FakeJudgeServer() as server:
        argv = _answer_argv(tmp_path, server, target)
        with output_lock(target, "--answer-file"):
            err = one_line_exit_2(argv, capsys)
        assert "in use by another align process" in err and server.requests == 0
        assert main(argv) == 0
    assert sorted(r["question_id"] for r in _rows(target)) == [1, 2]


def test_report_while_another_holds_the_folder_is_refused(tmp_path, capsys):
    judgments = write_jsonl(tmp_path / "j.jsonl", [_single("a", 81, t) for t in (1, 2)])
    with output_lock(tmp_path / "report", "--out-dir"):
        err = one_line_exit_2(["mtbench", "report", "--input-file", str(judgments),
                               "--out-dir", str(tmp_path / "report"), "--bootstrap", "100"], capsys)
    assert "--out-dir" in err and "in use by another align process" in err
    assert not (tmp_path / "report").exists()


HOLDER = """import sys, time
from align.plumbing.locks import output_lock
with output_lock(sys.argv[1], "--output-file"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_lock_held_by_another_process_refuses_and_dies_with_it(tmp_path, capsys):
    """Another process holds the judgment file: refused naming its pid; killed (-9), the OS drops its lock."""
    a = write_jsonl(tmp_path / "a.jsonl", _answers("a"))
    out = write_jsonl(tmp_path / "j.jsonl", [_single("a", 81, 1)])
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with FakeJudgeServer() as server:
            with pytest.raises(SystemExit) as exc:
                _judge(server, [a], out, "--first-n", "1")
            assert exc.value.code == 2 and server.requests == 0
            assert f"(pid {holder.pid} " in capsys.readouterr().err
            holder.kill()  # as kill -9 or a crash: no clean release
            holder.wait(timeout=30)
            assert _judge(server, [a], out, "--first-n", "1") == 0
    finally:
        holder.kill()
    assert len(_rows(out)) == 3 and not (tmp_path / ".j.jsonl.lock").exists()


@pytest.mark.slow
def test_two_judge_processes_started_together_pay_once(tmp_path):
    """Two real `align mtbench judge` processes on the same answers and output: one judges, one is refused."""
    a = write_jsonl(tmp_path / "a.jsonl", _answers("a"))
    out = tmp_path / "j.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "ALIGN_TEST_NO_KEY"}
    with FakeJudgeServer(latency=3.0) as server:  # slow judge: the second starts while the first is judging
        argv = [sys.executable, "-m", "align.cli", "mtbench", "judge", "--answer-file", str(a), "--base-url",
                server.base_url, "--output-file", str(out), "--api-key-env", "ALIGN_TEST_NO_KEY", "--first-n", "1"]
        first = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while server.requests == 0 and time.time() < deadline:  # the first holds the file and is judging
            time.sleep(0.1)
        second = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        first.communicate(timeout=120)
    assert first.returncode == 0
    assert second.returncode == 2 and f"(pid {first.pid} " in second.stderr, second.stderr
    rows = _rows(out)
    assert sorted(r["turn"] for r in rows) == [1, 2] and server.requests == 2  # each turn judged and paid once
