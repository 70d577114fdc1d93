"""The judging engine shared by every judge mode: what is already judged (the output file doubles
as a cache), asking the judge for the rest in parallel, appending results as they arrive, and
`<output>.failed.jsonl` listing exactly what is still missing.

A "match" is anything with question_id, turn, prompt_name, slot, cache_key, requests(), names()
and record(judge, replies): judges.judging.command.SingleMatch (single grading, FastChat's MatchSingle)
and judges.judging.pairwise.PairMatch (FastChat's MatchPair).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

from align.plumbing.files import append_jsonl, atomic_write_jsonl, read_jsonl, write_failure_is_one_line
from judges.api.client import JudgeCallError, RejectionWatch, run_bounded
from judges.records import failed_list_path, latest_per_slot, record_slot

log = logging.getLogger("judges.judging.command")

JUDGE_TEMPERATURE = 0.0  # FastChat judges greedily


def failure_record(m, judge: str, error: str) -> dict:
    """A line of `<output>.failed.jsonl`: what to judge again (a SingleMatch or a PairMatch) and why it failed."""
    return {"question_id": m.question_id, **m.names(), "turn": m.turn, "judge": [judge, m.prompt_name],
            "error": error, "cache_key": m.cache_key, "tstamp": time.time()}


def cache_key(judge: str, prompt_name: str, question_id: int, turn: int, system_prompt: str,
              user_prompt: str, prefill: str = "") -> str:
    """What identifies a judgment's inputs (single and pairwise): same key, same prompt, no second call."""
    # The user prompt holds the question, the answer text(s) and the reference answer(s).
    fields = [judge, prompt_name, question_id, turn, system_prompt, user_prompt] + ([prefill] if prefill else [])
    blob = json.dumps(fields, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def is_invalid(rec: dict) -> bool:
    """No usable verdict: a -1 score, or a pairwise game whose verdict could not be read."""
    return rec.get("score") == -1 or "error" in (rec.get("g1_winner"), rec.get("g2_winner"))


def read_existing(output: Path) -> tuple[dict[str, dict], dict[tuple, str]]:
    """From an earlier run's output: cache_key -> judgment record, and slot -> the cache_key of its
    latest record (records.latest_per_slot's rule)."""
    # A FastChat-written row (no cache_key) is kept in the file, not used as cache.
    ours = [rec for rec in read_jsonl(output) if rec.get("cache_key")] if output.is_file() else []
    by_key = {rec["cache_key"]: rec for rec in ours}
    latest = latest_per_slot((record_slot(rec), rec) for rec in ours)
    return by_key, {slot: rec["cache_key"] for slot, rec in latest.items()}


def judge_all(matches: list, client, judge: str, output: Path, parallel: int,
              max_tokens: int, prefill: str = "", render=None) -> dict[str, int]:
    """Judge what the cache lacks, append each result as it arrives; return counts.

    `matches` are SingleMatch or pairwise.PairMatch: anything with question_id, turn, prompt_name, slot,
    cache_key, requests(), names() and record(judge, replies)."""
    by_key, latest = read_existing(output)
    failed_path = failed_list_path(output)
    counts = {"total": len(matches), "cached": 0, "copied": 0, "judged": 0, "failed": 0, "invalid": 0}
    todo: dict[str, list] = {}  # cache_key -> matches sharing that exact prompt
    for m in matches:
        if latest.get(m.slot) == m.cache_key:
            counts["cached"] += 1
            counts["invalid"] += is_invalid(by_key[m.cache_key])
        elif m.cache_key in by_key:  # same prompt already judged (another model, or an older answer)
            rec = dict(by_key[m.cache_key], **m.names(), tstamp=time.time())
            append_jsonl(output, rec)
            counts["copied"] += 1
            counts["invalid"] += is_invalid(rec)
        else:
            todo.setdefault(m.cache_key, []).append(m)
    if counts["cached"] + counts["copied"]:
        log.info("%d judgment(s) already in %s, %d copied from identical prompts", counts["cached"], output,
                 counts["copied"])

    def ask(system_prompt: str, user_prompt: str) -> str:
        messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": user_prompt}]
        if not prefill:
            return client.chat(messages, temperature=JUDGE_TEMPERATURE, max_tokens=max_tokens)
        # The reply is started with the prefill; the judgment is the whole reply.
        return prefill + client.complete(render(messages) + prefill, temperature=JUDGE_TEMPERATURE,
                                         max_tokens=max_tokens)

    def call(m) -> list[str]:
        return [ask(system_prompt, user_prompt) for system_prompt, user_prompt in m.requests()]

    failures: list[dict] = []  # the failed list is rewritten once, at the end (no duplicates, no stale rows)
    watch, told = RejectionWatch(), set()
    for first, replies, err in run_bounded(watch.watch(call), [group[0] for group in todo.values()], parallel):
        group = todo[first.cache_key]
        if err is not None:
            if not isinstance(err, JudgeCallError):
                raise err
            if str(err) not in told and not str(err).startswith("not sent: "):
                told.add(str(err))  # each distinct error said once; all of them are in the failed list
                log.warning("judgment failed: %s", err)
            for m in group:
                failures.append(failure_record(m, judge, str(err)))
            counts["failed"] += len(group)
            continue
        for m in group:
            rec = m.record(judge, replies)
            append_jsonl(output, rec)
            counts["judged"] += 1
            counts["invalid"] += is_invalid(rec)
    if watch.not_sent:
        log.error("stopped: %s; %d were not sent (all %d missing judgments are listed in %s); fix the cause and "
                  "re-run", watch.reason(), watch.not_sent, counts["failed"], failed_path)
    latest = read_existing(output)[1]
    rewrite_failed_list(failed_path, {m.slot for m in matches if latest.get(m.slot) == m.cache_key}, failures)
    return counts


def rewrite_failed_list(failed_path: Path, judged: set[tuple], failures: list[dict]) -> None:
    """`<output>.failed.jsonl` := exactly what is still missing: this run's failures, plus earlier
    entries whose slot (model(s), question, turn) is still not judged; no duplicates. Written
    atomically; removed when nothing is missing."""
    kept = {}
    if failed_path.is_file():
        for rec in read_jsonl(failed_path):
            if record_slot(rec) not in judged:
                kept[record_slot(rec)] = rec
    for rec in failures:
        kept[record_slot(rec)] = rec
    if kept:
        with write_failure_is_one_line(failed_path):
            atomic_write_jsonl(failed_path, kept.values())
    elif failed_path.exists():
        failed_path.unlink()
