"""Local data files: the JSON row readers every loader uses (file:line labels, one-line UTF-8 and JSON
errors), and a local text corpus as `align cpt` reads it into text rows: one file, or every file of a folder.

    .txt              the whole file is ONE document (as `align tokenize` reads it)
    .jsonl / .json    one document per row, in the text column (.jsonl read a line at a time)
    .parquet          one document per row of the text column (read a batch at a time)

A file and a folder are read alike. A folder is listed as `datasets` lists one (recursively, hidden
files and README.md left out; files named for a split (train*, test*, validation*, ...) belong to that
split, otherwise every file is the train split), and every listed file is read whatever its format:
a folder mixing .jsonl and .txt trains on both. A file of any other type is refused, never skipped.
The run card lists each file read (path, bytes, sha256).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from align.plumbing.errors import UserError
from align.plumbing.files import file_sha256

SUFFIXES = (".txt", ".jsonl", ".json", ".parquet")


# ---------------------------------------------------------------------- local JSON rows (every loader)

@dataclass
class InvalidJSON:
    """A .jsonl line that is not JSON, kept in place so `invalid_rows: skip` can count it."""

    problem: str


def not_utf8(path: Path, err: UnicodeDecodeError) -> UserError:
    """One line naming the file, the byte offset and its line for text that is not UTF-8."""
    data = path.read_bytes()
    guess = " (it looks like UTF-16: it starts with a byte-order mark)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") \
        else " (it may be binary)" if b"\x00" in data[:4] else ""
    line = data.count(b"\n", 0, err.start) + 1
    return UserError(f"{path}: not UTF-8 text{guess}: {err.reason} at byte {err.start} (line {line}); "
                     "save it as UTF-8")


def read_local_rows(path: Path, invalid_rows: str = "error") -> list[tuple[str, Any]]:
    """(row label, row) pairs from a local jsonl/json file, labels naming file and line/index.

    A .jsonl line that is not JSON stops the run, or with `invalid_rows: skip` becomes an InvalidJSON
    row that is counted as skipped. A file that is not UTF-8 is one error naming it.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise not_utf8(path, err) from None
    if path.suffix == ".jsonl":
        rows = []
        for lineno, line in enumerate(text.split("\n"), start=1):  # not splitlines: JSON may hold U+2028
            if not line.strip():
                continue
            try:
                rows.append((f"{path}:{lineno}", json.loads(line)))
            except json.JSONDecodeError as err:
                if invalid_rows != "skip":
                    raise UserError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
                rows.append((f"{path}:{lineno}", InvalidJSON(f"not valid JSON ({err.msg})")))
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of rows (or use .jsonl, one row per line)")
    return [(f"{path} row {i}", row) for i, row in enumerate(data)]


# ---------------------------------------------------------------------- a text corpus (cpt)

def is_text_corpus(path: Path) -> bool:
    """A local source this module reads for text rows: a folder, or a file of one of its formats."""
    return path.is_dir() or (path.is_file() and path.suffix in SUFFIXES)


def corpus_files(path: Path, split: str = "train") -> list[Path]:
    """The files of `split`: the file itself, or the folder's files for that split (sorted)."""
    if path.is_file():
        return [path]
    from datasets.data_files import DataFilesDict, get_data_patterns

    try:
        by_split = DataFilesDict.from_patterns(get_data_patterns(str(path)), str(path))
    except FileNotFoundError:  # datasets' word for "no data file in it"
        by_split = {}
    files = by_split.get(split)
    if not files:
        named = sorted(str(s) for s in by_split)
        raise UserError(f"{path}: no file for split {split!r} in the folder"
                        + (f" (its files belong to {named}: files are split by name, train*, test*, ...)"
                           if named else " (it is empty)"))
    files = sorted(Path(f) for f in files)
    for f in files:
        if f.suffix not in SUFFIXES:
            raise UserError(f"{f}: not a text corpus file (read: {', '.join(SUFFIXES)}): move it out of {path} or "
                            "convert it; nothing in a corpus folder is skipped")
    return files


def file_card(path: Path) -> dict[str, Any]:
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def corpus_fingerprint(cards: list[dict]) -> str:
    """One fingerprint of the files read: their paths and contents (a single file: its own sha256)."""
    if len(cards) == 1:
        return "sha256:" + cards[0]["sha256"]
    digest = hashlib.sha256(json.dumps([(c["path"], c["sha256"]) for c in cards]).encode())
    return "sha256:" + digest.hexdigest()


def _txt_document(path: Path, column: str) -> tuple[str, dict]:
    try:
        return str(path), {column: path.read_text(encoding="utf-8")}
    except UnicodeDecodeError as err:
        raise not_utf8(path, err) from None


def _parquet_rows(path: Path, column: str) -> Iterator[tuple[str, dict]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # noqa: BLE001 - pyarrow's errors for a bad file vary by version
        raise UserError(f"{path}: not a readable parquet file ({str(err).strip().splitlines()[0]})") from None
    if column not in parquet.schema_arrow.names:
        raise UserError(f"{path}: no {column!r} column (a text row needs it; it has {parquet.schema_arrow.names[:8]})")
    index = 0
    for batch in parquet.iter_batches(batch_size=1024, columns=[column]):
        for value in batch.column(0).to_pylist():
            yield f"{path} row {index}", {column: value}
            index += 1


def _jsonl_rows(path: Path, column: str, invalid_rows: str) -> Iterator[tuple[str, Any]]:
    """A .jsonl file a line at a time (lines end at \\n only: JSON text may hold U+2028), labels file:line."""
    first = True
    with open(path, "rb") as fh:
        offset = 0
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise UserError(f"{path}: not UTF-8 text: {err.reason} at byte {offset + err.start} (line {lineno}); "
                                "save it as UTF-8") from None
            offset += len(raw)
            if not line.strip():
                continue
            label = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                if invalid_rows != "skip":
                    raise UserError(f"{label}: not valid JSON ({err.msg})") from None
                yield label, InvalidJSON(f"not valid JSON ({err.msg})")
                continue
            if not isinstance(row, dict):
                raise UserError(f"{label}: expected a JSON object with [{column!r}]")
            if first and column not in row:
                raise UserError(f"{label}: missing key(s) [{column!r}] (a text row needs [{column!r}])")
            first = False
            yield label, row


def _json_rows(path: Path, column: str, invalid_rows: str) -> list[tuple[str, Any]]:
    rows = read_local_rows(path, invalid_rows)
    for label, row in rows:
        if not isinstance(row, (dict, InvalidJSON)):
            raise UserError(f"{label}: expected a JSON object with [{column!r}]")
    first = next(((label, row) for label, row in rows if isinstance(row, dict)), None)
    if first and column not in first[1]:
        raise UserError(f"{first[0]}: missing key(s) [{column!r}] (a text row needs [{column!r}])")
    return rows


def corpus_rows(files: list[Path], column: str, invalid_rows: str = "error") -> Iterator[tuple[str, Any]]:
    """(label, row) pairs of every file in order, one file in memory at a time; labels name file and line/row."""
    for path in files:
        if path.suffix == ".txt":
            yield _txt_document(path, column)
        elif path.suffix == ".parquet":
            yield from _parquet_rows(path, column)
        elif path.suffix == ".jsonl":
            yield from _jsonl_rows(path, column, invalid_rows)
        else:
            yield from _json_rows(path, column, invalid_rows)
