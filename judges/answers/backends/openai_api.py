"""`--backend openai`: any OpenAI-compatible server (vLLM, SGLang, `transformers serve`), in parallel.

Requests go through judges/api/client.py: the one OpenAI client path (retries, timeouts, API key from
the variable --api-key-env names, $OPENAI_API_KEY by default) and its bounded thread pool.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator

from align.plumbing.errors import UserError
from align.plumbing.redact import redact_url
from judges.api.client import ChatClient, JudgeCallError, RejectionWatch, run_bounded
from judges.questions import api_temperature

log = logging.getLogger(__name__)

ANSWER_TIMEOUT_S = 600.0  # one answer of up to --max-new-token tokens from a busy server
OPENAI_MAX_RETRIES = 5  # per request; the client backs off between them (see judges/api/client.py)


def answers(args: argparse.Namespace, questions: list[dict]) -> Iterator[tuple[dict, list[dict]]]:
    """Each question is one worker: its turns go in order, questions run `--parallel` at a time."""
    client = ChatClient(args.model_path, base_url=args.base_url, api_key_env=args.api_key_env,
                        max_retries=OPENAI_MAX_RETRIES, timeout=ANSWER_TIMEOUT_S)

    def answer(question: dict) -> list[dict]:
        choices = []
        for choice in range(args.num_choices):
            messages, turns = [], []
            for text in question["turns"]:
                messages.append({"role": "user", "content": text})
                out = client.chat(messages, temperature=api_temperature(question), max_tokens=args.max_new_token,
                                  seed=args.seed + choice).strip()
                messages.append({"role": "assistant", "content": out})
                turns.append(out)
            choices.append({"index": choice, "turns": turns})
        return choices

    failures, watch = [], RejectionWatch()
    for question, choices, err in run_bounded(watch.watch(answer), questions, args.parallel, desc="requests"):
        if err is None:
            yield question, choices
            continue
        if not isinstance(err, JudgeCallError):
            raise err  # a bug, not a server that failed to answer
        failures.append(question["question_id"])
        if not str(err).startswith("not sent: "):
            log.warning("question %s failed: %s", question["question_id"], str(err).splitlines()[0][:200])
    if watch.not_sent:
        raise UserError(f"stopped: {watch.reason()}; {len(failures)} question(s) got no answer "
                        f"({watch.not_sent} not asked); fix the cause and re-run to answer only those")
    if failures:
        raise UserError(f"{len(failures)} question(s) got no answer from {redact_url(args.base_url)} "
                        f"(ids {sorted(failures)}); re-run to answer only those")
