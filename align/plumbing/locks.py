"""One writer per output: an exclusive advisory lock beside the file or directory a command writes.

`output_lock(path, flag)` holds `.<name>.lock` next to `path` for the whole block, with
`fcntl.flock(LOCK_EX | LOCK_NB)`: a second process asking for the same output is refused at once
(a one-line UserError naming the output and the holder's pid and command) instead of waiting or
writing alongside. The OS drops the lock when its holder exits or is killed, so a crashed run never
leaves a lock behind that blocks the next one; the lock file itself is removed on a clean release.
flock locks belong to an open file, so two holders in one process exclude each other as well.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from align.plumbing.errors import UserError


def lock_path(target: str | os.PathLike) -> Path:
    """`.<name>.lock` beside `target` (resolved, so a symlink or `a/../b` names the same lock)."""
    target = Path(target).expanduser().resolve()
    return target.parent / f".{target.name or 'root'}.lock"


def _holder(fd: int) -> str:
    """What the holder wrote into the lock file: `pid N (command)`, or that it is not known yet."""
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text.splitlines()[0] if text else "pid not recorded yet"


def _try_lock(path: Path, flag: str, target) -> int:
    """An fd holding the lock on the file now at `path` (retrying if a releasing holder removed it
    between our open and our lock), or a UserError naming the holder."""
    for attempt in itertools.count():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # again: a refused run may just have removed it
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:
            if attempt < 10:
                continue
            raise UserError(f"{flag} {target}: its folder {path.parent} keeps disappearing") from None
        except OSError as err:
            raise UserError(f"{flag} {target}: cannot create its lock file {path} ({err.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UserError(f"{flag} {target} is in use by another align process ({holder}; lock {path}): "
                            "wait for it to finish, or write somewhere else") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # we locked a file its last holder had already removed: take the one there now


@contextlib.contextmanager
def output_lock(target: str | os.PathLike, flag: str) -> Iterator[Path]:
    """Hold the exclusive lock for `target` (a file or directory this command writes) for the block."""
    path = lock_path(target)
    created = [d for d in (path.parent, *path.parent.parents) if not d.exists()]  # a refused run leaves none
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{flag} {target}: cannot create its folder {path.parent} ({err.strerror})") from None
    try:
        fd = _try_lock(path, flag, target)
    except UserError:
        _remove_empty(created)
        raise
    try:
        command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:4]))
        with contextlib.suppress(OSError):  # who holds it is for the message only (a full disk may refuse it)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} ({command})\n".encode("utf-8", "replace"), 0)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still holding it: a waiting opener sees the inode change and retries
        os.close(fd)
        _remove_empty(created)


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders the lock created if nothing was written in them (innermost first)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty: the run wrote something, or another run is using it
