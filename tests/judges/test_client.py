"""The judge client against a local fake server: retries, Retry-After, backoff, timeouts, keys, parallelism."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from fakes.judge_server import FakeJudgeServer

from align.plumbing.errors import UserError
from judges.api.client import ChatClient, JudgeCallError, resolve_api_key, run_bounded

MESSAGES = [{"role": "system", "content": "You are a judge."}, {"role": "user", "content": "Rate this."}]


@pytest.fixture
def server():
    with FakeJudgeServer() as s:
        yield s


def test_429_waits_as_retry_after_says(server, waits):
    server.retry_after = "0.25"
    server.faults += ["429", "429"]
    text = ChatClient("judge", base_url=server.base_url, max_retries=3).chat(MESSAGES)
    assert "[[" in text
    assert server.requests == 3
    assert waits.sleeps == [0.25, 0.25]  # the server's delay, not the client's own backoff


def test_5xx_backs_off_exponentially_with_jitter(server, waits):
    server.faults += ["500", "500", "500"]
    text = ChatClient("judge", base_url=server.base_url, max_retries=4).chat(MESSAGES)
    assert text.startswith("The response")
    assert server.requests == 4
    assert len(waits.sleeps) == 3
    for i, wait in enumerate(waits.sleeps):  # 0.5 * 2**i, minus up to 25 % jitter
        assert 0.75 * 0.5 * 2 ** i <= wait <= 0.5 * 2 ** i


def test_timeout_is_retried(server, waits):
    server.slow_seconds = 3.0
    server.faults += ["slow"]
    text = ChatClient("judge", base_url=server.base_url, max_retries=2, timeout=0.5).chat(MESSAGES)
    assert "Rating" in text
    assert server.requests == 2 and len(waits.sleeps) == 1


def test_gives_up_after_retries(server, waits):
    server.fail_if = "Rate"  # every request fails
    with pytest.raises(JudgeCallError, match="HTTP 500"):
        ChatClient("judge", base_url=server.base_url, max_retries=2).chat(MESSAGES)
    assert server.requests == 3  # first try + 2 retries


def test_api_key_from_env_only(server, monkeypatch):
    monkeypatch.setenv("ALIGN_TEST_JUDGE_KEY", "sk-test-secret")
    ChatClient("judge", base_url=server.base_url, api_key_env="ALIGN_TEST_JUDGE_KEY").chat(MESSAGES)
    assert server.auth_headers[-1] == "Bearer sk-test-secret"
    monkeypatch.delenv("ALIGN_TEST_JUDGE_KEY")
    assert resolve_api_key("ALIGN_TEST_JUDGE_KEY", server.base_url) == "EMPTY"  # local server: no key needed
    with pytest.raises(UserError, match="ALIGN_TEST_JUDGE_KEY"):
        resolve_api_key("ALIGN_TEST_JUDGE_KEY", None)  # OpenAI itself: a key is required


def test_run_bounded_caps_calls_in_flight():
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def work(i: int) -> int:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        if i == 5:
            raise JudgeCallError("boom")
        return i * i

    results = {item: (res, err) for item, res, err in run_bounded(work, range(12), parallel=3)}
    assert 2 <= state["peak"] <= 3
    assert results[4] == (16, None)
    assert results[5][0] is None and isinstance(results[5][1], JudgeCallError)
    assert len(results) == 12


def test_retry_is_logged_without_the_key(server, waits, monkeypatch, caplog):
    monkeypatch.setenv("ALIGN_TEST_JUDGE_KEY", "sk-never-log-me")
    server.faults += ["429"]
    with caplog.at_level(logging.DEBUG):
        ChatClient("judge", base_url=server.base_url, api_key_env="ALIGN_TEST_JUDGE_KEY").chat(MESSAGES)
    assert "Retrying request" in caplog.text
    assert "sk-never-log-me" not in caplog.text
