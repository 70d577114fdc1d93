"""What an MT-Bench output file may already hold before a command writes into it.

Answer, judgment and report commands append to (or rewrite) files they find: that is how they
resume. A file of another kind at that path (a judgment file given as `--answer-file`, training
data, the answers given as the judge's own `--output-file`) would be appended to, rewritten or
sorted into something else, so it is refused, as is an output that is one of the run's inputs;
both before anything is written. Commands that replace one JSON file whole (`align mtbench agreement
--out`) follow the same rule: the file may only be an earlier output of the same command.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from align.plumbing.errors import UserError
from align.plumbing.files import numbered_jsonl, read_jsonl

ANSWER = "MT-Bench answer"
SINGLE = "single-answer judgment"
PAIRWISE = "pairwise judgment"
FAILED = "failed-judgment list"
# Fields that tell the kinds apart, most specific first (a judgment also has question_id and turn).
SIGNATURES = ((PAIRWISE, ("model_1", "model_2", "g1_winner")), (SINGLE, ("question_id", "model", "score")),
              (FAILED, ("question_id", "turn", "error")), (ANSWER, ("question_id", "choices")),
              ("MT-Bench question", ("question_id", "turns", "category")),
              ("MT-Bench judge prompt", ("name", "prompt_template")),
              ("training data", ("messages",)), ("preference data", ("chosen", "rejected")))


def record_kind(record: dict) -> str:
    for kind, fields in SIGNATURES:
        if all(f in record for f in fields):
            return kind
    return "unrecognised"


def judgment_kind(record: dict) -> str | None:
    """PAIRWISE or SINGLE by the fields that tell judgment records apart (model_1; a model and a score),
    else None. Looser than record_kind on purpose: a damaged judgment still reads as its kind, so
    its reader names the field it lacks instead of calling it no judgment at all."""
    if "model_1" in record:
        return PAIRWISE
    if "score" in record and "model" in record:
        return SINGLE
    return None


def first_judgment_kind(path: str | os.PathLike) -> str | None:
    """The judgment kind of a file's first record: a judgment file holds one kind; None when empty."""
    for record in read_jsonl(path):
        return judgment_kind(record)
    return None


def check_file_kind(path: str | os.PathLike, expected: str, flag: str) -> None:
    """Refuse an existing `path` holding any record that is not of the `expected` kind."""
    path = Path(path)
    if not path.is_file():
        return
    for lineno, record in numbered_jsonl(path):
        kind = record_kind(record)
        if kind != expected:
            what = "a record of no MT-Bench kind" if kind == "unrecognised" else f"a {kind} record"
            raise UserError(f"{flag} {path}:{lineno}: {what}; this command writes only {expected} "
                            "records there and refuses a file holding anything else: choose another file")


def _contents(path: Path) -> str:
    """What an existing file holds, for a refusal: the kind of its first record, or what else it is."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return "something that is not UTF-8 text"
    try:
        doc = json.loads(text)
    except ValueError:
        first = next((line for line in text.splitlines() if line.strip()), "")
        try:
            doc = json.loads(first)
        except ValueError:
            return "something that is not JSON"
    if isinstance(doc, list):
        doc = doc[0] if doc and isinstance(doc[0], dict) else {}
        if {"model_a", "model_b", "winner"} <= set(doc):
            return "a list of votes"
        return "a JSON list"
    if not isinstance(doc, dict):
        return "a JSON value that is not an object"
    kind = record_kind(doc)
    return "a JSON object of no MT-Bench kind" if kind == "unrecognised" else f"a {kind} record"


def check_own_json(path: str | os.PathLike, is_ours: Callable[[Any], bool], what: str, flag: str) -> None:
    """Refuse an existing, non-empty `path` that is not an earlier output of this command (a JSON
    document `is_ours` accepts), before anything is written: it is replaced whole, and a judgment
    file, a votes file or anything else there would be lost."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        ours = is_ours(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError):
        ours = False
    if not ours:
        raise UserError(f"{flag} {path}: holds {_contents(path)}, not an earlier {what}; this command replaces "
                        "the file whole and refuses one holding anything else: choose another file")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_not_inputs(outputs: Mapping[str, str | os.PathLike], inputs: Mapping[str, Iterable]) -> None:
    """Refuse an output (flag or file role -> path) that is one of the run's input files (name -> paths)."""
    for out_name, out in outputs.items():
        for in_name, paths in inputs.items():
            for given in paths:
                if given and _same_file(Path(out), Path(given)):
                    raise UserError(f"{out_name} {out} is also this run's input {in_name} {given}: writing "
                                    "would change what it reads; choose another output")


def question_data_files(question_dir: str | os.PathLike | None) -> list[Path]:
    """The MT-Bench files a command reads from --question-dir (questions, judge prompts, references)."""
    from judges.questions import bench_dir

    base = bench_dir(question_dir)
    return [base / "question.jsonl", base / "judge_prompts.jsonl", base.parent / "judge_prompts.jsonl",
            *sorted((base / "reference_answer").glob("*.jsonl"))]
