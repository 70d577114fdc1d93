"""Replies a proxy or a broken server sends (issues 24, 26): each is a retried error, bounded in time
and memory, then a JudgeCallError with one clear line; a rejection (4xx) says what the server said."""

from __future__ import annotations

import time

import pytest
from fakes.judge_server import FakeJudgeServer
from test_client import MESSAGES

from judges.api.client import ChatClient, JudgeCallError

MISBEHAVIOURS = {  # fault -> what the error says once the retries are spent
    "html": "not JSON",
    "reset": "connection",
    "truncated": "cut off",
    "huge": "over the",
}


@pytest.fixture
def server():
    with FakeJudgeServer() as s:
        yield s


def client(server, **kwargs) -> ChatClient:
    return ChatClient("judge", base_url=server.base_url, **kwargs)


@pytest.mark.parametrize("fault", sorted(MISBEHAVIOURS))
def test_a_bad_reply_is_retried_like_a_5xx(server, waits, fault):
    server.faults += [fault]
    text = client(server, max_retries=2, max_reply_bytes=2**20).chat(MESSAGES)
    assert "Rating: [[" in text
    assert server.requests == 2 and len(waits.sleeps) == 1  # one backoff, then the good reply


@pytest.mark.parametrize("fault", sorted(MISBEHAVIOURS))
def test_a_bad_reply_every_time_is_a_judge_call_error(server, waits, fault):
    server.fail_if, server.fail_with = "Rate", fault
    with pytest.raises(JudgeCallError) as exc:
        client(server, max_retries=2, max_reply_bytes=2**20).chat(MESSAGES)
    message = str(exc.value)
    assert MISBEHAVIOURS[fault] in message and server.base_url in message and "\n" not in message
    assert server.requests == 3  # first try + 2 retries, as for a 5xx


def test_a_gigantic_reply_is_not_read_into_memory(server, waits):
    import tracemalloc

    server.huge_bytes = 64 * 2**20
    server.fail_if, server.fail_with = "Rate", "huge"
    capped = client(server, max_retries=0, max_reply_bytes=2**20)
    tracemalloc.start()
    try:
        with pytest.raises(JudgeCallError, match="over the 1048576-byte limit"):
            capped.chat(MESSAGES)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20  # the cap and a chunk (measured: 1.4 MiB), not the 64 MiB the server offered


def test_a_reply_that_never_ends_times_out(server, waits):
    server.slow_seconds = 3.0
    server.fail_if, server.fail_with = "Rate", "trickle"  # a byte every 0.05 s: no read ever times out
    started = time.monotonic()
    with pytest.raises(JudgeCallError, match="timed out"):
        client(server, max_retries=1, timeout=0.5).chat(MESSAGES)
    assert time.monotonic() - started < 2.5  # two tries of ~0.5 s, not two of 3 s
    assert server.requests == 2


def test_a_rejection_says_what_the_server_said_once(server, waits, monkeypatch):
    monkeypatch.setenv("ALIGN_TEST_JUDGE_KEY", "sk-test-secret-123")
    server.reject_message = "prompt too long (5000 > 2048 positions); key sk-test-secret-123 " + "x" * 500
    server.fail_if, server.fail_with = "Rate", "400"
    with pytest.raises(JudgeCallError) as exc:
        client(server, max_retries=3, api_key_env="ALIGN_TEST_JUDGE_KEY").chat(MESSAGES)
    message = str(exc.value)
    assert message.startswith(f"HTTP 400 from {server.base_url}: prompt too long (5000 > 2048 positions)")
    assert "sk-test-secret-123" not in message and "<redacted>" in message
    assert len(message) < 400 and "\n" not in message
    assert exc.value.rejected
    assert server.requests == 1 and waits.sleeps == []  # a 400 is not retried


def test_retry_after_beyond_the_bound_is_not_waited_for(server, waits):
    server.retry_after = "3600"
    server.fail_if, server.fail_with = "Rate", "429"
    with pytest.raises(JudgeCallError, match="HTTP 429") as exc:
        client(server, max_retries=3).chat(MESSAGES)
    assert "Retry-After 3600" in str(exc.value)
    assert not exc.value.rejected  # a rate limit is not the judge refusing the request
    assert server.requests == 1 and waits.sleeps == []


def test_a_compressed_reply_reads_as_usual(server, waits):
    server.faults += ["gzip"]
    assert "Rating: [[" in client(server, max_retries=0).chat(MESSAGES)
    assert server.requests == 1
