"""Credentials inside URLs (userinfo, secret-looking query parameters) never reach a file or a log."""

from __future__ import annotations

import pytest

from align.plumbing.redact import redact, redact_argv, redact_url


@pytest.mark.parametrize("url, expected", [
    ("http://user:s3cr3t@host:8000/v1", "http://user:<redacted>@host:8000/v1"),
    ("https://tok_abc@host/v1", "https://<redacted>@host/v1"),
    ("https://host/v1?api-key=s3cr3t&api-version=2024-06-01",
     "https://host/v1?api-key=<redacted>&api-version=2024-06-01"),
    ("https://host/v1?key=s3cr3t", "https://host/v1?key=<redacted>"),
    ("https://host/v1?access_token=s3cr3t&token=t2&sig=s&subscription-key=k&x=1",
     "https://host/v1?access_token=<redacted>&token=<redacted>&sig=<redacted>&subscription-key=<redacted>&x=1"),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ("https://host/v1?max_tokens=5", "https://host/v1?max_tokens=5"),
    ("not a url", "not a url"),
])
def test_redact_url(url, expected):
    assert redact_url(url) == expected


def test_urls_are_redacted_in_records_and_command_lines():
    card = {"base_url": "http://u:pw123@h/v1?key=k999", "nested": ["see https://h/x?api_key=k888"]}
    text = repr(redact(card))
    assert "pw123" not in text and "k999" not in text and "k888" not in text
    argv = redact_argv(["align", "mtbench", "judge", "--base-url", "http://u:pw123@h/v1?key=k999",
                        "--other=https://h/?token=k777"])
    assert not any(s in " ".join(argv) for s in ("pw123", "k999", "k777"))
    assert argv[3] == "--base-url" and argv[4].startswith("http://u:<redacted>@h/v1")
