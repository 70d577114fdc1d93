"""What an MT-Bench output file may already hold before a command writes into it.

Answer, judgment and report commands append to (or rewrite) files they find: that is how they
resume. A file of another kind at that path (a judgment file given as `--answer-file`, training
data, the answers given as the judge's own `--output-file`) would be appended to, rewritten or
sorted into something else, so it is refused, as is an output that is one of the run's inputs;
both before anything is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from align.errors import UserError
from align.files import numbered_jsonl

ANSWER = "MT-Bench answer"
SINGLE = "single-answer judgment"
PAIRWISE = "pairwise judgment"
FAILED = "failed-judgment list"
# Fields that tell the kinds apart, most specific first (a judgment also has question_id and turn).
SIGNATURES = ((PAIRWISE, ("model_1", "model_2", "g1_winner")), (SINGLE, ("question_id", "model", "score")),
              (FAILED, ("question_id", "turn", "error")), (ANSWER, ("question_id", "choices")),
              ("MT-Bench question", ("question_id", "turns", "category")),
              ("training data", ("messages",)), ("preference data", ("chosen", "rejected")))


def record_kind(record: dict) -> str:
    for kind, fields in SIGNATURES:
        if all(f in record for f in fields):
            return kind
    return "unrecognised"


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
