"""What `align mtbench report` adds from judges/trust: controlled win rates beside the raw ones, the Δ vs
scratch at equal length, and the agreement of two judges when --input-file holds two judges' files.

Kept here so the report's own modules change by a few lines: the report calls these with what it has
already read (its rows, its pairwise judgments, the answers) and writes what they return.
"""

from __future__ import annotations

import math
from pathlib import Path

from align.errors import UserError
from align.files import read_jsonl
from judges.trust.command import compare
from judges.trust.length_control import length_controlled_win_rate
from judges.trust.matches import matches_from_pairs
from judges.trust.single_length import chars_per_turn, length_adjusted_difference
from judges.trust.style_control import style_controlled_win_rate
from judges.trust.votes import file_kind, judge_name

# Each resample refits a logistic model (~2 ms): the controlled CIs use at most this many resamples.
CONTROL_BOOTSTRAP_MAX = 1000


# ---------------------------------------------------------------- pairwise: controlled win rates

def pair_controls(pair_judged: dict, answers: dict, n_boot: int, seed: int, min_questions: int
                  ) -> dict[tuple[str, str], dict]:
    """(model_1, model_2) -> {"length_controlled_win_rate": {value, ci}, "style_controlled_win_rate": ...}
    for every pair whose answers are known (they need the answers' texts: --answer-file)."""
    n_boot = min(n_boot, CONTROL_BOOTSTRAP_MAX)
    out = {}
    for pair, matches in matches_from_pairs(pair_judged, answers).items():
        out[pair] = {"length_controlled_win_rate": length_controlled_win_rate(matches, n_boot, seed,
                                                                              min_questions=min_questions),
                     "style_controlled_win_rate": style_controlled_win_rate(matches, n_boot, seed,
                                                                            min_questions=min_questions),
                     "controlled_matches": len(matches)}
    return out


def summary_fields(control: dict | None) -> dict:
    """summary.json's pairwise.pairs[] fields (None where there are no answers to control with)."""
    control = control or {}
    out = {}
    for name in ("length_controlled_win_rate", "style_controlled_win_rate"):
        result = control.get(name) or {"value": None, "ci": [None, None]}
        out[name], out[f"{name}_ci"] = result["value"], result["ci"]
    return out


CONTROL_NOTE = ("Length-controlled (LC): AlpacaEval 2's GLM (length_controlled_minimal): the judge's preference "
                "fitted on tanh(length difference / sd, in characters) and a model term, read at ZERO length "
                "difference. Style-controlled (SC): Arena-Hard-Auto's style control: Bradley-Terry with z-scored "
                "length and markdown (headers, lists, bold) differences, read at the pool's MEAN style difference "
                "(both orders are battles, so that is equal style). Both: ties count half, 95% CI by bootstrap over "
                "questions (refitted each time). A raw win rate well above its LC/SC says the judge is rewarding "
                "length or formatting.")


# ---------------------------------------------------------------- single: Δ at equal length

def length_adjusted(rows, answers: dict, min_questions: int) -> None:
    """Give each row compared with a baseline its `length_adjusted` result (needs the answers)."""
    by_name = {r.name: r for r in rows}
    for row in rows:
        base = by_name.get(row.baseline) if row.baseline else None
        if base is None or row.name not in answers or base.name not in answers:
            continue
        row.length_adjusted = length_adjusted_difference(row.per_question, base.per_question,
                                                         chars_per_turn(answers, row.name),
                                                         chars_per_turn(answers, base.name),
                                                         min_questions=min_questions)


# ---------------------------------------------------------------- two judges: agreement

def _file_judge(path: str) -> str | None:
    """The judge named by a judgment file's first record that names one; None if none does (or no file)."""
    if not Path(path).is_file():
        return None  # the report's own reader says what is wrong with it
    for rec in read_jsonl(path):
        if rec.get("judge"):
            return judge_name(rec["judge"])
    return None


def split_by_judge(files: list[str]) -> list[tuple[str, list[str]]]:
    """[(judge, its files)] in the order the judges first appear; a file naming no judge goes with the
    first; more than two judges is refused."""
    groups: dict[str, list[str]] = {}
    unnamed = []
    for path in files:
        judge = _file_judge(path)
        if judge is None:
            unnamed.append(path)
        else:
            groups.setdefault(judge, []).append(path)
    if not groups:
        return [("unknown", list(files))]
    first = next(iter(groups))
    groups[first] = [p for p in files if p in groups[first] or p in unnamed]
    if len(groups) > 2:
        raise UserError(f"--input-file: judgments of {len(groups)} judges ({', '.join(groups)}); the report takes "
                        "one judge, or two to compare")
    return list(groups.items())


def judges_agreement(files_a: list[str], files_b: list[str], question_dir: str | None) -> dict:
    """Agreement of two judges: their pairwise files if both have one, else their single-answer files
    (verdicts by score), else whatever kinds they have (a pairwise judge against verdicts by score)."""
    kinds_a = {file_kind(p): p for p in reversed(files_a)}  # the first file of each kind
    kinds_b = {file_kind(p): p for p in reversed(files_b)}
    kind = next((k for k in ("pair", "single") if k in kinds_a and k in kinds_b), None)
    a = kinds_a[kind] if kind else next(iter(kinds_a.values()))
    b = kinds_b[kind] if kind else next(iter(kinds_b.values()))
    return compare(a, b, question_dir=question_dir)


AGREEMENT_HEADER = ["Turn", "With ties (S1)", "Without ties (S2)"]


def agreement_rows(result: dict) -> list[list[str]]:
    """The agreement table's rows (table.md and report.html)."""
    def cell(c: dict) -> str:
        return "–" if c["ratio"] is None else f"{100 * c['ratio']:.0f}% ({c['agree']}/{c['total']})"

    return [[turn.replace("_", " "), cell(result[turn]["with_ties"]), cell(result[turn]["without_ties"])]
            for turn in ("turn_1", "turn_2")]


def agreement_notes(result: dict, judge_a: str) -> list[str]:
    """What the agreement numbers mean, and the scores' rank agreement when both judges gave scores."""
    notes = [f"Files: {result['a']['file']} ({result['a']['kind']}) against {result['b']['file']} "
             f"({result['b']['kind']}). FastChat's definitions: a match agrees when both give the same verdict "
             "(two ties agree); S2 skips matches either judge called a tie. Chance: 33% (S1), 50% (S2); GPT-4 "
             "against humans in the MT-Bench paper: 66% / 85%, humans among themselves 63% / 81%. The tables "
             f"above are {judge_a}'s."]
    single = result.get("single")
    if single and single.get("spearman") is not None:
        kappa = single["kappa_quadratic"]
        notes.append(f"Scores: Spearman {single['spearman']:.2f}, quadratic-weighted kappa "
                     f"{'–' if kappa is None or math.isnan(kappa) else f'{kappa:.2f}'} over {single['scores']} "
                     "scores both judges gave.")
    return notes


def agreement_markdown(result: dict, judge_a: str, judge_b: str, table) -> str:
    lines = [f"## Judge agreement ({judge_a} vs {judge_b})", "", table(AGREEMENT_HEADER, agreement_rows(result))]
    for note in agreement_notes(result, judge_a):
        lines += ["", note]
    return "\n".join(lines) + "\n"
