"""An entry's name becomes file names: checked when the series file is read, against the file system's
limit, so a name that is too long fails before training, not at the answer stage."""

from __future__ import annotations

import os
from pathlib import Path

from align.plumbing.errors import UserError

# The file names an entry's name becomes (stages.output_path, judges/answers/command.py, align.plumbing.locks, and
# align.plumbing.files' atomic writes: a temporary `.NAME.XXXXXXXX.tmp` beside the file it replaces).
ENTRY_FILE_NAMES = ("{name}", "{name}.jsonl", "{name}.jsonl.meta.json", ".{name}.jsonl.lock",
                    ".{name}.jsonl.XXXXXXXX.tmp", ".{name}.jsonl.meta.json.XXXXXXXX.tmp")


def _name_max(folder: Path) -> int:
    """The longest file name the file system under `folder` (or its nearest existing parent) takes."""
    for candidate in (folder, *folder.parents):
        if candidate.is_dir():
            try:
                return os.pathconf(candidate, "PC_NAME_MAX")
            except (OSError, ValueError):
                break
    return 255  # the common limit (ext4, xfs, btrfs, APFS)


def check_name_fits(name: str, where: str, output_dir: Path, file: Path) -> None:
    """An entry name becomes file names (its answers, their meta file, locks, temporary files): refused now
    when one would be too long, not at the answer stage after days of training."""
    limit = _name_max(output_dir)
    longest = max((form.format(name=name) for form in ENTRY_FILE_NAMES), key=lambda n: len(n.encode()))
    if len(longest.encode()) > limit:
        spare = limit - (len(longest.encode()) - len(name.encode()))
        raise UserError(f"{file}: {where}: {len(name)} characters: too long, it becomes file names of up to "
                        f"{len(longest.encode())} bytes ({longest.replace(name, 'NAME')}) and the file system takes "
                        f"{limit}: use at most {spare} characters")
