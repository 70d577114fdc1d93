"""Held-out rows for `align heldout`: the first N rows of a chat or preference test split, each with a stable id.

Sources, as the training recipes take them: a local .jsonl / .json / .parquet file, or a hub dataset
id with a split (UltraChat-200k `test_sft`, UltraFeedback-binarized `test_prefs`). Chat rows carry
`messages`; preference rows carry `chosen` and `rejected`, full conversations that share the prompt
(or TRL's explicit form: a `prompt` message list with answer-only `chosen`/`rejected`).

Ids: `prompt_id` when every selected row has one and they are unique, else the row's index in the
source. Either way the same data gives every model the same ids, so per-row values pair up.
A malformed row is left out and named in the output (the same rows are left out for every model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from align.plumbing.errors import UserError
from align.plumbing.files import is_hub_id, numbered_json_lines, offline_flag

LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


@dataclass
class HeldoutRows:
    rows: dict[str, dict]  # id -> the row's conversation(s)
    id_field: str  # "prompt_id" or "index"
    source: str
    read: int
    skipped: dict[str, str] = field(default_factory=dict)  # id -> why it was left out


def _jsonl_head(path: Path, limit: int) -> list[Any]:
    # any JSON value: a row that is not an object is left out with its reason by load_heldout
    return [row for _, row in islice(numbered_json_lines(path, torn_tail=False), limit)]


def _dataset_head(source: str, split: str, limit: int) -> list[Any]:
    import datasets

    path = Path(source)
    try:
        if path.is_file():
            ds = datasets.load_dataset(LOCAL_FORMATS[path.suffix], data_files=str(path), split="train")
        else:
            ds = datasets.load_dataset(source, split=split)
    except Exception as err:  # datasets raises many kinds (offline, missing split, bad file): one line each
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"--data {source} (split {split!r}) could not be loaded: {first}") from None
    return list(ds.select(range(min(limit, len(ds)))))


def read_head(source: str, split: str, limit: int) -> list[Any]:
    """The first `limit` rows of a local file or hub dataset split."""
    path = Path(source)
    if path.is_file():
        if path.suffix not in LOCAL_FORMATS:
            raise UserError(f"--data {path}: unsupported file type (expected one of {sorted(LOCAL_FORMATS)})")
        if path.suffix == ".jsonl":
            return _jsonl_head(path, limit)
    elif not is_hub_id(source):
        raise UserError(f"--data {source}: not a .jsonl/.json/.parquet file nor a hub dataset id (org/name)")
    elif offline_flag():
        raise UserError(f"--data {source}: a hub dataset, but {offline_flag()}=1; give a local .jsonl/.json/.parquet "
                        "file of the split")
    return _dataset_head(source, split, limit)


def conversation_problem(messages: Any) -> str | None:
    """Why `messages` is not a conversation ending in an assistant turn, or None."""
    if not isinstance(messages, list) or not messages:
        return "expected a non-empty list of {role, content} messages"
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str) \
                or not isinstance(msg.get("content"), str):
            return f"message {i} is not a mapping with string role and content"
    if messages[-1]["role"] != "assistant":
        return "the last message must be the assistant's"
    return None


def _clean(messages: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def checked(row: Any, kind: str) -> tuple[str | None, dict | None]:
    """(problem, None) or (None, {messages} / {chosen, rejected}) with only role and content kept."""
    if not isinstance(row, dict):
        return "not a JSON object", None
    if kind == "sft":
        problem = conversation_problem(row.get("messages"))
        return (f"messages: {problem}", None) if problem else (None, {"messages": _clean(row["messages"])})
    pair = {key: row.get(key) for key in ("chosen", "rejected")}
    prompt = row.get("prompt")
    if isinstance(prompt, list):  # TRL's explicit-prompt form: answer-only chosen/rejected
        pair = {key: prompt + value if isinstance(value, list) else value for key, value in pair.items()}
    for key, value in pair.items():
        problem = conversation_problem(value)
        if problem:
            return f"{key}: {problem}", None
    chosen, rejected = _clean(pair["chosen"]), _clean(pair["rejected"])
    if chosen[:-1] != rejected[:-1]:
        return "chosen and rejected do not share the same prompt", None
    return None, {"chosen": chosen, "rejected": rejected}


def _ids(raw: list[Any]) -> tuple[list[str], str]:
    ids = [row.get("prompt_id") if isinstance(row, dict) else None for row in raw]
    if all(isinstance(i, (str, int)) for i in ids) and len({str(i) for i in ids}) == len(ids):
        return [str(i) for i in ids], "prompt_id"
    return [str(i) for i in range(len(raw))], "index"


def load_heldout(source: str, split: str, rows: int, kind: str) -> HeldoutRows:
    """The first `rows` rows of `source`, checked for `kind` ('sft' or 'dpo'), keyed by stable ids."""
    raw = read_head(source, split, rows)
    if not raw:
        raise UserError(f"--data {source}: no rows")
    ids, id_field = _ids(raw)
    out = HeldoutRows(rows={}, id_field=id_field, source=source, read=len(raw))
    for row_id, row in zip(ids, raw):
        problem, clean = checked(row, kind)
        if problem:
            out.skipped[row_id] = problem
        else:
            out.rows[row_id] = clean
    if not out.rows:
        first = next(iter(out.skipped.items()))
        raise UserError(f"--data {source}: no usable {kind} rows of {len(raw)} (row {first[0]}: {first[1]})")
    return out
