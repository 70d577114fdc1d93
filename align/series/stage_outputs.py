"""Where each series stage writes, the checkpoints a stage starts from, and the checks of judgment files that
the judge stages' verify reads (judge_stages.py); the stage kinds (stage_kind.py) name these per stage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from align.plumbing.files import file_sha256, read_jsonl
from align.series.manifest import fingerprint
from align.series.spec import Series, resolve_packaged
from align.train.checkpoints import newest_complete_checkpoint
from judges.judging.controls import control_of
from judges.records import read_judgments

CHECKPOINTS = ("base", "cpt", "sft", "dpo")
MEASURES = ("base_eval", "heldout_sft", "heldout_dpo")  # a folder each, named after the stage
JUDGMENT_FILES = {"judge": "judgments.jsonl", "pairwise": "judgments_pair.jsonl"}  # FastChat's _pair beside _single


def output_path(series: Series, entry: str | None, stage: str) -> Path:
    """Where a built-in stage writes: a checkpoint directory, a measure's folder, an answer / judgment file,
    the report's folder."""
    out = series.output_dir
    if stage in CHECKPOINTS or stage in MEASURES:
        return out / entry / stage
    if stage == "answer":
        return out / entry / "model_answer" / f"{entry}.jsonl"
    if stage in JUDGMENT_FILES:
        return out / "model_judgment" / JUDGMENT_FILES[stage]
    if stage == "report":
        return out
    raise KeyError(stage)


def eval_dir(series: Series, entry: str, stage: str) -> Path:
    """A judge-free measure's folder: <output_dir>/<entry>/<stage>."""
    return output_path(series, entry, stage)


# ----------------------------------------------------------------------------- checkpoints

def base_checkpoint(series: Series, name: str, resolve: bool = True) -> str:
    """An entry's base checkpoint (its given path / hub id, or its base stage's output)."""
    entry = series.entry(name)
    if entry.path is not None:
        return resolve_packaged(entry.path) if resolve else entry.path
    return str(output_path(series, name, "base"))


def pretrained_checkpoint(series: Series, name: str, resolve: bool = True) -> str:
    """What an entry's SFT starts from and what a `grow: from:` it is grown: its cpt output when it has
    a cpt stage, else its base checkpoint."""
    if series.entry(name).cpt is not None:
        return str(output_path(series, name, "cpt"))
    return base_checkpoint(series, name, resolve)


def has_checkpoint(out: Path) -> bool:
    """A trainer can resume once it saved a complete `checkpoint-N` (a save cut off by a kill is not one)."""
    return out.is_dir() and newest_complete_checkpoint(out)[0] is not None


def checkpoint_fingerprint(ref: str) -> str:
    """Identity of a given checkpoint without reading weights: config + file names, sizes, mtimes."""
    path = Path(ref)
    if not path.is_dir():
        return "hub:" + ref
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    if (path / "config.json").is_file():
        h.update((path / "config.json").read_bytes())
    return h.hexdigest()[:16]


def complete_files(*files: Path) -> str | None:
    """The first file's hash once every one of them is there (the last one a stage writes among them)."""
    return file_sha256(files[0]) if all(f.is_file() for f in files) else None


# ----------------------------------------------------------------------------- answers and judgments

def answers_verified(series: Series, entry: str | None) -> str | None:
    from judges.records import latest_per_slot

    path = output_path(series, entry, "answer")
    if not path.is_file():
        return None
    latest = latest_per_slot((r.get("question_id"), r) for r in read_jsonl(path))  # as the judge will read them
    turns = {qid: len((r.get("choices") or [{}])[0].get("turns") or []) for qid, r in latest.items()}
    if any(turns.get(qid, 0) < n for qid, n in series.question_turns):
        return None
    return file_sha256(path)


def judgment_records(series: Series, path: Path, pairwise: bool = False) -> list[dict]:
    """Every record of a judgment file, each checked as the report checks it (a bad one is a UserError)."""
    if not path.is_file():
        return []
    return [rec for _, rec in read_judgments(path, series.question_set, pairwise)]


def every_turn(series: Series, have: set) -> bool:
    """Every (question, turn) of the questions the answer stage covers is in `have`."""
    return all((qid, t) in have for qid, n in series.question_turns for t in range(1, n + 1))


def judgment_rows(series: Series, entry: str, controls: bool = False) -> list[dict]:
    """The entry's single judgments (and, with `controls`, those of its @mismatched control)."""
    names = {entry, control_of(entry)} if controls else {entry}
    return [r for r in judgment_records(series, output_path(series, entry, "judge")) if r.get("model") in names]


def judgments_verified(series: Series, entry: str | None) -> str | None:
    have = {(r.get("question_id"), r.get("turn")) for r in judgment_rows(series, entry)}
    if not have:  # nothing judged yet: no need to read the questions (a dry run has not prepared them)
        return None
    if not every_turn(series, have):
        return None
    # The control's judgments count too: the report's judge check reads them.
    return fingerprint(sorted(json.dumps(r, sort_keys=True) for r in judgment_rows(series, entry, True)))


def same_size_scratch(entries, me) -> str | None:
    """The study's baseline of entry `me`: the first `scratch` entry of its size, unless it is scratch itself.
    `entries`, `me`: objects with name, size, construction (the series' entries, or the study table's)."""
    if me.construction == "scratch":
        return None
    return next((e.name for e in entries if e.construction == "scratch" and e.size == me.size), None)


def scratch_baseline(series: Series, entry: str) -> str | None:
    """judge.mode pairwise: the same-size scratch entry a non-scratch entry is compared with (the first one)."""
    if series.judge.mode != "pairwise":
        return None
    return same_size_scratch(series.models, series.entry(entry))
