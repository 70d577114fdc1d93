"""Chat, preference and text datasets: hub id, local jsonl/json/parquet file or directory, every row checked.

Chat rows carry `messages`; preference rows carry `chosen` and `rejected`, full conversations
that share the prompt and differ in the final assistant turn (UltraFeedback-binarized shape);
text rows (continued pretraining) carry one non-empty string, in `text` or the column the recipe
names (`text_column`), handed to TRL as `text`.
Other columns (`prompt`, `prompt_id`, `score_*`, ...) are dropped before TRL sees the data:
TRL guesses the dataset format from its columns. Messages keep only `role` and `content`.

A row that fails a check stops the run with file, row and problem named, or, with
`invalid_rows: skip`, is dropped and counted (the count goes in the run card).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from align.plumbing.errors import UserError
from align.plumbing.files import file_sha256
from align.train.text_files import InvalidJSON, read_local_rows

log = logging.getLogger(__name__)

CHAT_COLUMNS = ("messages",)
PREFERENCE_COLUMNS = ("chosen", "rejected")
TEXT_COLUMN = "text"  # the column text rows reach TRL under, whatever the source calls it
LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


@dataclass
class LoadedData:
    dataset: Any  # datasets.Dataset with only the needed columns
    source: str
    fingerprint: str
    rows_read: int
    rows_kept: int
    rows_skipped: int
    skipped_examples: list[str] = field(default_factory=list)  # the first few problems, for the log / run card
    files: list[dict] | None = None  # a local text corpus: each file read (path, bytes, sha256)

    def card(self) -> dict:
        card = {"source": self.source, "fingerprint": self.fingerprint, "rows_read": self.rows_read,
                "rows_kept": self.rows_kept, "rows_skipped_invalid": self.rows_skipped,
                "skipped_examples": self.skipped_examples}
        return card if self.files is None else {**card, "files": self.files}


def conversation_problem(messages: Any) -> str | None:
    """Why `messages` is not a valid training conversation, or None when it is."""
    if not isinstance(messages, list) or not messages:
        return "expected a non-empty list of {role, content} messages"
    start = 1 if isinstance(messages[0], dict) and messages[0].get("role") == "system" else 0
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            return f"message {i} is not a mapping with role and content"
        content = msg.get("content")
        if not isinstance(content, str) or not content.strip():
            return f"message {i} ({msg.get('role')}) has empty or non-string content"
        if i >= start:
            expected = "user" if (i - start) % 2 == 0 else "assistant"
            if msg.get("role") != expected:
                return f"message {i} has role {msg.get('role')!r}, expected {expected!r} (roles must alternate)"
    if messages[-1].get("role") != "assistant":
        return "the last message must be the assistant's"
    return None


def preference_problem(row: dict) -> str | None:
    for key in PREFERENCE_COLUMNS:
        problem = conversation_problem(row.get(key))
        if problem:
            return f"{key}: {problem}"
    chosen, rejected = row["chosen"], row["rejected"]
    if _clean(chosen[:-1]) != _clean(rejected[:-1]):
        return "chosen and rejected do not share the same prompt"
    if chosen[-1]["content"] == rejected[-1]["content"]:
        return "chosen and rejected have the same final answer"
    return None


def text_problem(value: Any, column: str) -> str | None:
    if not isinstance(value, str) or not value.strip():
        got = "nothing" if value is None else repr(value) if isinstance(value, str) else type(value).__name__
        return f"column {column!r}: expected non-empty text, got {got}"
    return None


def row_columns(kind: str, text_column: str = TEXT_COLUMN) -> tuple[str, ...]:
    """The columns a row of this kind must have in its source."""
    return {"chat": CHAT_COLUMNS, "preference": PREFERENCE_COLUMNS, "text": (text_column,)}[kind]


def _clean(messages: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _load_with_datasets(name: str, config: str | None, split: str, columns: tuple[str, ...]):
    import datasets

    path = Path(name)
    try:
        if path.is_file():
            ds = datasets.load_dataset(LOCAL_FORMATS[path.suffix], data_files=str(path), split="train")
        else:
            ds = datasets.load_dataset(name, config, split=split)
    except (FileNotFoundError, ValueError, datasets.exceptions.DatasetNotFoundError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"dataset {name!r} (split {split!r}) could not be loaded: {first}") from None
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise UserError(f"dataset {name!r}: missing column(s) {missing}; it has {ds.column_names}")
    return ds.select_columns(list(columns))


def _disk_backed(rows: list[dict], name: str):
    """The rows as an Arrow file in the datasets cache, the same path on every process.

    An in-memory Dataset puts its derived cache files in a per-process temp dir, and TRL's
    precomputed reference log-probs are written by rank 0 and read by all ranks next to the
    dataset, so under several processes the dataset must live in a shared file.
    """
    import os

    import datasets

    cache = Path(datasets.config.HF_DATASETS_CACHE) / "align-rows"
    path = cache / f"{name}.arrow"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f".{name}.{os.getpid()}.arrow"
        datasets.Dataset.from_list(rows).map(lambda row: row, cache_file_name=str(tmp), desc="caching rows")
        os.replace(tmp, path)  # atomic: a concurrent process sees all of the file or none
    return datasets.Dataset.from_file(str(path))


def _explicit_prompt(row: dict) -> dict:
    """TRL's explicit-prompt preference rows (prompt + answer-only chosen/rejected) -> full conversations."""
    prompt = row.pop("prompt", None)
    if isinstance(prompt, list):
        for key in ("chosen", "rejected"):
            answer = row.get(key)
            if isinstance(answer, list) and answer and isinstance(answer[0], dict) \
                    and answer[0].get("role") == "assistant":
                row[key] = prompt + answer
    return row


def _checked_row(row: Any, kind: str, text_column: str = TEXT_COLUMN) -> tuple[str | None, dict | None]:
    """(problem, None) for a row that cannot be trained on, else (None, its training columns cleaned)."""
    if isinstance(row, InvalidJSON):
        return row.problem, None
    if kind == "text":
        problem = text_problem(row.get(text_column), text_column)
        return (problem, None) if problem else (None, {TEXT_COLUMN: row[text_column]})
    row = _explicit_prompt(dict(row)) if kind == "preference" else dict(row)
    problem = conversation_problem(row.get("messages")) if kind == "chat" else preference_problem(row)
    extra = row.get("chat_template_kwargs")
    if not problem and extra is not None and not isinstance(extra, dict):
        problem = "chat_template_kwargs must be a mapping"
    if problem:
        return problem, None
    clean = {c: _clean(row[c]) for c in (CHAT_COLUMNS if kind == "chat" else PREFERENCE_COLUMNS)}
    if extra is not None:
        clean["chat_template_kwargs"] = extra
    return None, clean


def checked_rows(labelled: Iterable[tuple[str, Any]], kind: str, invalid_rows: str, tally: dict,
                 text_column: str = TEXT_COLUMN) -> Iterator[dict]:
    """The one row check of every loader, one row at a time: (label, row) pairs -> clean rows; `tally`
    counts `read`, `skipped` and keeps the first problems in `examples`.

    A bad row stops the run naming its label, or with `invalid_rows: skip` is left out and counted."""
    from tqdm.auto import tqdm

    tally.update(read=0, skipped=0, examples=[])
    for label, row in tqdm(labelled, desc=f"checking {kind} rows", unit="row", mininterval=2):
        tally["read"] += 1
        problem, clean = _checked_row(row, kind, text_column)
        if problem:
            if invalid_rows != "skip":
                raise UserError(f"{label}: {problem}")
            tally["skipped"] += 1
            if len(tally["examples"]) < 5:
                tally["examples"].append(f"{label}: {problem}")
            continue
        yield clean


def check_rows(labelled: Iterable[tuple[str, Any]], kind: str, invalid_rows: str,
               text_column: str = TEXT_COLUMN) -> tuple[list[dict], int, list[str], int]:
    """checked_rows as a list -> (clean rows, skipped, first problems, read)."""
    tally: dict = {}
    kept = list(checked_rows(labelled, kind, invalid_rows, tally, text_column))
    return kept, tally["skipped"], tally["examples"], tally["read"]


def _disk_backed_text(rows: Iterable[dict], name: str):
    """Text rows written to their Arrow file as they are read (never a list of the whole corpus), the same
    path on every process (see _disk_backed) -> (dataset, rows written)."""
    import os

    import datasets
    from datasets.arrow_writer import ArrowWriter

    cache = Path(datasets.config.HF_DATASETS_CACHE) / "align-rows"
    cache.mkdir(parents=True, exist_ok=True)
    path, tmp = cache / f"{name}.arrow", cache / f".{name}.{os.getpid()}.arrow"
    writer = ArrowWriter(features=datasets.Features({TEXT_COLUMN: datasets.Value("string")}), path=str(tmp))
    try:
        for row in rows:
            writer.write(row)
        written, _ = writer.finalize()
    finally:
        writer.close()
    if path.exists():  # the same rows (the name holds their fingerprint), written by an earlier or parallel run
        tmp.unlink()
    else:
        os.replace(tmp, path)  # atomic: a concurrent process sees all of the file or none
    return datasets.Dataset.from_file(str(path)), written


def load_rows(name: str, *, kind: str, config: str | None = None, split: str = "train",
              max_rows: int | None = None, invalid_rows: str = "error", text_column: str = TEXT_COLUMN):
    """Load, cap, check and clean a chat, preference or text dataset -> LoadedData."""
    from align.train.text_files import corpus_files, corpus_fingerprint, corpus_rows, file_card, is_text_corpus

    columns = row_columns(kind, text_column)
    path = Path(name)
    files = None
    if kind == "text" and is_text_corpus(path):  # a file or folder of text: every file in it is read
        files = [file_card(f) for f in corpus_files(path, split)]
        labelled = corpus_rows([Path(f["path"]) for f in files], text_column, invalid_rows)
        labelled = labelled if max_rows is None else itertools.islice(labelled, max_rows)
        fingerprint = corpus_fingerprint(files)
    elif path.is_file() and path.suffix not in LOCAL_FORMATS:
        raise UserError(f"{path}: unsupported data file type (expected one of {sorted(LOCAL_FORMATS)})")
    elif path.is_file() and path.suffix in (".jsonl", ".json"):
        labelled = read_local_rows(path, invalid_rows)
        for label, row in labelled:
            if not isinstance(row, (dict, InvalidJSON)):
                raise UserError(f"{label}: expected a JSON object with {list(columns)}")
        first = next(((label, row) for label, row in labelled if isinstance(row, dict)), None)
        missing = [c for c in columns if first and c not in first[1]]
        if missing:
            raise UserError(f"{first[0]}: missing key(s) {missing} (a {kind} row needs {list(columns)})")
        fingerprint = "sha256:" + file_sha256(path)
    else:
        ds = _load_with_datasets(name, config, split, columns)
        if max_rows is not None:
            ds = ds.select(range(min(max_rows, len(ds))))
        where = str(path) if path.is_file() else f"{name}[{split}]"
        labelled = ((f"{where} row {i}", row) for i, row in enumerate(ds))
        fingerprint = "sha256:" + file_sha256(path) if path.is_file() else ds._fingerprint
    if max_rows is not None and isinstance(labelled, list):
        labelled = labelled[:max_rows]

    tally: dict = {}
    if kind == "text":  # a corpus: checked rows go straight to their Arrow file
        key = hashlib.sha256(json.dumps([kind, fingerprint, max_rows, invalid_rows, text_column]).encode()
                             ).hexdigest()[:16]
        dataset, kept = _disk_backed_text(checked_rows(labelled, kind, invalid_rows, tally, text_column),
                                          f"{kind}-{key}")
    else:
        rows = list(checked_rows(labelled, kind, invalid_rows, tally, text_column))
        key = hashlib.sha256(json.dumps([kind, fingerprint, max_rows, invalid_rows, tally["read"], text_column]
                                        ).encode()).hexdigest()[:16]
        dataset, kept = (_disk_backed(rows, f"{kind}-{key}") if rows else None), len(rows)
    read, skipped, examples = tally["read"], tally["skipped"], tally["examples"]
    if skipped:
        log.warning("skipped %d invalid %s rows of %d (first: %s)", skipped, kind, read, examples[0])
    if not kept:
        raise UserError(f"dataset {name!r}: no valid {kind} rows (read {read}, skipped {skipped})")
    return LoadedData(dataset, source=name, fingerprint=fingerprint, rows_read=read, rows_kept=kept,
                      rows_skipped=skipped, skipped_examples=examples, files=files)
