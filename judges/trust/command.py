"""`align mtbench agreement A B [--out agreement.json]`: how often two judges give the same verdict.

Usage:
    align mtbench agreement outputs/mtbench/model_judgment/gpt-4_pair.jsonl human_judgments.json
    align mtbench agreement human_judgments.json human_judgments.json --judge-prefix-a expert   # within a pool

A and B: a pairwise judgment file (`<judge>_pair.jsonl`), a single-answer one (`<judge>_single.jsonl`:
verdicts by score) or a votes file (`mt_bench_human_judgments` format). The same file twice means the
agreement within its pool of judges (every two votes on a match). Prints the table and writes JSON:
{"turn_1": {"with_ties": {agree, total, ratio}, "without_ties": {...}}, "turn_2": {...}, ...}.
"""

from __future__ import annotations

import argparse

from align.plumbing.errors import UserError
from align.plumbing.files import atomic_write_json, check_output_file
from align.plumbing.locks import output_lock
from judges.file_kinds import check_not_inputs, check_own_json, question_data_files
from judges.trust.agreement import compare


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A", help="judge A: _pair.jsonl, _single.jsonl or a votes JSON list")
    parser.add_argument("b", metavar="B", help="judge B (the same file as A: agreement within its pool)")
    parser.add_argument("--out", default=None, help="write the numbers to this JSON file")
    parser.add_argument("--judge-prefix-a", default=None,
                        help="keep only A's votes whose judge name starts with this (e.g. expert)")
    parser.add_argument("--judge-prefix-b", default=None, help="the same for B")
    parser.add_argument("--question-dir", default=None,
                        help="the question set judgment files are checked against; default: the packaged MT-Bench")


def _ratio(cell: dict) -> str:
    return "–" if cell["ratio"] is None else f"{100 * cell['ratio']:.0f}%"


def text(result: dict) -> str:
    lines = [f"Agreement ({result['mode']}), FastChat's definitions (S1 with ties, S2 without):"]
    for turn in ("turn_1", "turn_2"):
        s1, s2 = result[turn]["with_ties"], result[turn]["without_ties"]
        lines.append(f"  {turn.replace('_', ' ')}: with ties {s1['agree']}/{s1['total']} ({_ratio(s1)}), "
                     f"without ties {s2['agree']}/{s2['total']} ({_ratio(s2)})")
    single = result.get("single")
    if single:
        def num(x):
            return "–" if x is None else f"{x:.2f}"
        lines.append(f"  scores: Spearman {num(single['spearman'])}, quadratic kappa {num(single['kappa_quadratic'])} "
                     f"over {single['scores']} scores; verdict kappa {num(single['verdict_kappa'])} over "
                     f"{single['verdicts']} matches")
    return "\n".join(lines) + "\n"


def is_agreement(doc) -> bool:
    """An earlier output of this command (what `compare` returns), the only thing --out may replace."""
    return isinstance(doc, dict) and doc.get("mode") in ("within one pool", "between two judges") \
        and {"turn_1", "turn_2", "a"} <= set(doc)


def check_out(args: argparse.Namespace) -> None:
    """--out is replaced whole: it may be new, empty or an earlier agreement JSON, never an input or
    another kind of file (a judgment file, votes) -- checked before anything is read or written."""
    check_output_file(args.out, "--out")
    check_not_inputs({"--out": args.out}, {"A": [args.a], "B": [args.b],
                                           "--question-dir": question_data_files(args.question_dir)})
    check_own_json(args.out, is_agreement, "agreement JSON (align mtbench agreement --out)", "--out")


def run(args: argparse.Namespace) -> int:
    if args.out is None:
        return _agree(args)
    check_output_file(args.out, "--out")
    with output_lock(args.out, "--out"):  # one writer: the checks below still hold when it is written
        check_out(args)
        return _agree(args)


def _agree(args: argparse.Namespace) -> int:
    result = compare(args.a, args.b, args.judge_prefix_a, args.judge_prefix_b, args.question_dir)
    if all(result[t][s]["total"] == 0 for t in ("turn_1", "turn_2") for s in ("with_ties",)):
        raise UserError(f"{args.a} and {args.b}: no match judged by both (same questions, models and turns)")
    if args.out is not None:
        atomic_write_json(args.out, result)
    print(text(result), end="", flush=True)
    return 0
