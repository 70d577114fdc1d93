"""Text sources for `align tokenize`, cut into pieces that workers read independently.

A local source is a file or a folder (searched recursively, sorted by path) of:
  .jsonl    one document per line, in the `text` field (or --text-column); cut at line starts
  .parquet  one document per row of the text column; cut at row-group boundaries
  .json     a JSON list of rows (read whole: for small files)
  .txt      the whole file is ONE document (as `align cpt` reads a .txt file)
Anything else is a name `datasets.load_dataset(..., streaming=True)` reads (a hub dataset): its own
shards (data files) are the pieces, so nothing is downloaded before it is tokenized.

A plan cuts the source into at most N shards of about equal bytes; shard i is a contiguous run of
pieces, so "the first k tokens of every shard" reads only the head of each run.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from pathlib import Path

from align.plumbing.errors import UserError

LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet", ".txt")
HEAD_BYTES = 1 << 16  # the part of each file the source fingerprint hashes (a corpus is too big to hash whole)


# ---------------------------------------------------------------------- planning

def local_files(source: str, split: str = "train") -> list[Path] | None:
    """The source's files (sorted), or None when the source is not a local path. A folder is listed as
    `align cpt` lists one (align/train/text_files.py: files named for a split belong to it, README.md and
    hidden files left out, a file of another type refused)."""
    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix not in LOCAL_SUFFIXES:
            raise UserError(f"{path}: unsupported text file type (expected one of {list(LOCAL_SUFFIXES)})")
        return [path]
    if path.is_dir():
        from align.train.text_files import corpus_files

        return corpus_files(path, split)
    if source.startswith(("/", ".", "~")) or path.suffix in LOCAL_SUFFIXES:
        raise UserError(f"--source {source}: not found")
    return None


def _line_start_at_or_after(fh, offset: int, size: int) -> int:
    """The first line start at or after `offset` (a cut never splits a JSON line)."""
    if offset <= 0:
        return 0
    fh.seek(offset - 1)
    while True:
        chunk = fh.read(1 << 16)
        if not chunk:
            return size
        newline = chunk.find(b"\n")
        if newline >= 0:
            return fh.tell() - len(chunk) + newline + 1


def _jsonl_pieces(path: Path, target: int) -> list[dict]:
    size = path.stat().st_size
    cuts = [0]
    with open(path, "rb") as fh:
        while cuts[-1] < size:
            cuts.append(max(cuts[-1] + 1, _line_start_at_or_after(fh, cuts[-1] + target, size)))
    return [{"file": str(path), "kind": "jsonl", "start": a, "end": min(b, size), "bytes": min(b, size) - a}
            for a, b in zip(cuts, cuts[1:], strict=False) if a < size]


def _parquet_pieces(path: Path, target: int) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception as err:  # noqa: BLE001 - pyarrow's errors for a bad file vary by version
        raise UserError(f"{path}: not a readable parquet file ({str(err).splitlines()[0]})") from None
    pieces, start, size = [], 0, 0
    for group in range(meta.num_row_groups):
        size += meta.row_group(group).total_byte_size
        if size >= target or group == meta.num_row_groups - 1:
            pieces.append({"file": str(path), "kind": "parquet", "start": start, "end": group + 1, "bytes": size})
            start, size = group + 1, 0
    return pieces


def plan_local(files: list[Path], shards: int) -> list[list[dict]]:
    """Pieces of about total/shards bytes each, grouped in order into at most `shards` shards."""
    total = sum(f.stat().st_size for f in files)
    target = max(1, math.ceil(total / shards))
    pieces: list[dict] = []
    for f in files:
        if f.suffix == ".jsonl":
            pieces += _jsonl_pieces(f, target)
        elif f.suffix == ".parquet":
            pieces += _parquet_pieces(f, target)
        elif f.stat().st_size:
            pieces.append({"file": str(f), "kind": f.suffix[1:], "start": 0, "end": 0, "bytes": f.stat().st_size})
    groups: list[list[dict]] = [[]]
    filled = 0
    for piece in pieces:
        if groups[-1] and filled >= target and len(groups) < shards:
            groups.append([])
            filled = 0
        groups[-1].append(piece)
        filled += piece["bytes"]
    return [g for g in groups if g]


def local_fingerprint(files: list[Path]) -> str:
    """sha256 over each file's name, size and first 64 KiB: stable across re-runs, cheap at any size."""
    digest = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            head = fh.read(HEAD_BYTES)
        digest.update(json.dumps([str(f), f.stat().st_size, hashlib.sha256(head).hexdigest()]).encode())
    return "sha256:" + digest.hexdigest()


def hub_stream(name: str, config: str | None, split: str):
    import datasets

    try:
        return datasets.load_dataset(name, config, split=split, streaming=True)
    except (FileNotFoundError, ValueError, ConnectionError, datasets.exceptions.DatasetNotFoundError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"--source {name} (split {split!r}) could not be read: {first}") from None


def plan_hub(name: str, config: str | None, split: str, shards: int) -> list[list[dict]]:
    """One shard per group of the stream's own shards (data files): at most as many as it has."""
    count = min(shards, max(1, hub_stream(name, config, split).n_shards))
    return [[{"kind": "hub", "name": name, "config": config, "split": split, "index": i, "of": count}]
            for i in range(count)]


def plan_source(source: str, config: str | None, split: str, shards: int) -> tuple[list[list[dict]], str]:
    """(shards as lists of pieces, source fingerprint); an empty source is a one-line UserError."""
    files = local_files(source, split)
    if files is None:
        return plan_hub(source, config, split, shards), "hub:" + json.dumps([source, config, split])
    plan = plan_local(files, shards)
    if not plan:
        what = "no .jsonl, .json, .parquet or .txt file" if not files else "only empty files"
        raise UserError(f"--source {source}: {what} in it: nothing to tokenize")
    return plan, local_fingerprint(files)


# ---------------------------------------------------------------------- reading (in the workers)

def _text(row, column: str, where: str) -> str:
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected a JSON object with a {column!r} field")
    if column not in row:
        raise UserError(f"{where}: no {column!r} field (set --text-column; it has {sorted(row)[:8]})")
    value = row[column]
    if value is not None and not isinstance(value, str):
        raise UserError(f"{where}: {column!r} is {type(value).__name__}, expected text")
    return value or ""


def _jsonl_texts(piece: dict, column: str) -> Iterator[str]:
    with open(piece["file"], "rb") as fh:
        fh.seek(piece["start"])
        offset = piece["start"]
        while offset < piece["end"]:
            line = fh.readline()
            if not line:
                break
            where = f"{piece['file']} (line at byte {offset})"
            offset += len(line)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as err:
                raise UserError(f"{where}: not valid JSON ({err})") from None
            yield _text(row, column, where)


def _parquet_texts(piece: dict, column: str) -> Iterator[str]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(piece["file"])
    if column not in parquet.schema_arrow.names:
        raise UserError(f"{piece['file']}: no {column!r} column (set --text-column; it has "
                        f"{parquet.schema_arrow.names[:8]})")
    for batch in parquet.iter_batches(batch_size=1024, row_groups=range(piece["start"], piece["end"]),
                                      columns=[column]):
        yield from (t or "" for t in batch.column(0).to_pylist())


def _txt_text(piece: dict) -> Iterator[str]:
    try:
        yield Path(piece["file"]).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{piece['file']}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def _json_texts(piece: dict, column: str) -> Iterator[str]:
    try:
        rows = json.loads(Path(piece["file"]).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise UserError(f"{piece['file']}: not a JSON list of rows ({err})") from None
    if not isinstance(rows, list):
        raise UserError(f"{piece['file']}: expected a JSON list of rows (or use .jsonl, one row per line)")
    for i, row in enumerate(rows):
        yield _text(row, column, f"{piece['file']} row {i}")


def _hub_texts(piece: dict, column: str) -> Iterator[str]:
    stream = hub_stream(piece["name"], piece["config"], piece["split"]).shard(num_shards=piece["of"],
                                                                              index=piece["index"])
    for i, row in enumerate(stream):
        yield _text(row, column, f"{piece['name']}[{piece['split']}] shard {piece['index']} row {i}")


def texts(pieces: list[dict], column: str) -> Iterator[str]:
    """The documents of one shard, in order (possibly empty strings: the caller counts and skips them)."""
    for piece in pieces:
        kind = piece["kind"]
        if kind == "jsonl":
            yield from _jsonl_texts(piece, column)
        elif kind == "parquet":
            yield from _parquet_texts(piece, column)
        elif kind == "txt":
            yield from _txt_text(piece)
        elif kind == "json":
            yield from _json_texts(piece, column)
        else:
            yield from _hub_texts(piece, column)
