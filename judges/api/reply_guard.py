"""The HTTP client under the judge's OpenAI client: a reply is read whole, within a size cap and the
request's time limit, and a 2xx completion reply must be a JSON object with `choices`.

Why here, below `openai`: the openai client retries what its HTTP client raises as a request
error (with its backoff), but a 200 carrying an HTML page from a proxy reaches the caller as a
plain string, and a body is read into memory however large it is. Raising those as request errors
while the body is read lets the library's own retry loop treat them like a dropped connection.
"""

from __future__ import annotations

import json
import time

import httpx2
import openai

MAX_REPLY_BYTES = 8 * 2**20  # a 2048-token judgment is ~10 KB; no real completion comes near 8 MiB


class BadReply(httpx2.DecodingError):
    """A reply that cannot be a completion: not JSON, or larger than the cap."""


class GuardedHttpClient(openai.DefaultHttpxClient):
    """openai's default HTTP client (its timeouts, limits, proxies), reading replies under a cap."""

    def __init__(self, *, max_reply_bytes: int = MAX_REPLY_BYTES, **kwargs):
        super().__init__(**kwargs)
        self.max_reply_bytes = max_reply_bytes

    def send(self, request: httpx2.Request, *, stream: bool = False, **kwargs) -> httpx2.Response:
        started = time.monotonic()
        response = super().send(request, stream=True, **kwargs)
        if stream:
            return response
        try:
            body = self._read(response, started + _time_limit(request))
        finally:
            response.close()
        if response.is_success and request.url.path.endswith("completions"):
            check_completion(body, request)
        headers = [(k, v) for k, v in response.headers.multi_items()
                   if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        read = httpx2.Response(response.status_code, headers=headers, content=body, request=request,
                               extensions=response.extensions)
        read.elapsed = response.elapsed  # set when the original closed
        return read

    def _read(self, response: httpx2.Response, deadline: float) -> bytes:
        """The decoded body, refusing it as soon as it passes the cap or the deadline."""
        cap, request = self.max_reply_bytes, response.request
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise BadReply(f"reply of {int(declared)} bytes, over the {cap}-byte limit", request=request)
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > cap:
                raise BadReply(f"reply over the {cap}-byte limit", request=request)
            if time.monotonic() > deadline:  # a server trickling bytes never trips a per-read timeout
                raise httpx2.ReadTimeout("reply still arriving at the time limit", request=request)
            chunks.append(chunk)
        return b"".join(chunks)


def _time_limit(request: httpx2.Request) -> float:
    """The request's read timeout (openai's `timeout`), applied to the whole reply."""
    limit = (request.extensions.get("timeout") or {}).get("read")
    return float(limit) if limit else float("inf")


def check_completion(body: bytes, request: httpx2.Request) -> None:
    """A 2xx completion reply is a JSON object with a non-empty `choices` list."""
    try:
        data = json.loads(body)
    except ValueError:
        start = body[:60].decode("utf-8", "replace").replace("\n", " ")
        raise BadReply(f"200 reply is not JSON (starts {start!r})", request=request) from None
    if not (isinstance(data, dict) and isinstance(data.get("choices"), list) and data["choices"]):
        raise BadReply("200 reply is JSON but not a completion (no choices)", request=request)
