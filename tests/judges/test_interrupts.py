"""SIGTERM, like Ctrl-C, ends `align mtbench judge|answer` cleanly (issues 24, 26.6): the local judge's
server goes with its parent (kill -9 too), the port is free, what was written is whole, a re-run
finishes the job without redoing or duplicating anything."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, write_jsonl
from fakes.judge_server import FakeJudgeServer
from test_answer import QUESTIONS
from test_judge import _answers

LOCAL_JUDGE = REPO / "tests" / "fakes" / "local_judge.py"


def wait_for(condition, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def gone(pid: int) -> bool:
    """No such process, or a zombie nobody has reaped yet (it holds no port and runs nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def port_free(port: int) -> bool:
    """Nobody listens there, and a new server can listen there (as servers do, with SO_REUSEADDR:
    the closed connections' TIME_WAIT entries do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
        return True


def start_local_judge(tmp_path: Path, latency: float, *extra: str) -> tuple[subprocess.Popen, Path, int, int]:
    """The judge command with a local judge directory (the fake server standing in for transformers
    serve), started until its first judgment is written; returns it, the output, the server's port and pid."""
    judge_dir = tmp_path / "tiny-judge"
    judge_dir.mkdir(exist_ok=True)
    files = [write_jsonl(tmp_path / f"{m}.jsonl", _answers(m)) for m in ("a", "b", "c")]
    out = tmp_path / "j.jsonl"
    argv = [sys.executable, str(LOCAL_JUDGE), str(latency), "mtbench", "judge", "--judge-model", str(judge_dir),
            "--answer-file", *map(str, files), "--output-file", str(out), "--parallel", "2", *extra]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    server_log = out.with_name(out.name + ".server.log")
    wait_for(lambda: lines(out) or proc.poll() is not None, what="the first judgment")
    assert proc.poll() is None, proc.communicate()
    url, pid = lines(server_log)[0].split()
    return proc, out, int(url.rsplit(":", 1)[1].split("/")[0]), int(pid)


def test_sigterm_to_the_judge_stops_its_local_server(tmp_path):
    proc, out, port, server_pid = start_local_judge(tmp_path, latency=0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    wait_for(lambda: gone(server_pid), timeout=5, what="the server to end")
    assert port_free(port)
    written = [json.loads(line) for line in lines(out)]  # whole records only
    assert 1 <= len(written) < 18
    assert not out.with_name(out.name + ".failed.jsonl").exists()  # an interrupt is not a failure

    rerun = subprocess.run([sys.executable, str(LOCAL_JUDGE), "0", *proc.args[3:]], cwd=REPO,
                           capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    slots = [(r["model"], r["question_id"], r["turn"]) for r in map(json.loads, lines(out))]
    assert len(slots) == len(set(slots)) == 18  # 3 models x 3 questions x 2 turns, none twice


def test_the_local_server_dies_with_a_killed_judge(tmp_path):
    proc, _, port, server_pid = start_local_judge(tmp_path, latency=0.3)
    proc.kill()  # kill -9: no cleanup runs in the judge; the kernel tells the server
    proc.communicate(timeout=20)
    wait_for(lambda: gone(server_pid), timeout=10, what="the orphaned server to end")
    wait_for(lambda: port_free(port), timeout=5, what="the port to be free")


def test_sigterm_to_answer_leaves_whole_records_and_a_rerun_finishes(tmp_path):
    write_jsonl(tmp_path / "mt_bench" / "question.jsonl", QUESTIONS)
    out = tmp_path / "m.jsonl"
    argv = [sys.executable, "-m", "align.cli", "mtbench", "answer", "--backend", "openai", "--model-path", "m",
            "--model-id", "m", "--answer-file", str(out), "--question-dir", str(tmp_path / "mt_bench"),
            "--parallel", "2", "--api-key-env", "ALIGN_TEST_NO_KEY"]
    with FakeJudgeServer(latency=0.2) as server:
        proc = subprocess.Popen([*argv, "--base-url", server.base_url], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        wait_for(lambda: lines(out) or proc.poll() is not None, what="the first answer")
        server.latency = 30.0  # the requests in flight now hang: the command must not wait for them
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert time.monotonic() - started < 10
        assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
        before = [json.loads(line)["question_id"] for line in lines(out)]  # whole records only
        assert 1 <= len(before) < len(QUESTIONS)

        server.latency = 0.0
        rerun = subprocess.run([*argv, "--base-url", server.base_url], cwd=REPO, capture_output=True, text=True,
                               timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    ids = [json.loads(line)["question_id"] for line in lines(out)]
    assert sorted(ids) == sorted(q["question_id"] for q in QUESTIONS)  # each once
