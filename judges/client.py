"""OpenAI-compatible chat calls for judging: configured retries, bounded parallelism.

The `openai` client already retries 408/409/429/5xx and timeouts with exponential backoff and
jitter (0.5 s doubling up to 8 s, minus up to 25 %), and honours `Retry-After` /
`retry-after-ms` up to 60 s; we only choose how many retries and how long a request may take.
The API key comes from an environment variable and lives only inside the client object.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TypeVar
from urllib.parse import urlparse

from align.errors import UserError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_MAX_RETRIES = 6  # ~0.5+1+2+4+8+8 s of backoff before a judgment is given up
DEFAULT_TIMEOUT_S = 300.0  # one judgment of up to 2048 tokens from a slow endpoint


class JudgeCallError(Exception):
    """A chat call that still failed after the client's retries (message carries no secret)."""


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
        raise UserError(f"{flag} {api_key_env}: that environment variable is not set, and {base_url} is not a "
                        f"loopback server; export {api_key_env}=... (or {api_key_env}=EMPTY for a server "
                        "that takes no key)")
    if (api_key_env, base_url) not in _told_no_key:
        _told_no_key.add((api_key_env, base_url))
        log.info("%s is not set: no API key is sent to %s (a loopback server)", api_key_env, base_url)
    return "EMPTY"


class ChatClient:
    """One shared, thread-safe OpenAI client for a judge model at an OpenAI-compatible endpoint."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 max_retries: int = DEFAULT_MAX_RETRIES, timeout: float = DEFAULT_TIMEOUT_S):
        from openai import OpenAI

        self.model = model
        self.base_url = base_url
        self._client = OpenAI(api_key=resolve_api_key(api_key_env, base_url), base_url=base_url,
                              max_retries=max_retries, timeout=timeout)

    def chat(self, messages: list[dict], *, temperature: float = 0.0, max_tokens: int = 2048,
             seed: int | None = None) -> str:
        """The first choice's text. Raises JudgeCallError once the client's retries are spent."""
        seeded = {} if seed is None else {"seed": seed}
        response = self._request(self._client.chat.completions.create, messages=messages,
                                 temperature=temperature, max_tokens=max_tokens, **seeded)
        text = response.choices[0].message.content if response.choices else None
        if text is None:
            raise JudgeCallError(f"empty response from {self._where()}")
        return text

    def complete(self, prompt: str, *, temperature: float = 0.0, max_tokens: int = 2048) -> str:
        """Plain-text completion (`/v1/completions`) of an already rendered prompt."""
        response = self._request(self._client.completions.create, prompt=prompt,
                                 temperature=temperature, max_tokens=max_tokens)
        text = response.choices[0].text if response.choices else None
        if text is None:
            raise JudgeCallError(f"empty response from {self._where()}")
        return text

    def _request(self, create, **kwargs):
        """One API call; the errors left after the client's retries become JudgeCallError."""
        import openai

        try:
            return create(model=self.model, n=1, **kwargs)
        except openai.APIStatusError as err:
            raise JudgeCallError(f"HTTP {err.status_code} from {self._where()}") from None
        except openai.APITimeoutError:
            raise JudgeCallError(f"timed out talking to {self._where()}") from None
        except openai.APIConnectionError:
            raise JudgeCallError(f"could not connect to {self._where()}") from None

    def _where(self) -> str:
        return self.base_url or "the OpenAI API"


def run_bounded(fn: Callable[[T], R], items: Iterable[T], parallel: int,
                desc: str = "judging") -> Iterator[tuple[T, R | None, Exception | None]]:
    """Run `fn` over `items` with at most `parallel` calls in flight; yield (item, result, error)
    as each finishes, in the caller's thread (so the caller can append results one by one)."""
    from tqdm.auto import tqdm

    items = list(items)
    if parallel < 1:
        raise UserError(f"--parallel must be >= 1, got {parallel}")
    with ThreadPoolExecutor(max_workers=parallel) as pool, tqdm(total=len(items), desc=desc) as bar:
        futures = {pool.submit(fn, item): item for item in items}
        try:
            for future in as_completed(futures):
                bar.update(1)
                err = future.exception()
                yield futures[future], (None if err else future.result()), err
        finally:  # on Ctrl-C, don't start what has not started yet
            for future in futures:
                future.cancel()
