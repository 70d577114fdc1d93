"""Where each series stage writes, and how the runner tells that a stage is done (its verify
fingerprint), can resume, or is reset: the stage table (stages.py) names these per stage."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from align.plumbing.files import atomic_write_jsonl, file_sha256, read_jsonl
from align.plumbing.locks import output_lock
from align.plumbing.outputs import remove_previous_output
from align.series import eval_stages
from align.series.manifest import fingerprint
from align.series.spec import Series
from align.train.checkpoints import newest_complete_checkpoint
from judges.judging.controls import control_of
from judges.records import failed_list_path, latest_per_slot, read_judgments


def output_path(series: Series, entry: str | None, stage: str) -> Path:
    """Where a built-in stage writes: a checkpoint directory, an answer / judgment file, the report dir."""
    out = series.output_dir
    return {
        "base": lambda: out / entry / "base",
        "cpt": lambda: out / entry / "cpt",
        "sft": lambda: out / entry / "sft",
        "dpo": lambda: out / entry / "dpo",
        "answer": lambda: out / entry / "model_answer" / f"{entry}.jsonl",
        "judge": lambda: out / "model_judgment" / "judgments.jsonl",
        "pairwise": lambda: out / "model_judgment" / "judgments_pair.jsonl",  # FastChat's _pair beside _single
        "report": lambda: out,
        **{name: (lambda name=name: eval_stages.eval_dir(series, entry, name)) for name in eval_stages.OUTPUT_DIRS},
    }[stage]()


def outputs_of(stage: str) -> Callable[[Series, str | None], list[Path]]:
    return lambda series, entry: [output_path(series, entry, stage)]


def remove_outputs(stage: str) -> Callable[[Series, str | None], None]:
    def reset(series: Series, entry: str | None) -> None:
        path = output_path(series, entry, stage)
        with output_lock(path, "stage reset: output"):  # not while an align command is writing it
            if path.is_dir():
                remove_previous_output(path, flag="stage output")  # only what a previous run wrote
            elif path.exists():
                path.unlink()
    return reset


def checkpoint_verified(stage: str) -> Callable[[Series, str | None], str | None]:
    """A checkpoint stage is complete once its config and its run card (written last) are there."""
    def verify(series: Series, entry: str | None) -> str | None:
        out = output_path(series, entry, stage)
        card = out / "run_card.json"
        return file_sha256(card) if card.is_file() and (out / "config.json").is_file() else None
    return verify


def has_checkpoint(stage: str) -> Callable[[Series, str | None], bool]:
    """A trainer can resume once it saved a complete `checkpoint-N` (a save cut off by a kill is not one)."""
    def resumable(series: Series, entry: str | None) -> bool:
        out = output_path(series, entry, stage)
        return out.is_dir() and newest_complete_checkpoint(out)[0] is not None
    return resumable


def always(series: Series, entry: str | None) -> bool:
    return True  # answer and judge skip what they already wrote


def answers_verified(series: Series, entry: str | None) -> str | None:
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


def judgment_rows(series: Series, entry: str, controls: bool = False) -> list[dict]:
    """The entry's single judgments (and, with `controls`, those of its @mismatched control)."""
    names = {entry, control_of(entry)} if controls else {entry}
    return [r for r in judgment_records(series, output_path(series, entry, "judge")) if r.get("model") in names]


def judgments_verified(series: Series, entry: str | None) -> str | None:
    have = {(r.get("question_id"), r.get("turn")) for r in judgment_rows(series, entry)}
    if not have:  # nothing judged yet: no need to read the questions (a dry run has not prepared them)
        return None
    if any((qid, t) not in have for qid, n in series.question_turns for t in range(1, n + 1)):
        return None
    # The control's judgments count too: the report's judge check reads them.
    return fingerprint(sorted(json.dumps(r, sort_keys=True) for r in judgment_rows(series, entry, True)))


def scratch_baseline(series: Series, entry: str) -> str | None:
    """judge.mode pairwise: the same-size scratch entry a non-scratch entry is compared with (the first one)."""
    e = series.entry(entry)
    if series.judge.get("mode") != "pairwise" or e.construction == "scratch":
        return None
    return next((m.name for m in series.models if m.construction == "scratch" and m.size == e.size), None)


def pairwise_verified(series: Series, entry: str | None) -> str | None:
    """Every match of entry vs its scratch judged; with the entry's single judgments (the report reads both)."""
    path, baseline = output_path(series, entry, "pairwise"), scratch_baseline(series, entry)
    rows = [r for r in judgment_records(series, path, pairwise=True)
            if (r.get("model_1"), r.get("model_2")) == (entry, baseline)]
    have = {(r.get("question_id"), r.get("turn")) for r in rows}
    if any((qid, t) not in have for qid, n in series.question_turns for t in range(1, n + 1)):
        return None
    return fingerprint(judgments_verified(series, entry), sorted(json.dumps(r, sort_keys=True) for r in rows))


def baseline_answers(series: Series, entry: str | None) -> list[str]:
    """The scratch entry's answers are half of every match: their content is part of the fingerprint."""
    baseline = scratch_baseline(series, entry)
    path = output_path(series, baseline, "answer") if baseline else None
    return [str(path)] if path is not None and path.is_file() else []


def no_pairwise_match(series: Series, entry: str | None) -> str | None:
    """An entry without a pairwise match (single mode, a scratch entry, no scratch of its size) has
    nothing to run; its output is its single judgments."""
    return None if scratch_baseline(series, entry) else fingerprint("no match", judgments_verified(series, entry))


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


def given_base(series: Series, entry: str | None) -> str | None:
    path = series.entry(entry).path
    return None if path is None else checkpoint_fingerprint(path)


def remove_judgments(series: Series, entry: str | None) -> None:
    """The judgment file is shared: drop this entry's and its control's rows (and failures), keep the rest."""
    path = output_path(series, entry, "judge")
    with output_lock(path, "stage reset: judgments"):  # a judge appending meanwhile would lose its records
        for file in (path, failed_list_path(path)):
            if file.is_file():
                keep = [r for r in read_jsonl(file) if r.get("model") not in (entry, control_of(entry))]
                atomic_write_jsonl(file, keep)


def report_verified(series: Series, entry: str | None) -> str | None:
    out = output_path(series, None, "report")
    table = out / "table.csv"
    return file_sha256(table) if table.is_file() and (out / "table.md").is_file() else None
