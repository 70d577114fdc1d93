"""`align mtbench report`: the comparison table from FastChat model_judgment files.

Per model: MT-Bench score (mean of all valid turn scores, as FastChat's show_result), turn 1
and turn 2 means, a 95% bootstrap CI over questions, per-category means, and counts of valid,
invalid (-1: no usable rating) and missing judgments (failed after retries, in
`<judgments>.failed.jsonl`, and not judged since; or a turn never judged of a question the model
has judgments or failures for). A re-judged (model, question, turn) counts once: its latest judgment
(judges/records.py: the highest tstamp; among equal ones, the later line).
For each model with a baseline (the study table's, --study: the same-size `scratch` entry of the
series; without a table, the `scratch` model of the size its name says): its paired difference from it
over the questions both have (per-question score = mean of its valid turns),
with a paired bootstrap CI and a two-sided sign-flip permutation p-value. No CI below
--min-ci-questions questions. Controls (`<model>@mismatched`, judged with --controls) are not rows:
they give each model's judge check (check.py), whose failure is the table's first line.
Pairwise files (`_pair.jsonl`) add the pairwise section (pair_report.py). --base-eval and --heldout
add the judge-free measures (judge_free.py): a Base models table and held-out columns, each with its
paired difference from the same-size scratch model.
Writes table.md, table.csv, table.tex, categories.png, summary.json and report.html; prints the Markdown.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
import time
from pathlib import Path, PureWindowsPath

from align.plumbing.argtypes import int_at_least, non_negative_int
from align.plumbing.errors import UserError
from align.plumbing.file_set import replaced_together
from align.plumbing.files import atomic_write_json, atomic_write_text, check_output_dir
from align.plumbing.locks import output_lock
from align.plumbing.runcard import check_own_run_card, write_run_card
from judges import records
from judges.file_kinds import check_not_inputs, question_data_files
from judges.judging.controls import is_control
from judges.questions import load_questions
from judges.records import is_pair_file
from judges.reporting.check import (
    agreement_markdown,
    check_lines,
    check_warning,
    equal_length_notes,
    judge_check,
    words_per_turn,
)
from judges.reporting.html import write_html
from judges.reporting.judge_free import JudgeFree, load_base_evals, load_heldouts, summary_parts, warning_with_evidence
from judges.reporting.judge_free_tables import base_latex, base_markdown, csv_columns, heldout_columns, heldout_note
from judges.reporting.pair_report import pair_markdown, pair_summary, position_bias
from judges.reporting.pair_report import pair_rows as pair_report_rows
from judges.reporting.pretraining_plot import load_curves, plot_pretraining
from judges.reporting.rows import Row, Study
from judges.reporting.tables import csv_text, judge_passes, latex, markdown, md_table, plot_categories
from judges.stats import CI_QUESTIONS_FLOOR, MIN_CI_QUESTIONS, bootstrap_mean_ci, finite_or_none, paired_difference
from judges.trust.agreement import judges_agreement, split_by_judge
from judges.trust.controlled import length_adjusted, pair_controls

log = logging.getLogger(__name__)

REPORT_FILES = ("table.md", "table.csv", "table.tex", "categories.png", "pretraining.png", "summary.json",
                "report.html")
REPORT_CARD = "report.run_card.json"  # named after the report: the folder's run_card.json is another stage's


# ---------------------------------------------------------------- reading

def load_judgments(paths: list[str], question_turns: dict[int, int]
                   ) -> tuple[dict[tuple[str, int, int], dict], set[tuple[str, int, int]]]:
    """(latest judgment per (model, question, turn), slots that failed and were never judged since):
    records.load_judgments, and one judge for all the files."""
    judged, failed = records.load_judgments(paths, question_turns)
    judges = {str(rec["judge"][0]) for rec in judged.values() if isinstance(rec.get("judge"), list) and rec["judge"]}
    if len(judges) > 1:
        raise UserError(f"judgments from different judges ({', '.join(sorted(judges))}): report one judge at a time")
    return judged, failed


def rows_from_study(path: str) -> list[Row]:
    """One row per entry of a study table (`align series` writes it; `align mtbench report --series FILE` builds
    it from a series file): {"entries": [{name, size, construction, baseline}, ...]}, each row with its baseline
    (the model it is compared with, or null)."""
    try:
        table = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"--study {path}: cannot read a study table ({err})") from None
    entries = table.get("entries") if isinstance(table, dict) else None
    if not isinstance(entries, list) or not entries:
        raise UserError(f"--study {path}: expected {{\"entries\": [...]}} with at least one entry")
    return rows_of_study(entries, f"--study {path}")


def rows_of_study(entries: list, where: str) -> list[Row]:
    rows = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) and entry[k] for k in
                                                  ("name", "size", "construction")) \
                or not isinstance(entry.get("baseline"), (str, type(None))):
            raise UserError(f"{where}: entries[{i}] needs name, size and construction (and a baseline: a name "
                            "or null)")
        rows.append(Row(entry["name"], entry["size"], entry["construction"], baseline=entry["baseline"]))
    names = {r.name for r in rows}
    for i, row in enumerate(rows):
        if row.baseline is not None and row.baseline not in names:
            raise UserError(f"{where}: entries[{i}] ({row.name}): baseline {row.baseline!r} is not an entry")
    return rows


SIZE_IN_NAME = re.compile(r"(?i)(?:^|[-_/.])(\d+(?:\.\d+)?[bm])(?=$|[-_/.])")


def rows_from_names(models: list[str]) -> list[Row]:
    """No series file: one row per model; size/construction only when the name says so plainly."""
    rows = []
    for name in sorted(models):
        size = SIZE_IN_NAME.search(name)
        lower = name.lower()
        expanded = "expand" in lower or "grown" in lower
        construction = "scratch" if "scratch" in lower else "expanded" if expanded else ""
        rows.append(Row(name, size.group(1).upper() if size else "", construction))

    def order(row: Row):  # by size (millions before billions), scratch first, then name
        num = float(row.size[:-1]) * (1e3 if row.size.endswith("B") else 1) if row.size else math.inf
        return num, row.construction != "scratch", row.name

    return sorted(rows, key=order)


# ---------------------------------------------------------------- numbers

def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def fill_row(row: Row, judged: dict, failed: set, categories: dict[int, str], n_turns: dict[int, int],
             n_boot: int, seed: int, min_questions: int = MIN_CI_QUESTIONS) -> None:
    mine = {slot: rec for slot, rec in judged.items() if slot[0] == row.name}
    valid = {slot: float(rec["score"]) for slot, rec in mine.items() if 1 <= float(rec["score"]) <= 10}
    row.valid, row.invalid = len(valid), len(mine) - len(valid)
    # Expected: every turn of every question this model was judged (or failed) on.
    seen = {qid for (model, qid, _) in set(mine) | failed if model == row.name}
    expected = {(row.name, qid, t) for qid in seen for t in range(1, n_turns.get(qid, 2) + 1)}
    row.missing = len(expected - set(mine))
    by_question: dict[int, list[float]] = {}
    for (_, qid, _), score in sorted(valid.items()):
        by_question.setdefault(qid, []).append(score)
    row.score = _mean(list(valid.values()))
    row.turn1 = _mean([s for (_, _, t), s in valid.items() if t == 1])
    row.turn2 = _mean([s for (_, _, t), s in valid.items() if t == 2])
    row.n_questions = len(by_question)
    if row.n_questions >= min_questions:
        row.ci = bootstrap_mean_ci(list(by_question.values()), n_boot=n_boot, seed=seed)
    row.per_question = {qid: _mean(scores) for qid, scores in by_question.items()}
    per_cat: dict[str, list[float]] = {}
    for (_, qid, _), score in valid.items():
        per_cat.setdefault(categories.get(qid, "unknown"), []).append(score)
    row.categories = {cat: _mean(scores) for cat, scores in per_cat.items()}


def same_size_scratch(rows: list[Row]) -> None:
    """Rows guessed from model names (no study table): each non-scratch row's baseline is the scratch row of its
    size (the first one, if several)."""
    scratch = {}
    for row in rows:
        if row.construction == "scratch" and row.size:
            scratch.setdefault(row.size, row)
    for row in rows:
        base = scratch.get(row.size)
        if row.construction and row.construction != "scratch" and base is not None:
            row.baseline = base.name


def pair_rows(rows: list[Row], n_boot: int, seed: int, min_questions: int = MIN_CI_QUESTIONS) -> None:
    """Each row with a baseline against its baseline's row: the paired difference over their common questions."""
    by_name = {row.name: row for row in rows}
    for row in rows:
        if row.baseline is not None:
            row.diff = paired_difference(row.per_question, by_name[row.baseline].per_question, n_boot=n_boot,
                                         seed=seed)
            if row.diff.n < min_questions:  # the mean and the exact p stand; the interval does not
                row.diff.ci_low = row.diff.ci_high = math.nan


# ---------------------------------------------------------------- command

def _judge_name(records) -> str:
    """The judge as the report names it: a local checkpoint (recorded as its absolute path) by its
    directory's name, so no report shows where files lie on the judging machine."""
    judges = {str(rec["judge"][0]) for rec in records if isinstance(rec.get("judge"), list) and rec["judge"]}
    if not judges:
        return "unknown"
    name = judges.pop()
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:  # a path, not a hub id like org/model
        return PureWindowsPath(name).name or name  # PureWindowsPath splits on / and on backslashes
    return name


def single_rows(study: Study, files: list[str], table: list[Row] | None, n_boot: int, seed: int,
                min_questions: int) -> None:
    judged, failed = load_judgments(files, {q["question_id"]: len(q["turns"]) for q in study.questions})
    if not judged and not failed:
        raise UserError(f"no judgments in {', '.join(files)}")
    models = sorted({slot[0] for slot in judged} | {slot[0] for slot in failed})
    controls = [m for m in models if is_control(m)]
    if table is None:
        rows = rows_from_names([m for m in models if not is_control(m)])
        same_size_scratch(rows)
    else:
        rows = table
    extra = sorted(set(models) - {r.name for r in rows} - set(controls))
    if extra:
        log.warning("not in the series file, left out of the table: %s", ", ".join(extra))
    categories = {q["question_id"]: q.get("category", "unknown") for q in study.questions}
    n_turns = {q["question_id"]: len(q["turns"]) for q in study.questions}
    control_rows = [Row(name) for name in controls]
    for row in rows + control_rows:
        fill_row(row, judged, failed, categories, n_turns, n_boot, seed, min_questions)
    pair_rows(rows, n_boot, seed, min_questions)
    lengths = words_per_turn(study.answers)
    for row in rows:
        row.words = lengths.get(row.name, math.nan)
    study.rows, study.judged, study.judge = rows, judged, _judge_name(judged.values())
    study.controls_seen = bool(controls)
    study.checks = judge_check({r.name: r.per_question for r in rows + control_rows}, [r.name for r in rows],
                               n_boot, seed, min_questions)
    study.warning = check_warning(study.checks, min_questions)


def study_rows(args: argparse.Namespace) -> list[Row] | None:
    """The rows of the study table: --study's file, or the entries a caller put in `args.study_entries` (the
    align command line's `--series FILE`); None without either (rows from the model names)."""
    if getattr(args, "study_entries", None) is not None:
        return rows_of_study(args.study_entries, getattr(args, "study_source", "the study table"))
    return rows_from_study(args.study) if args.study else None


def build_study(args: argparse.Namespace) -> Study:
    judges = split_by_judge(args.input_file)  # a second judge's files: only its agreement with the first
    pair_files = [p for p in judges[0][1] if is_pair_file(p)]
    single_files = [p for p in judges[0][1] if p not in pair_files]
    study = Study(questions=load_questions(args.question_dir))
    if args.answer_file:
        study.answers = records.load_answers(args.answer_file)
    if single_files:
        single_rows(study, single_files, study_rows(args), args.bootstrap, args.seed, args.min_ci_questions)
        length_adjusted(study.rows, study.answers, args.min_ci_questions)
    if pair_files:
        study.pair_judged, failed = records.load_judgments(pair_files, {q["question_id"]: len(q["turns"])
                                                                        for q in study.questions}, pairwise=True)
        if not study.pair_judged and not failed:
            raise UserError(f"no judgments in {', '.join(pair_files)}")
        categories = {q["question_id"]: q.get("category", "unknown") for q in study.questions}
        study.pairs = pair_report_rows(study.pair_judged, categories, args.bootstrap, args.seed,
                                       args.min_ci_questions, failed)
        study.bias = position_bias(study.pair_judged)
        controls = pair_controls(study.pair_judged, study.answers, args.bootstrap, args.seed,
                                 args.min_ci_questions)
        for row in study.pairs:
            row.controls = controls.get((row.model_1, row.model_2))
        study.pair_judge = _judge_name(study.pair_judged.values())
    if len(judges) == 2:
        study.agreement = judges_agreement(judges[0][1], judges[1][1], args.question_dir)
        study.agreement_judges = tuple(_judge_name([{"judge": [name]}]) for name, _ in judges)
    judge_free(study, args)
    return study


def judge_free(study: Study, args: argparse.Namespace) -> None:
    """The base-model and held-out measures of the table's models, and their paired deltas vs scratch."""
    free = JudgeFree(base=load_base_evals(args.base_eval), heldout=load_heldouts(args.heldout))
    names = {r.name for r in study.rows}
    for flag, models in (("--base-eval", free.base), ("--heldout", free.heldout)):
        unknown = sorted(set(models) - names)
        if unknown:
            raise UserError(f"{flag}: {', '.join(unknown)}: not a model of the table "
                            f"({', '.join(sorted(names)) or 'no single-score rows'})")
    from judges.reporting.judge_free import compute

    compute(free, {r.name: r.baseline for r in study.rows if r.baseline}, args.bootstrap, args.seed,
            args.min_ci_questions)
    study.free = free
    study.warning = warning_with_evidence(study.warning, free)


def summary(study: Study, min_questions: int) -> dict:
    clean = finite_or_none
    out = {"judge": study.judge, "min_ci_questions": min_questions, "rows": [
        {"name": r.name, "size": r.size, "construction": r.construction, "mtbench": clean(r.score),
         "ci": [clean(r.ci[0]), clean(r.ci[1])], "questions": r.n_questions, "words_per_turn": clean(r.words),
         "turn1": clean(r.turn1), "turn2": clean(r.turn2),
         "judged": r.valid, "invalid": r.invalid, "missing": r.missing,
         "categories": {k: clean(v) for k, v in r.categories.items()}, "baseline": r.baseline,
         "diff": None if r.diff is None else {k: clean(v) for k, v in vars(r.diff).items()},
         "length_adjusted": r.length_adjusted}
        for r in study.rows],
        "judge_check": study.checks, "judge_check_warning": study.warning}
    if study.pairs:
        out["pairwise"] = {"judge": study.pair_judge, **pair_summary(study.pairs, study.bias)}
    if study.agreement:
        out["agreement"] = {**study.agreement, "judges": list(study.agreement_judges)}
    out.update(summary_parts(study.free))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-file", nargs="+", required=True,
                        help="FastChat model_judgment JSONL file(s): single (<judge>_single.jsonl, with any "
                             "@mismatched controls) and/or pairwise (<judge>_pair.jsonl)")
    parser.add_argument("--answer-file", nargs="*", default=[],
                        help="the judged models' answer files: answer lengths in the table, answers in report.html")
    parser.add_argument("--out-dir", required=True,
                        help="where table.md/.csv/.tex, categories.png, summary.json and report.html go")
    parser.add_argument("--study", default=None, metavar="JSON",
                        help="a study table: {\"entries\": [{name (model_id), size, construction, baseline}]} "
                             "(`align series` writes it; `align mtbench report --series FILE` reads a series file)")
    parser.add_argument("--question-dir", default=None, help="MT-Bench questions (for categories); "
                                                             "default: the packaged data")
    parser.add_argument("--bootstrap", type=int_at_least(100), default=10_000,
                        help="bootstrap resamples (and permutations)")
    parser.add_argument("--min-ci-questions", default=MIN_CI_QUESTIONS,
                        type=int_at_least(CI_QUESTIONS_FLOOR, f"an integer of at least {CI_QUESTIONS_FLOOR} (fewer "
                                          "questions make no 95% interval: one question gives a zero-width one)"),
                        help=f"show no 95%% CI for fewer questions than this (default {MIN_CI_QUESTIONS}; "
                             f"at least {CI_QUESTIONS_FLOOR})")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--base-eval", action="append", default=[], metavar="NAME=DIR",
                        help="model NAME's `align eval` output folder (base_eval.json): the Base models table "
                             "(repeatable)")
    parser.add_argument("--heldout", action="append", default=[], metavar="NAME=DIR",
                        help="model NAME's `align heldout` output folder (heldout.json): held-out loss and "
                             "preference accuracy in the MT-Bench table (repeatable; one per kind)")
    parser.add_argument("--pretraining", default=None, metavar="JSON",
                        help="a series' pretraining.json: pretraining.png, each model's loss against cumulative "
                             "FLOPs, ancestors included (`align series` passes it)")


def write_report(out: Path, study: Study, args: argparse.Namespace, started: float) -> str:
    """Write the report's files into `out`; return the Markdown."""
    md = ""
    if study.rows:
        held = heldout_columns(study.free)
        md = markdown(study.rows, study.judge, args.bootstrap, args.min_ci_questions, study.warning,
                      check_lines(study.checks, study.controls_seen), held, heldout_note() if held[0] else None,
                      equal_length_notes(study.rows), judge_passes(study.checks, study.controls_seen))
        md += ("\n" + base_markdown(study.free, study.rows, args.bootstrap, args.min_ci_questions)
               if study.free.base else "")
        atomic_write_text(out / "table.csv", csv_text(study.rows, csv_columns(study.free)))
        atomic_write_text(out / "table.tex", latex(study.rows, study.judge, study.warning, held)
                          + base_latex(study.free, study.rows))
        plot_categories(study.rows, out / "categories.png")
    if study.pairs:
        md += ("\n" if md else "") + pair_markdown(study.pairs, study.bias, study.pair_judge, args.bootstrap,
                                                   md_table, args.min_ci_questions)
    if study.agreement:
        md += ("\n" if md else "") + agreement_markdown(study.agreement, *study.agreement_judges, md_table)
    atomic_write_text(out / "table.md", md)
    atomic_write_json(out / "summary.json", summary(study, args.min_ci_questions))
    if args.pretraining:
        plot_pretraining(load_curves(args.pretraining), out / "pretraining.png")
    write_html(out / "report.html", study, summary(study, args.min_ci_questions), out / "categories.png")
    write_run_card(out, {"stage": "mtbench-report", "input_files": args.input_file,
                         "series": getattr(args, "series", None), "study": args.study,
                         "answer_files": args.answer_file, "bootstrap": args.bootstrap, "seed": args.seed,
                         "base_eval": args.base_eval, "heldout": args.heldout, "pretraining": args.pretraining,
                         "min_ci_questions": args.min_ci_questions, "judge": study.judge,
                         "output_file": str(Path(args.out_dir) / "report.html")}, started, name=REPORT_CARD)
    return md


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    started = time.time()
    check_output_dir(args.out_dir, "--out-dir")
    with output_lock(args.out_dir, "--out-dir"):  # one report writer per folder, for the whole run
        check_report_paths(args, Path(args.out_dir))
        return report_into(args, started)


def check_report_paths(args: argparse.Namespace, out: Path) -> None:
    """Before anything is written: no input is one of the files the report writes, and the report's
    run card is its own (`report.run_card.json`, beside a checkpoint's or a series' files)."""
    check_not_inputs({f"--out-dir's {name}": out / name for name in REPORT_FILES},
                     {"--input-file": args.input_file, "--answer-file": args.answer_file, "--study": [args.study],
                      "--series": [getattr(args, "series", None)],
                      "--question-dir": question_data_files(args.question_dir)})
    check_own_run_card(out / REPORT_CARD, "mtbench-report", "report.html", "--out-dir")


def report_into(args: argparse.Namespace, started: float) -> int:
    study = build_study(args)
    try:
        # all of a previous report's files are replaced (a stale table.csv must not sit beside a pairwise-only
        # report); other files in --out-dir stay
        with replaced_together(args.out_dir, (*REPORT_FILES, REPORT_CARD)) as staging:
            md = write_report(staging, study, args, started)
    except OSError as err:  # disk full, permissions: one line, and the previous report stands as it was
        print(f"error: --out-dir {args.out_dir}: could not write the report ({err.strerror or err}); "
              "the previous report, if any, is unchanged", file=sys.stderr, flush=True)
        return 1
    print(md, end="", flush=True)
    return 0
