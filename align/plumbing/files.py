"""Files others depend on: atomic writes, append-only JSONL, content digests, YAML settings files.

A reader never sees half a file, and a killed writer loses at most the record in flight.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from align.plumbing.errors import UserError

# A hub repo as the hub spells it: `org/name`; the `name` alone is an older, un-namespaced repo (`gpt2`).
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_ID_OR_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def is_hub_id(ref: str, *, bare_name: bool = False) -> bool:
    """Whether a model or dataset reference names a hub repo rather than a local path: nothing is at
    that path here and it is spelled `org/name` (with `bare_name`, also `name` alone, which transformers
    and datasets accept). One starting like a path (/, ., ~) or with more than one `/` never is."""
    return bool((HUB_ID_OR_NAME if bare_name else HUB_ID).match(ref)) and not Path(ref).exists()


OFFLINE_VARS = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")  # the datasets one first: what messages have named


def offline_flag() -> str | None:
    """The environment variable that puts this run offline (read as huggingface_hub reads it), or None."""
    return next((name for name in OFFLINE_VARS if os.environ.get(name, "").upper() in ("1", "ON", "YES", "TRUE")),
                None)


def _process_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# tempfile creates private files (0600) and folders (0700); outputs get the modes a plain open() or
# mkdir() would give, so a shared group can read tables, reports and checkpoints.
_UMASK = _process_umask()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write via a temp file in the same directory + rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """JSON, written atomically, as given: a caller whose record may carry a secret redacts it first
    (align.plumbing.redact.redact; run cards always are)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def jsonl_line(record: dict) -> str:
    """One record as one JSONL line (UTF-8 kept as is, as FastChat writes them)."""
    return json.dumps(record, ensure_ascii=False) + "\n"


def atomic_write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """A whole JSONL file, one record per line, written atomically (the rewrite of an append-only file)."""
    atomic_write_text(path, "".join(jsonl_line(r) for r in records))


@contextlib.contextmanager
def atomic_directory(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of `out` to fill; when the block succeeds it replaces `out` whole,
    when it fails it is removed. Readers never see a half-written directory."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _drop_torn_tail(fh, path: Path) -> bytes:
    """If the file ends mid-record (a writer killed mid-line), cut that partial line off, so the next
    record starts on a line of its own. A complete JSON line that only lacks its newline is kept: the
    newline to write before the next record is returned (b"\n"), else b""."""
    size = fh.seek(0, os.SEEK_END)
    if size == 0:
        return b""
    fh.seek(size - 1)
    if fh.read(1) == b"\n":
        return b""
    start = size - 1  # find where the last line begins (files here are JSONL, lines are short)
    while start > 0:
        step = min(start, 1 << 16)
        fh.seek(start - step)
        cut = fh.read(step).rfind(b"\n")
        if cut >= 0:
            start = start - step + cut + 1
            break
        start -= step
    fh.seek(start)
    tail = fh.read()
    try:
        json.loads(tail.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        fh.truncate(start)
        print(f"warning: {path}: dropped a torn last line ({len(tail)} bytes, a record cut off when a writer "
              f"was killed) before appending", file=sys.stderr, flush=True)
        return b""
    return b"\n"


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one record as one line and flush it: a kill loses at most the record in flight, and the
    next append (in any later run) first drops that torn line, so records never glue together.

    A write that fails (disk full, quota) is undone: the file is cut back to where it ended, so the
    records before stay whole and no torn line is left; the failure is a one-line UserError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = jsonl_line(record).encode("utf-8")
    with open(path, "a+b", buffering=0) as fh:  # unbuffered: a failed write fails here, not at close
        line = _drop_torn_tail(fh, path) + line
        end = fh.seek(0, os.SEEK_END)
        try:
            written = 0
            while written < len(line):  # a raw write may take only part of the bytes
                written += fh.write(line[written:])
            os.fsync(fh.fileno())
        except OSError as err:
            fh.truncate(end)
            raise UserError(f"{path}: could not append a record ({err.strerror or err}); the records before it "
                            "are kept whole: make room and run the same command again to resume") from None


@contextlib.contextmanager
def write_failure_is_one_line(path: str | os.PathLike) -> Iterator[None]:
    """Around an atomic write: a failure (disk full, quota) becomes a one-line UserError naming the file.
    The atomic write has already left the file exactly as it was."""
    try:
        yield
    except OSError as err:
        raise UserError(f"{path}: could not write it ({err.strerror or err}); it is as it was before: make room "
                        "and run the same command again to resume") from None


UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _read_text(path: Path) -> str:
    """A UTF-8 file's text (a UTF-8 byte-order mark is tolerated); anything else is a one-line UserError."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a JSONL file") from None
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        if data.startswith(UTF16_BOMS):
            why = "it is UTF-16 (byte-order mark); re-save it as UTF-8"
        else:
            why = f"byte 0x{data[err.start]:02x} at offset {err.start} is not valid UTF-8 (binary or another encoding?)"
        raise UserError(f"{path}: not UTF-8 text: {why}") from None


def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Yield records (JSON objects); a torn last line (killed writer) is skipped, any other bad line,
    a non-object record or a file that is not UTF-8 is a UserError naming the file (and line)."""
    for _, record in numbered_jsonl(path):
        yield record


def numbered_json_lines(path: str | os.PathLike, *, torn_tail: bool = True) -> Iterator[tuple[int, Any]]:
    """(line number in the file, JSON value) of every non-blank line of a UTF-8 file: THE reader of JSON
    lines, for the files this project writes and for data files alike. Blank lines count, so a message
    naming `file:line` points at the real line. With `torn_tail` (files this project appends to) a last
    line without its newline that does not parse is the record in flight when a writer was killed, and
    is skipped; without it (data someone wrote) that line is an error like any other."""
    path = Path(path)
    parts = _read_text(path).split("\n")  # not splitlines(): U+2028 and friends may sit inside JSON strings
    lines = [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            if torn_tail and lineno == len(lines) and not line.endswith("\n"):
                continue
            raise UserError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
        yield lineno, value


def numbered_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """(line number in the file, record) as read_jsonl reads them: numbered_json_lines, each value a
    JSON object."""
    for lineno, record in numbered_json_lines(path):
        if not isinstance(record, dict):
            raise UserError(f"{Path(path)}:{lineno}: expected a JSON object per line, got {type(record).__name__}")
        yield lineno, record


def name_as_file_stem(name: str, flag: str) -> str:
    """A model or judge name as a file name inside its folder. Hub-style `org/model` becomes
    `org--model` (one file, beside the others, so a `*.jsonl` glob finds it); a name that could
    escape the folder or is not a name (`..`, `/abs`, `a//b`, `C:\\x`, control characters) is a UserError."""
    parts = name.split("/")
    bad = (not name or "\\" in name or any(not p or p in (".", "..") for p in parts)
           or any(ord(c) < 32 or c == "\x7f" for c in name) or parts[0].startswith("."))
    if bad:
        raise UserError(f"{flag} {name!r}: expected a model name such as `my-model` or `org/model`, not a path "
                        "(it names a file inside the output folder)")
    stem = "--".join(parts)
    if len(stem.encode("utf-8")) > 200:
        raise UserError(f"{flag} {name!r}: too long for a file name (at most 200 bytes)")
    return stem


def _check_parents(path: Path, flag: str) -> None:
    for parent in path.parents:  # the nearest existing ancestor must be a directory
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {path}: {parent} is a file, not a directory")
            return


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """Refuse, before any work, an output file that is a directory or lies under a regular file."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a directory, expected a file path")
    _check_parents(path, flag)
    return path


def check_output_dir(path: str | os.PathLike, flag: str) -> Path:
    """Refuse, before any work, an output directory that is a regular file or lies under one."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path}: is a file, expected a directory")
    _check_parents(path, flag)
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_yaml_mapping(path: str | os.PathLike, what: str = "YAML file") -> dict:
    """A YAML file whose top level is a mapping (an empty file reads as {}); a missing file, bad YAML
    or another top level is a one-line UserError naming the file (and the line, for bad YAML)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path}{line}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read {what} ({err.__class__.__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a {what} must be a YAML mapping of `key: value` lines, got {type(data).__name__}")
    return data
