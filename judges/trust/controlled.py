"""The controlled figures of a study, beside the raw ones: per pair of models the length-controlled and
equal-style win rates (each only where the data reaches equal length and style) with the warnings a reader
needs (length and model confounded, not estimable, far from raw); per model the Δ vs its baseline at equal
length. The report reads the judgments and answers, calls these, and renders what they return
(judges/reporting).
"""

from __future__ import annotations

from judges.trust.length_control import length_controlled_win_rate, length_differences
from judges.trust.matches import matches_from_pairs, win_rate
from judges.trust.single_length import chars_per_turn, length_adjusted_difference
from judges.trust.style_control import equal_style_win_rate
from judges.trust.support import CONFOUNDED_SHARE, confounded, diverges, longer_share

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
