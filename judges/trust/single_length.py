"""Single-answer Δ vs scratch at equal answer length.

Judges give longer answers higher scores, so a model that writes more can gain Δ without being better.
Over the questions both models answered: a paired regression (statsmodels OLS) of the per-question score
difference (model - baseline, each the mean of its valid turns) on the per-question length difference
(mean characters per answer turn, model - baseline). The intercept is the Δ expected at equal length,
with its t-interval; the slope is what each 1,000 characters more is worth to this judge. Centring: at
ZERO length difference. It is read only where the data reaches equal length (judges/trust/support.py):
with fewer than 10% of the questions on either side of zero length difference (every difference ~2,000,000
characters, say) the intercept is an extrapolation of the straight line, not a measurement, and there is
no value, only the reason ("not_estimable"). The same when every length difference is the same (and not 0):
the two cannot be told apart.
"""

from __future__ import annotations

import numpy as np

from judges.stats import MIN_CI_QUESTIONS, finite_or_none
from judges.trust.support import longer_share, unsupported


def chars_per_turn(answers: dict[str, dict[int, dict]], model: str) -> dict[int, float]:
    """question -> mean characters per answer turn of `model` (answer-file records)."""
    out = {}
    for qid, rec in answers.get(model, {}).items():
        try:
            turns = [str(t) for t in rec["choices"][0]["turns"]]
        except (KeyError, IndexError, TypeError):
            continue
        if turns:
            out[qid] = sum(map(len, turns)) / len(turns)
    return out


def _clean(x) -> float | None:
    return None if x is None else finite_or_none(float(x))


def length_adjusted_difference(model_scores: dict[int, float], baseline_scores: dict[int, float],
                               model_chars: dict[int, float], baseline_chars: dict[int, float],
                               level: float = 0.95, min_questions: int = MIN_CI_QUESTIONS) -> dict:
    """{"value": Δ at equal length, "ci": [lo, hi], "slope_per_1000_chars", "n", "raw": the plain mean Δ,
    "model_longer_share", "length_difference_range": [min, max] characters, "not_estimable": why or None}.
    No CI below `min_questions` questions; no value when the data does not reach equal length or the length
    differences do not vary."""
    import statsmodels.api as sm

    shared = sorted(set(model_scores) & set(baseline_scores) & set(model_chars) & set(baseline_chars))
    score_diff = np.array([model_scores[q] - baseline_scores[q] for q in shared], dtype=float)
    length_diff = np.array([model_chars[q] - baseline_chars[q] for q in shared], dtype=float) / 1000.0
    out = {"value": None, "ci": [None, None], "slope_per_1000_chars": None, "n": len(shared),
           "raw": _clean(score_diff.mean()) if shared else None, "model_longer_share": longer_share(length_diff),
           "length_difference_range": [_clean(1000 * length_diff.min()), _clean(1000 * length_diff.max())]
           if shared else [None, None], "not_estimable": None}
    equal_lengths = bool(shared) and not length_diff.any()  # already at equal length: the intercept alone
    if len(shared) < 3:
        out["not_estimable"] = f"{len(shared)} question(s) with both answers and scores: a line needs 3"
        return out
    out["not_estimable"] = unsupported({"length": length_diff}, unit="questions")
    if np.ptp(length_diff) == 0 and not equal_lengths:
        out["not_estimable"] = "every question has the same length difference: length and model cannot be told apart"
    if out["not_estimable"]:
        return out
    design = np.ones((len(shared), 1)) if equal_lengths else sm.add_constant(length_diff, has_constant="add")
    fit = sm.OLS(score_diff, design).fit()
    out["value"] = _clean(fit.params[0])
    out["slope_per_1000_chars"] = None if equal_lengths else _clean(fit.params[1])
    if len(shared) >= min_questions:
        low, high = fit.conf_int(alpha=1 - level)[0]
        out["ci"] = [_clean(low), _clean(high)]
    return out
