"""A set of files in a folder, replaced together: readers find all the new files or all the previous
ones, never a mix.

`align mtbench report` writes several files (tables, chart, summary, page, run card) into a folder
that may hold other things (a series' output folder, with its logs and checkpoints). The new files are
written into a hidden staging folder inside it; only when every one is written are the previous ones
moved aside and the new ones moved in. Renames need no free space, so a full disk fails the writing,
before anything is moved; a failure while moving puts the previous files back. Entries of the folder
that are not in the set are never touched.

A writer killed with kill -9 can leave its hidden `.staging-*` / `.previous-*` folder behind. The next
run removes such leftovers only when they are provably stale: it holds the folder's output lock (so no
other align writer is live) and the names are the ones `tempfile.mkdtemp` made for us. Files a crash
left in `.previous-*` that the folder lacks (killed mid-swap) are put back, not deleted.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from align.plumbing.errors import UserError
from align.plumbing.locks import lock_path

LEFTOVER = re.compile(r"\.(staging|previous)-[a-z0-9_]{8}")  # tempfile.mkdtemp's names, with our prefixes


@contextlib.contextmanager
def replaced_together(out: str | os.PathLike, owned: Iterable[str], flag: str = "--out-dir",
                      folders: Iterable[str] = ()) -> Iterator[Path]:
    """Yield a staging folder to write the new files into. When the block succeeds, `out`'s files named
    in `owned` (the previous set, including any this run does not write again) are replaced by what was
    staged; when it fails, `out` is left exactly as it was. Names in `folders` are folders of the set
    (moved aside and in whole, like the files: the caller has checked they are its own)."""
    out = Path(out)
    owned, folders = set(owned), set(folders)
    in_the_way = sorted(n for n in owned - folders if (out / n).is_dir() and not (out / n).is_symlink())
    if in_the_way:
        raise UserError(f"{flag} {out}: {in_the_way[0]} is a directory where a file of ours goes; move it away")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    recover_leftovers(out)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".staging-"))
    try:
        yield staging
        _swap_in(out, staging, owned | {entry.name for entry in staging.iterdir()})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(out.iterdir()):
            out.rmdir()  # a first run that failed leaves no empty folder behind


def _lock_is_ours(out: Path) -> bool:
    """This process holds `out`'s output lock (align.plumbing.locks writes `pid N (command)` into it)."""
    try:
        first = lock_path(out).read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
    except OSError:
        return False
    return first.startswith(f"pid {os.getpid()} ")


def recover_leftovers(out: Path) -> None:
    """Remove the staging / set-aside folders a killed writer left in `out`, after putting back any
    previous file the folder lacks. Only under our own lock on `out`; other entries are never touched."""
    if not _lock_is_ours(out):
        return
    for entry in sorted(out.iterdir()):
        if not LEFTOVER.fullmatch(entry.name) or entry.is_symlink() or not entry.is_dir():
            continue
        if entry.name.startswith(".previous-"):
            for kept in sorted(entry.iterdir()):
                if not os.path.lexists(out / kept.name):
                    os.replace(kept, out / kept.name)  # killed mid-swap: the previous file goes back
        shutil.rmtree(entry)


def _swap_in(out: Path, staging: Path, names: set[str]) -> None:
    """Move the previous files named in `names` aside, the staged ones in; on any failure undo both."""
    aside = Path(tempfile.mkdtemp(dir=out, prefix=".previous-"))
    moved_aside: list[str] = []
    moved_in: list[str] = []
    try:
        for name in sorted(names):
            if os.path.lexists(out / name):
                os.replace(out / name, aside / name)
                moved_aside.append(name)
        for entry in sorted(staging.iterdir()):
            os.replace(entry, out / entry.name)
            moved_in.append(entry.name)
    except BaseException:
        for name in reversed(moved_in):
            os.replace(out / name, staging / name)
        for name in reversed(moved_aside):
            os.replace(aside / name, out / name)
        aside.rmdir()  # empty again; if putting back failed, the previous files stay in `aside`, not lost
        raise
    shutil.rmtree(aside)
