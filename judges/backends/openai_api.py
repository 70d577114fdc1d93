"""`--backend openai`: any OpenAI-compatible server (vLLM, SGLang, `transformers serve`), in parallel."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed

from align.errors import UserError
from judges.questions import api_temperature

log = logging.getLogger(__name__)

# The OpenAI client retries 429/5xx/timeouts itself, with exponential backoff and Retry-After.
OPENAI_MAX_RETRIES = 5


def answers(args: argparse.Namespace, questions: list[dict]) -> Iterator[tuple[dict, list[dict]]]:
    """Each question is one worker: its turns go in order, questions run `--parallel` at a time."""
    import openai

    client = openai.OpenAI(base_url=args.base_url, api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"),
                           max_retries=OPENAI_MAX_RETRIES, timeout=600)

    def answer(question: dict) -> list[dict]:
        choices = []
        for choice in range(args.num_choices):
            messages, turns = [], []
            for text in question["turns"]:
                messages.append({"role": "user", "content": text})
                resp = client.chat.completions.create(
                    model=args.model_path, messages=messages, max_tokens=args.max_new_token,
                    temperature=api_temperature(question), seed=args.seed + choice)
                out = (resp.choices[0].message.content or "").strip()
                messages.append({"role": "assistant", "content": out})
                turns.append(out)
            choices.append({"index": choice, "turns": turns})
        return choices

    failures = []
    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        futures = {pool.submit(answer, q): q for q in questions}
        for fut in as_completed(futures):
            q = futures[fut]
            try:
                yield q, fut.result()
            except openai.OpenAIError as err:
                failures.append(q["question_id"])
                log.warning("question %s failed: %s", q["question_id"], str(err).splitlines()[0][:200])
    if failures:
        raise UserError(f"{len(failures)} question(s) got no answer from {args.base_url} "
                        f"(ids {sorted(failures)}); re-run to answer only those")
