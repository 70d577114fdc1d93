"""Output folders of `align eval` and `align heldout`: the rules training outputs follow.

- `--out` is not an input, does not contain one and does not lie inside one (model, data, task folders);
- it is new, empty, or an earlier output of the same command (its run card, written last, says so) and
  holds nothing else; an earlier result is replaced only with `--overwrite` (a second evaluation with
  other tasks would otherwise silently replace the first's numbers);
- one writer per folder (align.plumbing.locks), checked before anything loads;
- the new files are staged inside the folder and swapped in together (align.plumbing.file_set): a failed run
  leaves the previous result as it was, and a folder it created is removed again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from align.plumbing.errors import UserError
from align.plumbing.file_set import LEFTOVER
from align.plumbing.files import check_output_dir
from align.plumbing.outputs import check_output_target
from align.plumbing.runcard import check_own_run_card


@dataclass(frozen=True)
class MeasureOutput:
    command: str  # for messages: "align eval"
    stage: str  # the run card's "stage"
    card: str  # the run card's file name (written last)
    result: str  # the result file, the run card's "output_file"
    folders: tuple[str, ...] = ()  # folders it writes (lm-eval's own files)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.card, self.result, *self.folders)


EVAL = MeasureOutput("align eval", "eval", "eval.run_card.json", "base_eval.json", ("lm_eval",))
HELDOUT = MeasureOutput("align heldout", "heldout", "heldout.run_card.json", "heldout.json")


def _summary(card: Path) -> str:
    import json

    try:
        data = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "its run card is unreadable"
    what = [f"model {data.get('model_path')}"]
    if isinstance(data.get("tasks"), dict):
        what.append(f"tasks {','.join(sorted(data['tasks']))}")
    if data.get("kind"):
        what.append(f"kind {data['kind']}")
    return ", ".join(what)


def check_measure_output(out: str | os.PathLike, kind: MeasureOutput, inputs: Mapping[str, str | os.PathLike | None],
                         overwrite: bool, flag: str = "--out") -> Path:
    """Before anything loads (and under the folder's lock): may this command write into `out`?"""
    out = check_output_dir(out, flag)
    check_output_target(out, inputs, flag=flag)
    if not out.is_dir():
        return out
    entries = sorted(e.name for e in out.iterdir() if not LEFTOVER.fullmatch(e.name))
    if not entries:
        return out
    foreign = [name for name in entries if name not in kind.names]
    if foreign:
        raise UserError(f"{flag} {out} is not empty and not an earlier {kind.command} output (it holds "
                        f"{', '.join(foreign[:3])}): choose a new or empty folder")
    for name in entries:
        path = out / name
        if path.is_symlink() or (name in kind.folders) != path.is_dir():
            what = "a symbolic link" if path.is_symlink() else "a folder" if path.is_dir() else "a file"
            raise UserError(f"{flag} {out}: {name} is {what}, not what {kind.command} writes there: refusing to "
                            "replace it; move it away or choose another folder")
    check_own_run_card(out / kind.card, kind.stage, kind.result, flag)
    if not (out / kind.card).is_file():
        raise UserError(f"{flag} {out} holds {', '.join(entries)} but no {kind.card}: not a finished {kind.command} "
                        "output; refusing to replace it: remove them yourself or choose another folder")
    if not overwrite:
        raise UserError(f"{flag} {out} already holds a {kind.command} result ({_summary(out / kind.card)}): "
                        "refusing to replace it; choose another folder, or pass --overwrite to replace that result")
    return out
