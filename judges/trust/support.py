"""Where a controlled figure may be read, and when length and model are confounded (issue 29.6).

Every controlled figure here (Δ at equal length, the length-controlled and the equal-style win rates) is a
fitted model read at ZERO difference between the two answers. Read where the data has almost no matches on
one side of zero, it is an extrapolation of the model's shape, not a measurement: with one model the longer
answer in 99% of matches, every controlled rate (the anchors' and ours) missed the truth by ~30 points with
CIs that excluded it.

    support          the rule: a figure is read only where zero lies inside the central 95% of the observed
                     differences, i.e. at least SUPPORT_MIN_SHARE (2.5%) of the matches (questions, for Δ) on
                     each side of zero (an exact 0 counts for both sides), for every difference the figure
                     controls; otherwise it is "not estimable" and the reason is given.
    confounding      the share of matches in which model_1's answer is the longer; outside
                     [1 - CONFOUNDED_SHARE, CONFOUNDED_SHARE] length and model are confounded: the figure
                     stands (it has support) but carries a warning. Simulated (known truth, 80 questions x 2
                     turns, a judge that likes length, 12-24 draws per share): the equal-style 95% CI missed
                     the truth in 8-25% of draws with model_1 longer in 50-85% of matches, 29-42% at 90-99%.
    diverges         AlpacaEval's check on its own LC rate (glm_winrate's get_is_extreme_changes, defaults):
                     a controlled rate more than max(10 points, a quarter of the room on that side) away from
                     the raw rate is flagged as a possible failure of the fit.
"""

from __future__ import annotations

import numpy as np

SUPPORT_MIN_SHARE = 0.025  # on each side of zero: zero inside the central 95% of the differences
CONFOUNDED_SHARE = 0.80  # model_1 longer in more than this share (or less than 1 minus it): confounded
DIVERGE_POINTS, DIVERGE_FRACTION = 0.10, 0.25  # AlpacaEval's abs_diff=10 (points) and rel_diff=4


def sides(differences) -> tuple[float, float]:
    """(share of differences >= 0, share <= 0): how much of the data lies on each side of zero."""
    d = np.asarray(differences, dtype=float)
    if d.size == 0:
        return 0.0, 0.0
    return float(np.mean(d >= 0)), float(np.mean(d <= 0))


def unsupported(named_differences: dict[str, object], unit: str = "matches") -> str | None:
    """Why a reading at zero difference is an extrapolation, or None when each named difference has at
    least SUPPORT_MIN_SHARE of the `unit` on each side of zero."""
    for name, differences in named_differences.items():
        above, below = sides(differences)
        if min(above, below) < SUPPORT_MIN_SHARE - 1e-12:  # 2 of 80 is exactly 2.5%: enough
            side, share = ("above", 1 - below) if above > below else ("below", 1 - above)
            return (f"extrapolation: the {name} difference (model minus baseline) is {side} 0 in "
                    f"{100 * share:.1f}% of {unit}; a reading at equal {name} needs at least "
                    f"{100 * SUPPORT_MIN_SHARE:g}% on each side")
    return None


def longer_share(length_differences) -> float | None:
    """The confounding measure: the share of matches in which model_1's answer is strictly the longer."""
    d = np.asarray(length_differences, dtype=float)
    return float(np.mean(d > 0)) if d.size else None


def confounded(share: float | None) -> bool:
    return share is not None and not (1 - CONFOUNDED_SHARE <= share <= CONFOUNDED_SHARE)


def diverges(raw: float | None, controlled: float | None) -> bool:
    """AlpacaEval's extreme-change rule on win rates in [0, 1]."""
    if raw is None or controlled is None:
        return False
    too_small = controlled < min(raw - raw * DIVERGE_FRACTION, raw - DIVERGE_POINTS)
    too_large = controlled > max(raw + (1 - raw) * DIVERGE_FRACTION, raw + DIVERGE_POINTS)
    return too_small or too_large
