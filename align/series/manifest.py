"""The series manifest: per entry, per stage, what ran, on which inputs, and what it produced.

`<output_dir>/manifest.json`, rewritten atomically on every change, so a killed runner leaves
the last state it reached (a stage it was running reads `running` and is resumed next time).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from align.errors import UserError
from align.files import atomic_write_json
from align.redact import redact
from align.runcard import utc_timestamp

VERSION = 1
SERIES_KEY = "_series"  # pseudo-entry for prepare / report


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (argv, recipe text, upstream fingerprints)."""
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Manifest:
    def __init__(self, path: Path, data: dict):
        self.path = path
        self.data = data

    @classmethod
    def load(cls, output_dir: Path) -> Manifest:
        path = Path(output_dir) / "manifest.json"
        if not path.exists():
            return cls(path, {"version": VERSION, "entries": {}})
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: not valid JSON ({err.msg}); move it away to start the series afresh") from None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise UserError(f"{path}: unknown manifest version (expected {VERSION})")
        data.setdefault("entries", {})
        return cls(path, data)

    def get(self, entry: str, stage: str) -> dict:
        return self.data["entries"].get(entry, {}).get(stage, {"state": "pending"})

    def update(self, entry: str, stage: str, **fields: Any) -> dict:
        rec = self.data["entries"].setdefault(entry, {}).setdefault(stage, {"state": "pending"})
        rec.update(fields)
        self.save()
        return rec

    def save(self) -> None:
        self.data["updated"] = utc_timestamp()
        atomic_write_json(self.path, redact(self.data))  # it records commands, which may carry a secret


class RunLock:
    """One runner per output directory at a time (an advisory lock the OS drops if we die)."""

    def __init__(self, output_dir: Path):
        self.path = Path(output_dir) / ".series.lock"
        self.fh = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "w")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.close()
            raise UserError(f"{self.path.parent}: another `align series` is running on this output directory") from None
        self.fh.write(f"{os.getpid()}\n")
        self.fh.flush()
        return self

    def __exit__(self, *exc: Any) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()
