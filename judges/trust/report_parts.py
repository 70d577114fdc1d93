"""What `align mtbench report` adds from judges/trust: controlled win rates beside the raw ones (each only
where the data reaches equal length and style, with warnings when length and model are confounded), the Δ vs
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
from judges.trust.length_control import length_controlled_win_rate, length_differences
from judges.trust.matches import matches_from_pairs, win_rate
from judges.trust.single_length import chars_per_turn, length_adjusted_difference
from judges.trust.style_control import equal_style_win_rate
from judges.trust.support import CONFOUNDED_SHARE, SUPPORT_MIN_SHARE, confounded, diverges, longer_share
from judges.trust.votes import file_kind, judge_name

# Each resample refits a logistic model (~2 ms): the controlled CIs use at most this many resamples.
CONTROL_BOOTSTRAP_MAX = 1000


# ---------------------------------------------------------------- pairwise: controlled win rates

# (summary.json key, what the table calls it): each figure named for what it is (issue 29.7)
CONTROLLED = (("length_controlled_win_rate", "LC win rate"), ("equal_style_win_rate", "equal-style win rate"))


def pair_controls(pair_judged: dict, answers: dict, n_boot: int, seed: int, min_questions: int
                  ) -> dict[tuple[str, str], dict]:
    """(model_1, model_2) -> {"length_controlled_win_rate": {value, ci, not_estimable}, "equal_style_win_rate":
    ..., "controlled_matches", "model_1_longer_share", "warnings"} for every pair whose answers are known
    (they need the answers' texts: --answer-file)."""
    n_boot = min(n_boot, CONTROL_BOOTSTRAP_MAX)
    out = {}
    for pair, matches in matches_from_pairs(pair_judged, answers).items():
        control = {"length_controlled_win_rate": length_controlled_win_rate(matches, n_boot, seed,
                                                                            min_questions=min_questions),
                   "equal_style_win_rate": equal_style_win_rate(matches, n_boot, seed, min_questions=min_questions),
                   "controlled_matches": len(matches),
                   "model_1_longer_share": longer_share(length_differences(matches))}
        control["warnings"] = control_warnings(pair, control, win_rate(matches))
        out[pair] = control
    return out


def control_warnings(pair: tuple[str, str], control: dict, raw: float) -> list[str]:
    """What a reader must know before reading the controlled rates of one pair: length and model confounded,
    a figure not estimable (and why), a controlled rate far from the raw one (AlpacaEval's check)."""
    m1, m2 = pair
    share, n = control["model_1_longer_share"], control["controlled_matches"]
    warnings = []
    if confounded(share):
        warnings.append(f"{m1} vs {m2}: length and model are confounded: {m1}'s answer is the longer in "
                        f"{100 * share:.0f}% of {n} matches (warned above {100 * CONFOUNDED_SHARE:.0f}% or below "
                        f"{100 * (1 - CONFOUNDED_SHARE):.0f}%): the controlled rates rest on the fitted model's shape "
                        "more than on matches of equal length, and their CIs may exclude the truth.")
    for key, label in CONTROLLED:
        result = control[key]
        if result.get("not_estimable"):
            warnings.append(f"{m1} vs {m2}: {label} not estimable ({result['not_estimable']}).")
        elif diverges(raw, result["value"]):
            warnings.append(f"{m1} vs {m2}: the {label} ({100 * result['value']:.0f}%) is far from the raw "
                            f"tie-adjusted rate ({100 * raw:.0f}%) (AlpacaEval's check: more than 10 points and a "
                            "quarter of the way to 0% or 100%): the judge rewards length or formatting, or the fit "
                            "failed.")
    return warnings


def summary_fields(control: dict | None) -> dict:
    """summary.json's pairwise.pairs[] fields (None where there are no answers to control with)."""
    control = control or {}
    out = {}
    for name, _ in CONTROLLED:
        result = control.get(name) or {"value": None, "ci": [None, None], "not_estimable": None}
        out[name], out[f"{name}_ci"] = result["value"], list(result["ci"])
        out[f"{name}_not_estimable"] = result.get("not_estimable")
    out["model_1_longer_share"] = control.get("model_1_longer_share")
    out["control_warnings"] = list(control.get("warnings", []))
    return out


CONTROL_NOTE = ("LC: AlpacaEval 2's length-controlled win rate (glm_winrate, length_controlled_minimal, fixed C=100 "
                "as its branch without cross-validation): the judge's preference fitted on tanh(length difference / "
                "sd, in characters) and a model term, read at ZERO length difference; AlpacaEval's default "
                "cross-validated fit differs by 0.07 points (median of simulated draws), by over 1 point in about a "
                "fifth of them, where cross-validation shrinks the rate to 50%. Equal-style: a contextual "
                "Bradley-Terry (FastChat's Chatbot Arena fit_contextual_bt, L2 0.5) on Arena-Hard-Auto's style "
                "features (length and markdown headers, lists, bold, z-scored), both orders as battles, read at "
                "ZERO style difference: not Arena-Hard-Auto's number, which is read at the pair's mean style "
                "difference and lands near the raw rate. Both: ties count half, 95% CI by bootstrap over questions "
                "(refitted each time); not estimable (–) when fewer than "
                f"{100 * SUPPORT_MIN_SHARE:g}% of the matches lie on either side of zero difference (an "
                "extrapolation, not a reading). Model longer: the share of matches where Model's answer is the "
                f"longer (confounded outside {100 * (1 - CONFOUNDED_SHARE):.0f}-{100 * CONFOUNDED_SHARE:.0f}%). A raw "
                "rate well above its LC / equal-style rate says the judge is rewarding length or formatting.")


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


def equal_length_notes(rows) -> list[str]:
    """Warnings under the single-score table: a Δ at equal length that is not estimable (and why), and a model
    whose answers are the longer on nearly every question (length and model confounded)."""
    notes = []
    for row in rows:
        result = row.length_adjusted
        if not result:
            continue
        share = result.get("model_longer_share")
        if result.get("not_estimable"):
            low, high = result.get("length_difference_range") or (None, None)
            span = "" if low is None else f"; length differences {low:+,.0f} to {high:+,.0f} characters per turn"
            notes.append(f"**Warning: {row.name} vs {row.baseline}: Δ at equal length not estimable "
                         f"({result['not_estimable']}{span}).**")
        elif confounded(share):
            notes.append(f"**Warning: {row.name} vs {row.baseline}: length and model are confounded: {row.name}'s "
                         f"answers are the longer on {100 * share:.0f}% of {result['n']} questions (warned above "
                         f"{100 * CONFOUNDED_SHARE:.0f}% or below {100 * (1 - CONFOUNDED_SHARE):.0f}%): Δ at equal "
                         "length leans on the straight line's shape.**")
    return notes


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
