"""`transformers serve` as a local OpenAI-compatible server, and the `openai` answer backend against it."""

from __future__ import annotations

import json
import urllib.request

import pytest
from conftest import write_jsonl
from test_answer import QUESTIONS

from align.cli import main
from align.plumbing.errors import UserError
from judges.api.serve import local_server, served_model_name

SERVED = [q for q in QUESTIONS if q["question_id"] in (1, 3, 5)]  # math, reasoning (greedy), writing (0.7)


def healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(base_url.removesuffix("/v1") + "/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.mark.slow
def test_openai_backend_against_transformers_serve(chatty_llama_dir, tmp_path):
    write_jsonl(tmp_path / "mt_bench" / "question.jsonl", SERVED)
    common = ["--model-id", "tiny", "--question-dir", str(tmp_path / "mt_bench"), "--max-new-token", "8"]
    log_path = tmp_path / "serve.log"
    with local_server(str(chatty_llama_dir), log_path=str(log_path), extra_args=["--dtype", "float32"]) as url:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        assert healthy(url)
        served = tmp_path / "served.jsonl"
        assert main(["mtbench", "answer", "--backend", "openai", "--base-url", url, "--parallel", "3",
                     "--model-path", served_model_name(chatty_llama_dir), "--answer-file", str(served), *common]) == 0
    assert not healthy(url)  # stopped on exit
    assert log_path.exists()  # the caller's log is kept

    local = tmp_path / "local.jsonl"
    assert main(["mtbench", "answer", "--model-path", str(chatty_llama_dir), "--answer-file", str(local),
                 "--batch-size", "1", *common]) == 0
    by_server = {r["question_id"]: r for r in map(json.loads, served.read_text().splitlines())}
    by_hf = {r["question_id"]: r for r in map(json.loads, local.read_text().splitlines())}
    assert sorted(by_server) == [1, 3, 5]
    for qid in (1, 3):  # greedy: the server and the in-process backend produce the same text
        turns = by_server[qid]["choices"][0]["turns"]
        assert len(turns) == 2 and all(turns)
        assert turns == by_hf[qid]["choices"][0]["turns"]
    meta = json.loads((tmp_path / "served.jsonl.meta.json").read_text())
    assert meta["backend"] == "openai" and meta["base_url"] == url


def test_unreachable_server_records_nothing(tmp_path, monkeypatch, capsys):
    import judges.answers.backends.openai_api
    from judges.api.serve import free_port

    monkeypatch.setattr(judges.answers.backends.openai_api, "OPENAI_MAX_RETRIES", 0)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    write_jsonl(tmp_path / "mt_bench" / "question.jsonl", SERVED)
    out = tmp_path / "a.jsonl"
    with pytest.raises(SystemExit) as exc:
        main(["mtbench", "answer", "--backend", "openai", "--base-url", f"http://127.0.0.1:{free_port()}/v1",
              "--model-path", "m", "--model-id", "m", "--answer-file", str(out),
              "--question-dir", str(tmp_path / "mt_bench")])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert "3 question(s) got no answer" in captured.err and "re-run" in captured.err
    assert "sk-test-secret" not in captured.err + captured.out
    assert not out.exists()


@pytest.mark.slow
def test_server_that_cannot_start_names_its_log(tmp_path):
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    log_path = tmp_path / "bad.log"
    with pytest.raises(UserError, match="see .*bad.log"):
        with local_server(str(bad), log_path=str(log_path), startup_timeout=120):
            pass
    assert log_path.read_text()  # the server's own error is there to read


def test_loopback_only_and_names(tmp_path, chatty_llama_dir):
    with pytest.raises(UserError, match="--host"):
        with local_server(str(chatty_llama_dir), extra_args=["--host", "0.0.0.0"]):
            pass
    with pytest.raises(UserError, match="no such checkpoint"):
        with local_server(str(tmp_path / "missing")):
            pass
    assert served_model_name(chatty_llama_dir) == str(chatty_llama_dir.resolve())
    (tmp_path / "a@b").mkdir()
    with pytest.raises(UserError, match="'@'"):
        served_model_name(tmp_path / "a@b")


def _children(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    try:
        return [int(p) for p in open(path).read().split()]
    except FileNotFoundError:
        return []


@pytest.mark.slow  # a real `transformers serve` start-up (~10-20 s on CPU)
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_real_local_judge_server_ends_with_the_judge(chatty_llama_dir, tmp_path, how):
    """issue 26.6: SIGTERM (or kill -9) to `align mtbench judge --judge-model DIR` left `transformers serve`
    running, orphaned, still listening."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO
    from test_judge import _answers

    answers = write_jsonl(tmp_path / "a.jsonl", _answers("a"))
    out = tmp_path / "j.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "align.cli", "mtbench", "judge", "--judge-model",
                             str(chatty_llama_dir), "--answer-file", str(answers), "--output-file", str(out),
                             "--max-tokens", "4"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    server_log = out.with_name(out.name + ".server.log")
    deadline = time.monotonic() + 240
    while "Uvicorn running" not in (server_log.read_text() if server_log.exists() else ""):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    servers = _children(proc.pid)
    assert len(servers) == 1
    url = next(line for line in server_log.read_text().splitlines() if "Uvicorn running" in line)
    base = "http://" + url.split("http://", 1)[1].split()[0]
    proc.send_signal(getattr(signal, how))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if how == "SIGTERM" else -9), err
    deadline = time.monotonic() + 30
    while True:
        try:
            state = open(f"/proc/{servers[0]}/stat").read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            break
        if state == "Z":
            break
        assert time.monotonic() < deadline, "transformers serve outlived the judge"
        time.sleep(0.2)
    assert not healthy(base + "/v1")
