"""The report's judge check and answer lengths: what a reader needs before believing a score.

Judge check (needs judgments made with `--controls`): per model, the paired difference "model
minus <model>@mismatched" over the questions both have (per-question score = mean of its valid
turns), with a paired bootstrap 95% CI. It separates when the CI lies above 0: the judge scores a
model's answers above the same answers attached to the wrong questions, so it reads them.
"""

from __future__ import annotations

import math

from judges.judging.controls import control_of
from judges.stats import finite_or_none, paired_difference


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
