"""`transformers serve` as a local OpenAI-compatible server, and the `openai` answer backend against it."""

from __future__ import annotations

import json
import urllib.request

import pytest
from conftest import write_jsonl
from test_answer import QUESTIONS, chatty_llama_dir  # noqa: F401  (fixture)

from align.cli import main
from align.errors import UserError
from judges.serve import local_server, served_model_name

SERVED = [q for q in QUESTIONS if q["question_id"] in (1, 3, 5)]  # math, reasoning (greedy), writing (0.7)


def healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(base_url.removesuffix("/v1") + "/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.mark.slow
def test_openai_backend_against_transformers_serve(chatty_llama_dir, tmp_path):  # noqa: F811
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
    import judges.backends.openai_api
    from judges.serve import free_port

    monkeypatch.setattr(judges.backends.openai_api, "OPENAI_MAX_RETRIES", 0)
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


def test_loopback_only_and_names(tmp_path, chatty_llama_dir):  # noqa: F811
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
