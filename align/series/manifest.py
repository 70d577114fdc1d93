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

from align.plumbing.errors import UserError
from align.plumbing.files import atomic_write_json
from align.plumbing.redact import redact
from align.plumbing.runcard import utc_timestamp

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
        """Change one record. Stage jobs of other entries (`align series --submit slurm`) write the same file at
        the same time: under a lock, the file as it is now is read again and only this record changes in it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)  # the lock file sits beside the manifest
        with open(self.path.with_name(".manifest.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.path.exists():
                self.data["entries"] = Manifest.load(self.path.parent).data["entries"]
            rec = self.data["entries"].setdefault(entry, {}).setdefault(stage, {"state": "pending"})
            rec.update(fields)
            self.save()
        return rec

    def save(self) -> None:
        self.data["updated"] = utc_timestamp()
        atomic_write_json(self.path, redact(self.data))  # it records commands, which may carry a secret


# A stage job of `align series --submit slurm` runs one entry's stage (or the series-wide ones): its scope.
SCOPE_ENV = "ALIGN_SERIES_SCOPE"


class RunLock:
    """One runner per output directory at a time (an advisory lock the OS drops if we die).

    A stage job (ALIGN_SERIES_SCOPE=<entry> or _series) shares the directory's lock with the other entries'
    jobs and holds its scope's lock alone: entries run side by side, never two runners on one entry, and
    never a whole-series run beside any job."""

    def __init__(self, output_dir: Path):
        self.scope = os.environ.get(SCOPE_ENV) or None
        self.path = Path(output_dir) / ".series.lock"
        self.shared = None  # the directory's lock, held shared by a scoped run
        self.fh = None

    def _take(self, path: Path, mode: int, what: str):
        fh = open(path, "a")
        try:
            fcntl.flock(fh, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise UserError(f"{self.path.parent}: another `align series` is running on {what}") from None
        return fh

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.scope is None:
            self.fh = self._take(self.path, fcntl.LOCK_EX, "this output directory")
        else:
            self.shared = self._take(self.path, fcntl.LOCK_SH, "this output directory (the whole series)")
            self.fh = self._take(self.path.with_name(f".series.{self.scope}.lock"), fcntl.LOCK_EX,
                                 f"{self.scope} of this output directory")
        self.fh.truncate(0)
        self.fh.write(f"{os.getpid()}\n")
        self.fh.flush()
        return self

    def __exit__(self, *exc: Any) -> None:
        for fh in (self.fh, self.shared):
            if fh is not None:
                fcntl.flock(fh, fcntl.LOCK_UN)
                fh.close()
