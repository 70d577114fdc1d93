"""What a reader needs before believing a score: the report's judge check, answer lengths, the warnings
under a Δ at equal length, and two judges' agreement (computed in judges/trust, rendered here).

Judge check (needs judgments made with `--controls`): per model, the paired difference "model
minus <model>@mismatched" over the questions both have (per-question score = mean of its valid
turns), with a paired bootstrap 95% CI. It separates when the CI lies above 0: the judge scores a
model's answers above the same answers attached to the wrong questions, so it reads them.
"""

from __future__ import annotations

import math

from judges.judging.controls import control_of
from judges.stats import finite_or_none, paired_difference
from judges.trust.support import CONFOUNDED_SHARE, confounded


def judge_check(per_question: dict[str, dict[int, float]], models: list[str], n_boot: int, seed: int,
                min_questions: int) -> dict[str, dict]:
    """{model: {delta, ci, separates, n}} for each model whose control was judged."""
    checks = {}
    for model in models:
        control = per_question.get(control_of(model))
        if control is None:
            continue
        d = paired_difference(per_question.get(model, {}), control, n_boot=n_boot, seed=seed)
        enough = d.n >= min_questions
        ci = [d.ci_low, d.ci_high] if enough else [None, None]
        checks[model] = {"delta": finite_or_none(d.mean), "ci": ci,
                         "separates": bool(enough and d.ci_low > 0), "n": d.n}
    return checks


def check_warning(checks: dict[str, dict], min_questions: int) -> str | None:
    """The table's first line when any model's check fails; None when all separate."""
    # Too few questions to pass, though the control scored lower: say that, not that the judge is blind.
    few = [m for m, c in checks.items()
           if not c["separates"] and c["n"] < min_questions and c["delta"] is not None and c["delta"] > 0]
    blind = [m for m, c in checks.items() if not c["separates"] and m not in few]
    if not few and not blind:
        return None
    parts = []
    if blind:
        parts.append(f"the judge does not tell the answers of {_names(blind)} from the same answers attached to "
                     "other questions, so these scores are not evidence")
    if few:
        parts.append(f"with fewer than {min_questions} questions the judge check cannot pass for {_names(few)}, "
                     "so nothing shows the judge reads these answers: the scores are not evidence")
    return "**Warning: " + "; ".join(parts) + ".**"


def _names(models: list[str]) -> str:
    return models[0] if len(models) == 1 else ", ".join(models[:-1]) + " and " + models[-1]


def check_lines(checks: dict[str, dict], controls_seen: bool) -> list[str]:
    """The judge-check paragraph under the table."""
    if not controls_seen:
        return ["Judge check: none (judged without --controls), so nothing here shows that the judge reads the "
                "answers."]
    parts = []
    for model, c in checks.items():
        ci = "no CI" if c["ci"][0] is None else f"95% CI [{c['ci'][0]:+.2f}, {c['ci'][1]:+.2f}]"
        delta = "–" if c["delta"] is None else f"{c['delta']:+.2f}"
        parts.append(f"{model} {delta} ({ci}, n={c['n']}): {'separates' if c['separates'] else 'does NOT separate'}")
    return ["Judge check: each model minus the same answers attached to other questions of the same turn count "
            "(<model>@mismatched), paired over questions; it separates when the CI lies above 0. "
            + "; ".join(parts) + "."]


def words_per_turn(answers: dict[str, dict[int, dict]]) -> dict[str, float]:
    """Mean whitespace-separated words per answer turn, per model."""
    out = {}
    for model, by_question in answers.items():
        counts = [len(turn.split()) for rec in by_question.values() for turn in rec["choices"][0]["turns"]]
        out[model] = sum(counts) / len(counts) if counts else math.nan
    return out


# ---------------------------------------------------------------- Δ at equal length: its warnings

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


# ---------------------------------------------------------------- two judges: their agreement

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
