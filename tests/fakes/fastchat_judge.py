"""FastChat's own judge code with its OpenAI call intercepted: the prompts it would send, recorded."""

from __future__ import annotations

import sys
import types


def capture_fastchat_judge(monkeypatch, reply: str):
    """(fastchat.llm_judge.common, sent): every judge call FastChat makes answers `reply` and appends
    (messages, temperature, max_tokens) to `sent`."""
    monkeypatch.setitem(sys.modules, "anthropic", types.ModuleType("anthropic"))  # imported, unused here
    from fastchat.llm_judge import common

    sent = []

    def fake_completion(model, conv, temperature, max_tokens, api_dict=None):
        sent.append((conv.to_openai_api_messages(), temperature, max_tokens))
        return reply

    monkeypatch.setattr(common, "chat_completion_openai", fake_completion)
    return common, sent
