"""OpenAI-compatible chat calls for judging: configured retries, bounded parallelism.

The `openai` client already retries 408/409/429/5xx, timeouts and broken connections with
exponential backoff and jitter (0.5 s doubling up to 8 s, minus up to 25 %), and honours
`Retry-After` / `retry-after-ms` up to 120 s (a longer one is not waited for: the call fails);
we choose how many retries and how long a request may take, and its HTTP client
(judges/api/reply_guard.py) turns a reply that is no completion (an HTML page, a body cut off, one
past the size cap, one still trickling in at the time limit) into an error it retries the same way.
The API key comes from an environment variable and lives only inside the client object.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TypeVar
from urllib.parse import urlparse

from align.plumbing.errors import UserError
from align.plumbing.redact import REDACTED, redact_url

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_MAX_RETRIES = 6  # ~0.5+1+2+4+8+8 s of backoff before a judgment is given up
DEFAULT_TIMEOUT_S = 300.0  # one judgment of up to 2048 tokens from a slow endpoint
SERVER_TEXT_CHARS = 200  # of a server's error text, in a one-line message
RETRYABLE_4XX = (408, 409, 429)  # what the openai client retries below 500
STOP_AFTER_REJECTIONS = 5  # rejections before any success that stop a run (RejectionWatch)
CREDENTIAL = re.compile(r"(?i)\b(?:bearer\s+|sk-)[\w.-]+")  # a key the server echoes back


class JudgeCallError(Exception):
    """A chat call that still failed after the client's retries (message carries no secret).

    `rejected`: the server refused the request itself (a 4xx it is not worth retrying, such as a
    prompt longer than the model's positions), so every similar request will likely fail too."""

    def __init__(self, message: str, rejected: bool = False):
        super().__init__(message)
        self.rejected = rejected


class RejectionWatch:
    """Stops a run whose server refuses everything: once the first STOP_AFTER_REJECTIONS results,
    before any success, are all rejections (a 4xx not worth retrying: a prompt longer than the
    model's positions, a wrong model name, a bad key), the requests not yet sent fail at once with
    "not sent" instead of each being refused in turn. One success and the watch never stops the run:
    a few prompts too long for the judge are then just failed judgments."""

    def __init__(self, limit: int = STOP_AFTER_REJECTIONS):
        self.limit = limit
        self.rejections = 0
        self.succeeded = False
        self.first: JudgeCallError | None = None
        self.stopped = False
        self.not_sent = 0  # requests refused because the watch had stopped the run
        self._lock = threading.Lock()

    def reason(self) -> str:
        return f"the first {self.rejections} requests were all rejected, the first with: {self.first}"

    def watch(self, fn: Callable[[T], R]) -> Callable[[T], R]:
        """`fn`, counting its rejections and refusing to start once the watch has stopped the run."""
        def watched(item: T) -> R:
            if self.stopped:
                with self._lock:
                    self.not_sent += 1
                raise JudgeCallError(f"not sent: {self.reason()}", rejected=True)
            try:
                result = fn(item)
            except JudgeCallError as err:
                with self._lock:
                    if err.rejected and not self.succeeded:
                        self.rejections += 1
                        self.first = self.first or err
                        self.stopped = self.stopped or self.rejections >= self.limit
                raise
            with self._lock:
                self.succeeded = True
            return result
        return watched


def is_loopback(base_url: str) -> bool:
    host = urlparse(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_told_no_key: set[tuple[str, str]] = set()


def resolve_api_key(api_key_env: str, base_url: str | None, flag: str = "--api-key-env") -> str:
    """The key from `api_key_env`. Unset: an error for OpenAI itself and for any non-loopback endpoint
    (a typo in the variable name must not send unauthenticated calls to a paid service); a loopback
    server gets the placeholder "EMPTY" (local servers take none), said once."""
    key = os.environ.get(api_key_env, "").strip()
    if key:
        return key
    if base_url is None:
        raise UserError(f"no API key: set the environment variable {api_key_env} "
                        "(or pass --base-url for a server that needs none)")
    if not is_loopback(base_url):
        raise UserError(f"{flag} {api_key_env}: that environment variable is not set, and {redact_url(base_url)} is "
                        f"not a loopback server; export {api_key_env}=... (or {api_key_env}=EMPTY for a server "
                        "that takes no key)")
    if (api_key_env, base_url) not in _told_no_key:
        _told_no_key.add((api_key_env, base_url))
        log.info("%s is not set: no API key is sent to %s (a loopback server)", api_key_env, redact_url(base_url))
    return "EMPTY"


class ChatClient:
    """One shared, thread-safe OpenAI client for a judge model at an OpenAI-compatible endpoint."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 max_retries: int = DEFAULT_MAX_RETRIES, timeout: float = DEFAULT_TIMEOUT_S,
                 max_reply_bytes: int | None = None):
        from openai import OpenAI

        from judges.api.reply_guard import MAX_REPLY_BYTES, GuardedHttpClient

        self.model = model
        self.base_url = base_url
        self._key = resolve_api_key(api_key_env, base_url)
        http = GuardedHttpClient(max_reply_bytes=max_reply_bytes or MAX_REPLY_BYTES)
        self._client = OpenAI(api_key=self._key, base_url=base_url, max_retries=max_retries, timeout=timeout,
                              http_client=http)

    def chat(self, messages: list[dict], *, temperature: float = 0.0, max_tokens: int = 2048,
             seed: int | None = None) -> str:
        """The first choice's text. Raises JudgeCallError once the client's retries are spent."""
        seeded = {} if seed is None else {"seed": seed}
        response = self._request(self._client.chat.completions.create, messages=messages,
                                 temperature=temperature, max_tokens=max_tokens, **seeded)
        try:
            text = response.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            text = None
        if not isinstance(text, str):
            raise JudgeCallError(f"empty response from {self._where()}")
        return text

    def complete(self, prompt: str, *, temperature: float = 0.0, max_tokens: int = 2048) -> str:
        """Plain-text completion (`/v1/completions`) of an already rendered prompt."""
        response = self._request(self._client.completions.create, prompt=prompt,
                                 temperature=temperature, max_tokens=max_tokens)
        try:
            text = response.choices[0].text
        except (AttributeError, IndexError, TypeError):
            text = None
        if not isinstance(text, str):
            raise JudgeCallError(f"empty response from {self._where()}")
        return text

    def _request(self, create, **kwargs):
        """One API call; the errors left after the client's retries become one-line JudgeCallErrors."""
        import openai

        try:
            return create(model=self.model, n=1, **kwargs)
        except openai.APIStatusError as err:
            raise self._status_error(err) from None
        except openai.APITimeoutError:
            raise JudgeCallError(f"timed out talking to {self._where()}") from None
        except openai.APIConnectionError as err:
            raise JudgeCallError(self._connection_problem(err.__cause__)) from None

    def _status_error(self, err) -> JudgeCallError:
        """`HTTP 400 from URL: <what the server said>`; a 4xx it is no use retrying is a rejection."""
        code = err.status_code
        message = f"HTTP {code} from {self._where()}: {self._server_text(err.response)}"
        retry_after = err.response.headers.get("retry-after")
        if code == 429 and retry_after:
            message += f" (Retry-After {retry_after} s: longer than the client waits, or the retries ran out)"
        return JudgeCallError(message, rejected=400 <= code < 500 and code not in RETRYABLE_4XX)

    def _server_text(self, response) -> str:
        """The server's own error text, on one line, credentials blanked, cut to SERVER_TEXT_CHARS."""
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if isinstance(body, dict):  # OpenAI/vLLM: {"error": {"message"}}; FastAPI: {"detail"}
            inner = body.get("error", body)
            body = (inner.get("message") or inner.get("detail") or body) if isinstance(inner, dict) else inner
        text = " ".join(str(body).split())
        if self._key and self._key != "EMPTY":
            text = text.replace(self._key, REDACTED)
        text = CREDENTIAL.sub(REDACTED, text)
        return text if len(text) <= SERVER_TEXT_CHARS else text[:SERVER_TEXT_CHARS] + "..."

    def _connection_problem(self, cause: BaseException | None) -> str:
        """What went wrong below HTTP: no connection, a reply cut off, or one that is no completion."""
        import httpx2

        from judges.api.reply_guard import BadReply

        where = self._where()
        if isinstance(cause, BadReply):
            return f"{cause} from {where}"
        if isinstance(cause, httpx2.ConnectError) or cause is None:
            return f"could not connect to {where}"
        if isinstance(cause, httpx2.RemoteProtocolError):
            return f"reply from {where} cut off ({cause})"
        return f"connection to {where} failed ({type(cause).__name__}: {cause})"

    def _where(self) -> str:
        """The endpoint as messages, logs and failed lists name it: credentials in the URL blanked."""
        return redact_url(self.base_url) if self.base_url else "the OpenAI API"


def run_bounded(fn: Callable[[T], R], items: Iterable[T], parallel: int,
                desc: str = "judging") -> Iterator[tuple[T, R | None, Exception | None]]:
    """Run `fn` over `items` with at most `parallel` calls in flight; yield (item, result, error)
    as each finishes, in the caller's thread (so the caller can append results one by one).

    When the caller stops early (Ctrl-C, SIGTERM, or a `break`), nothing more is started and the
    calls in flight are not waited for: their results are dropped, and a re-run redoes them."""
    from tqdm.auto import tqdm

    items = list(items)
    if parallel < 1:
        raise UserError(f"--parallel must be >= 1, got {parallel}")
    pool = ThreadPoolExecutor(max_workers=parallel)
    finished = False
    try:
        with tqdm(total=len(items), desc=desc) as bar:
            futures = {pool.submit(fn, item): item for item in items}
            for future in as_completed(futures):
                bar.update(1)
                err = future.exception()
                yield futures[future], (None if err else future.result()), err
        finished = True
    finally:
        pool.shutdown(wait=finished, cancel_futures=True)
