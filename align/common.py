"""Plumbing shared by every stage: user errors, atomic files, JSONL, run cards.

Imports nothing heavy (no torch/transformers) so `judges` may use it too.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

USER_ERROR_EXIT = 2

# Keys whose values never reach a log or a file. Matched on the key's words, so that counts
# such as `num_input_tokens_seen` or tokenizer fields such as `pad_token` are kept.
SECRET_WORDS = {"apikey", "secret", "password", "passwd", "authorization", "credentials"}
# A key ending in "token" is a credential (hub_token, hf_token, access_token) unless it names
# a tokenizer's special token or a length.
NON_SECRET_TOKEN_PREFIXES = {"pad", "eos", "bos", "unk", "sep", "cls", "mask", "new", "special",
                             "image", "audio", "video", "start", "end", "max", "min", "per"}


def is_secret_key(key: Any) -> bool:
    words = [w for w in re.split(r"[^a-z0-9]+", str(key).lower()) if w]
    if not words:
        return False
    if SECRET_WORDS & set(words) or words[-2:] == ["api", "key"]:
        return True
    return words[-1] == "token" and (len(words) == 1 or words[-2] not in NON_SECRET_TOKEN_PREFIXES)


class UserError(Exception):
    """Bad input from the user (recipe, data row, CLI flag, judge output).

    Reported as one line on stderr with exit status 2 and no traceback.
    """


def exit_on_user_error(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate an entry point: UserError -> `error: ...` on stderr, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(USER_ERROR_EXIT)

    return wrapper


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write via a temp file in the same directory + rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
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
    atomic_write_text(path, json.dumps(redact(obj), indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def atomic_directory(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of `out` to fill; when the block succeeds it replaces `out` whole,
    when it fails it is removed. Readers never see a half-written directory."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one record as one line and flush it: a kill loses at most the record in flight."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Yield records; a torn last line (killed writer) is skipped, any other bad line is a UserError."""
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        lines = fh.readlines()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as err:
            if lineno == len(lines) and not line.endswith("\n"):
                continue  # the record in flight when a writer was killed
            raise UserError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None


def redact(obj: Any) -> Any:
    """Drop secret-looking keys from nested dicts/lists before they are written anywhere."""
    if isinstance(obj, dict):
        return {
            k: ("<redacted>" if v and is_secret_key(k) else redact(v))
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    return obj


def package_versions(names: Iterable[str] = (
    "align", "torch", "transformers", "trl", "datasets", "accelerate", "deepspeed", "peft",
    "fschat", "openai", "numpy",
)) -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_revision(repo: str | os.PathLike | None = None) -> str | None:
    """The project's git revision (with '+dirty' when the tree has changes), or None outside git."""
    repo = Path(repo) if repo else Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def write_run_card(output_dir: str | os.PathLike, card: dict, started: float | None = None) -> Path:
    """Write `run_card.json` with provenance added (versions, git revision, host, wall time).

    `card` holds the stage's own facts (resolved recipe, data fingerprints, token counts, ...).
    Secrets are redacted by key name.
    """
    full = dict(card)
    full.setdefault("versions", package_versions())
    full.setdefault("git_revision", git_revision())
    full.setdefault("host", {"platform": platform.platform(), "cpus": os.cpu_count()})
    full.setdefault("written_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if started is not None:
        full["wall_time_s"] = round(time.time() - started, 3)
    path = Path(output_dir) / "run_card.json"
    atomic_write_json(path, full)
    return path
