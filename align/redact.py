"""The one place that decides what is a secret: nothing it flags reaches a log or a file."""

from __future__ import annotations

import re
from typing import Any

# Matched on a key's words, so that counts such as `num_input_tokens_seen` or tokenizer fields
# such as `pad_token` are kept.
SECRET_WORDS = {"apikey", "secret", "password", "passwd", "authorization", "credentials"}
# A key ending in "token" is a credential (hub_token, hf_token, access_token) unless it names
# a tokenizer's special token or a length.
NON_SECRET_TOKEN_PREFIXES = {"pad", "eos", "bos", "unk", "sep", "cls", "mask", "new", "special",
                             "image", "audio", "video", "start", "end", "max", "min", "per"}
REDACTED = "<redacted>"


def is_secret_key(key: Any) -> bool:
    """True for names like api_key, hub_token, --api-key, OPENAI_API_KEY; False for max_new_token."""
    words = [w for w in re.split(r"[^a-z0-9]+", str(key).lower()) if w]
    if not words:
        return False
    if SECRET_WORDS & set(words) or words[-2:] == ["api", "key"]:
        return True
    return words[-1] == "token" and (len(words) == 1 or words[-2] not in NON_SECRET_TOKEN_PREFIXES)


def redact(obj: Any) -> Any:
    """Blank secret-looking keys in nested dicts/lists before they are written anywhere."""
    if isinstance(obj, dict):
        return {k: (REDACTED if v and is_secret_key(k) else redact(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    return obj


def redact_argv(argv: list[str]) -> list[str]:
    """A command line with the value of every secret flag (`--api_key X`, `--hub-token=X`) blanked."""
    out = [str(a) for a in argv]
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
