"""The one place that decides what is a secret: nothing it flags reaches a log or a file."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

# Matched on a key's words, so that counts such as `num_input_tokens_seen` or tokenizer fields
# such as `pad_token` are kept.
SECRET_WORDS = {"apikey", "secret", "password", "passwd", "authorization", "credentials"}
# A key ending in "token" is a credential (hub_token, hf_token, access_token) unless it names
# a tokenizer's special token or a length.
NON_SECRET_TOKEN_PREFIXES = {"pad", "eos", "bos", "unk", "sep", "cls", "mask", "new", "special",
                             "image", "audio", "video", "start", "end", "max", "min", "per"}
REDACTED = "<redacted>"
# In a URL's query, these words also mark a credential (`?key=`, `?sig=`, Azure's `subscription-key`).
QUERY_SECRET_WORDS = {"key", "sig", "signature", "auth", "jwt", "session"}
URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


def is_secret_key(key: Any) -> bool:
    """True for names like api_key, hub_token, --api-key, OPENAI_API_KEY; False for max_new_token."""
    words = [w for w in re.split(r"[^a-z0-9]+", str(key).lower()) if w]
    if not words:
        return False
    if SECRET_WORDS & set(words) or words[-2:] == ["api", "key"]:
        return True
    return words[-1] == "token" and (len(words) == 1 or words[-2] not in NON_SECRET_TOKEN_PREFIXES)


def _is_secret_query_name(name: str) -> bool:
    words = set(re.split(r"[^a-z0-9]+", unquote(name).lower()))
    return is_secret_key(name) or bool(QUERY_SECRET_WORDS & words)


def redact_url(url: str) -> str:
    """A URL with the credentials it carries blanked: the userinfo password (`http://user:<redacted>@h`;
    a lone user part, often a token, entirely) and secret-looking query values (`?api-key=`, `?key=`,
    `?token=`, `?sig=`). Anything that is not such a URL comes back unchanged."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        has_userinfo = "@" in parts.netloc
        password, username = parts.password, parts.username
    except ValueError:  # not a URL urllib can read (a bad port): keep only what cannot be a credential
        return url.split("://", 1)[0] + f"://{REDACTED}" if "://" in url else url
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if has_userinfo:
        netloc = f"{username}:{REDACTED}@{host}" if password is not None else f"{REDACTED}@{host}"
    query = "&".join(f"{name}={REDACTED}" if eq and value and _is_secret_query_name(name) else f"{name}{eq}{value}"
                     for name, eq, value in (item.partition("=") for item in parts.query.split("&"))
                     ) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Every URL inside a piece of text (a log line, an error message) with its credentials blanked."""
    return URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text) if "://" in text else text


def redact(obj: Any) -> Any:
    """Blank secret-looking keys, and the credentials inside URLs, in nested dicts/lists before they
    are written anywhere."""
    if isinstance(obj, dict):
        return {k: (REDACTED if v and is_secret_key(k) else redact(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj)
    return obj


def redact_argv(argv: list[str]) -> list[str]:
    """A command line with the value of every secret flag (`--api_key X`, `--hub-token=X`) blanked."""
    out = [redact_text(str(a)) for a in argv]  # a URL's credentials, under any flag
    for i, arg in enumerate(out):
        if not arg.startswith("--"):
            continue
        name, eq, _ = arg.partition("=")
        if not is_secret_key(name):
            continue
        if eq:
            out[i] = f"{name}={REDACTED}"
        elif i + 1 < len(out) and not out[i + 1].startswith("--"):
            out[i + 1] = REDACTED
    return out
