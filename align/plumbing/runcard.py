"""Run cards: what produced an output directory (versions, git revision, host, wall time)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from align.plumbing.errors import UserError
from align.plumbing.files import atomic_write_json
from align.plumbing.redact import redact

TRACKED_PACKAGES = ("align", "torch", "transformers", "trl", "datasets", "accelerate", "deepspeed", "peft",
                    "fschat", "openai", "numpy")


def utc_timestamp() -> str:
    """Now as an ISO-8601 UTC string, e.g. 2026-11-30T02:00:00Z (for files people read)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_revision(repo: str | os.PathLike | None = None) -> str | None:
    """The project's git revision (with '+dirty' when the tree has changes), or None outside git.

    None too for an installed align: site-packages may lie inside another project's checkout."""
    repo = Path(repo) if repo else Path(__file__).resolve().parent.parent
    try:
        top, rev = subprocess.run(["git", "-C", str(repo), "rev-parse", "--show-toplevel", "HEAD"], capture_output=True,
                                  text=True, timeout=10, check=True).stdout.splitlines()
        if Path(top).resolve() != repo.resolve():
            return None
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def run_card_beside(output: str | os.PathLike) -> Path:
    """The run card of a command whose output is one file among others' (judgments, the report):
    `<output-stem>.run_card.json` beside it, never the folder's `run_card.json` (a checkpoint's)."""
    output = Path(output)
    return output.with_name(f"{output.stem}.run_card.json")


def check_own_run_card(path: str | os.PathLike, stage: str, output_name: str, flag: str) -> None:
    """Before any work: refuse when `path` holds something other than this stage's card for the same
    output (another command's record must never be replaced)."""
    path = Path(path)
    if not path.exists():
        return
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
        ours = card.get("stage") == stage and Path(str(card.get("output_file", ""))).name == output_name
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        ours = False
    if not ours:
        raise UserError(f"{flag}: this run's record {path} already exists and is not a {stage} run card for "
                        f"{output_name}: refusing to replace it; choose another output")


def write_run_card(output_dir: str | os.PathLike, card: dict, started: float | None = None,
                   name: str = "run_card.json") -> Path:
    """Write `name` (default `run_card.json`) with provenance added (versions, git revision, host, wall time).

    `card` holds the stage's own facts (resolved recipe, data fingerprints, token counts, ...).
    Secrets are redacted here (by key name, and inside URLs): a card holds command lines and settings.
    """
    full = dict(card)
    full.setdefault("versions", package_versions())
    full.setdefault("git_revision", git_revision())
    full.setdefault("host", {"platform": platform.platform(), "cpus": os.cpu_count()})
    full.setdefault("written_at", utc_timestamp())
    if started is not None:
        full["wall_time_s"] = round(time.time() - started, 3)
    path = Path(output_dir) / name
    atomic_write_json(path, redact(full))
    return path
