"""A tiny OpenAI-compatible chat server on 127.0.0.1 for judge tests and the judge benchmark.

It answers `POST /v1/chat/completions` with a judgment ending in "Rating: [[N]]" (or, for FastChat's
pairwise prompts, whose system prompt asks for "[[A]]", a verdict: `verdict_for`) and can inject
faults: a scripted queue (`faults`) consumed one per request, and `fail_if` (a substring of the user
prompt that always gets the fault `fail_with`, HTTP 500 by default). It counts requests. Faults:
"429" (with `retry_after`), "500", "400" (a rejection whose error text is `reject_message`), "slow"
(`slow_seconds` before the reply), "garbage" (no rating), "out-of-range", and replies a proxy or a
broken server sends: "html" (200 with an HTML page), "reset" (the connection reset, no reply),
"truncated" (the body cut off before its Content-Length), "huge" (200 with `huge_bytes` of body) and
"trickle" (200 whose body arrives one byte every 0.05 s for `slow_seconds`); and "gzip", a good
reply sent compressed (as OpenAI's servers send them). Usage:

    with FakeJudgeServer(latency=0.5) as server:
        server.faults += ["429", "500"]
        ... base_url=server.base_url ...
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def rating_for(user_prompt: str) -> int:
    """A deterministic 1-10 rating per prompt, so tests can predict scores."""
    return 1 + int(hashlib.sha256(user_prompt.encode()).hexdigest(), 16) % 10


def verdict_for(user_prompt: str) -> str:
    """A deterministic pairwise verdict per prompt: "[[A]]", "[[B]]" or "[[C]]" (a tie).

    An answer containing "BEST" wins whichever position it is in; otherwise the verdict is a hash of
    the prompt, so the two orders of a match disagree about half the time (as a position-biased judge)."""
    answer_a = user_prompt.split("Assistant A", 1)[-1].split("Assistant B", 1)[0]
    answer_b = user_prompt.split("Assistant B", 1)[-1]
    if ("BEST" in answer_a) != ("BEST" in answer_b):
        return "[[A]]" if "BEST" in answer_a else "[[B]]"
    return ("[[A]]", "[[B]]", "[[C]]")[int(hashlib.sha256(user_prompt.encode()).hexdigest(), 16) % 3]


class FakeJudgeServer:
    def __init__(self, latency: float = 0.0, slow_seconds: float = 5.0, retry_after: str = "0.05", port: int = 0):
        self.latency = latency
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.faults: list[str] = []
        self.fail_if: str | None = None
        self.fail_with = "500"
        self.huge_bytes = 4 * 2**20
        self.reject_message = "Input length 3000 exceeds the model's maximum of 2048 positions"
        self.requests = 0
        self.completed = 0  # requests answered with a usable 200
        self.seen: list[dict] = []  # request bodies, in arrival order
        self.auth_headers: list[str | None] = []
        self.timeline: list[tuple[float, float]] = []  # (arrival, reply sent) per request, perf_counter
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeJudgeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next_fault(self, user_prompt: str) -> str | None:
        with self.lock:
            self.requests += 1
            if self.fail_if and self.fail_if in user_prompt:
                return self.fail_with
            return self.faults.pop(0) if self.faults else None

    def _handler(self):
        # Over 60 lines on purpose: the whole fake protocol (faults included) reads as one class.
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, status: int, body: dict, headers: dict | None = None, gzipped: bool = False) -> None:
                data = json.dumps(body).encode()
                if gzipped:
                    data = gzip.compress(data)
                    headers = {**(headers or {}), "Content-Encoding": "gzip"}
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def _send_raw(self, status: int, content_type: str, head: bytes, length: int | None = None,
                          tail: list[bytes] = (), pause: float = 0.0) -> None:
                """Status and headers, `head`, then each of `tail` after `pause` s; `length` may lie."""
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                if length is not None:
                    self.send_header("Content-Length", str(length))
                self.end_headers()
                self.close_connection = True
                try:
                    self.wfile.write(head)
                    for chunk in tail:
                        self.wfile.flush()
                        time.sleep(pause)
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading (the tests' point)

            def _reset(self) -> None:
                """Close with a TCP reset (SO_LINGER 0): the client sees "connection reset by peer"."""
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

            def _misbehave(self, fault: str) -> bool:
                """The faults of a proxy or a broken server; False when `fault` is none of them."""
                if fault == "html":
                    page = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"
                    self._send_raw(200, "text/html", page, len(page))
                elif fault == "reset":
                    self._reset()
                elif fault == "truncated":
                    self._send_raw(200, "application/json", b'{"id": "chatcmpl-fake", "choi', 400)
                elif fault == "huge":  # close-delimited (no Content-Length), as a runaway stream would be
                    self._send_raw(200, "application/json", b"[", None, [b" " * 65536] * (server.huge_bytes // 65536))
                elif fault == "trickle":
                    self._send_raw(200, "application/json", b" ", None, [b" "] * int(server.slow_seconds / 0.05), 0.05)
                else:
                    return False
                return True

            def do_GET(self):
                if self.path == "/health":
                    self._send(200, {"status": "ok"})
                else:
                    self._send(200, {"object": "list", "data": [{"id": "fake-judge", "object": "model"}]})

            def do_POST(self):
                arrival = time.perf_counter()
                try:
                    self._chat()
                finally:
                    with server.lock:
                        server.timeline.append((arrival, time.perf_counter()))

            def _chat(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                user = next((m["content"] for m in body.get("messages", []) if m.get("role") == "user"), "")
                system = next((m["content"] for m in body.get("messages", []) if m.get("role") == "system"), "")
                with server.lock:
                    server.seen.append(body)
                    server.auth_headers.append(self.headers.get("Authorization"))
                fault = server._next_fault(user)
                if server.latency:
                    time.sleep(server.latency)
                if fault == "429":
                    return self._send(429, {"error": {"message": "rate limited"}},
                                      {"Retry-After": server.retry_after})
                if fault == "500":  # no Retry-After: the client's own exponential backoff applies
                    return self._send(500, {"error": {"message": "boom"}})
                if fault == "400":
                    return self._send(400, {"error": {"message": server.reject_message, "type": "BadRequestError"}})
                if fault and self._misbehave(fault):
                    return
                if fault == "slow":
                    time.sleep(server.slow_seconds)
                if fault == "garbage":
                    text = "The answer is fine overall, but I will not give a number."
                elif fault == "out-of-range":
                    text = "Excellent beyond measure. Rating: [[11]]"
                elif "[[A]]" in system:
                    text = f"Both answers were compared. {verdict_for(user)}"
                else:
                    text = f"The response is adequate. Rating: [[{rating_for(user)}]]"
                with server.lock:
                    server.completed += 1
                self._send(200, {
                    "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "fake-judge"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }, gzipped=fault == "gzip")

        return Handler


if __name__ == "__main__":  # a standalone server: python tests/fakes/judge_server.py [LATENCY [PORT]]
    import sys

    latency = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    with FakeJudgeServer(latency=latency, port=int(sys.argv[2]) if len(sys.argv) > 2 else 0) as s:
        print(s.base_url, os.getpid(), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
