"""The equal-style win rate: a Bradley-Terry fit with style covariates, read at EQUAL style.

What it is, and whose: the style features are Arena-Hard-Auto's (lmarena/arena-hard-auto,
utils/add_markdown_info.py; LMSYS, "Does Style Matter? Disentangling style and substance in Chatbot
Arena", 2024); the fit, a contextual Bradley-Terry with an L2 penalty reg/2 * |params|^2 at reg 0.5, is
FastChat's Chatbot Arena `fit_contextual_bt` (fastchat/serve/monitor/rating_systems.py), NOT Arena-Hard's
(v0.1 fits scikit-learn's default LogisticRegression, v2.0 an unregularised LBFGS). The reading is ours:
Arena-Hard orients every battle baseline-vs-model, so on one model-vs-baseline pair its style-controlled
number sits at that pair's MEAN style difference and lands near the raw rate; this one is read at ZERO
style difference (what the judge would prefer had both answers the same length and markdown), a different
estimand. Do not compare it with Arena-Hard-Auto's leaderboard numbers.

Every match is two battles, one per order, with the outcome model_1's share (1 / 0.5 for a tie / 0) and 1
minus it. The logistic regression, no intercept, is on: the model term (+1 when model_1 is the battle's
first answer, -1 otherwise) and four style features of first (a) against second (b): length
(len_a - len_b) / (len_a + len_b) in characters, and the densities (d_a - d_b) / (d_a + d_b + 1) of
markdown headers, list items and bold spans per 1,000 characters (code blocks removed first); each
feature z-scored over the battles. Ties enter as soft labels (each battle twice, weighted p and 1-p); the
L2 objective is scikit-learn's L2 LogisticRegression with C = 1/reg = 2. Because both orders are battles,
the z-scored features' 0 is zero style difference. Differences from Arena-Hard's features, on purpose:
lengths are characters, not tokens (no tokenizer is assumed); markdown enters as densities, not raw
counts, so it is not a second length term.

Read only where the data reaches equal style (judges/trust/support.py): with fewer than 2.5% of the matches
on either side of zero for any style difference, the figure is not estimable (an extrapolation).
"""

from __future__ import annotations

import functools
import math
import re

import numpy as np

from judges.trust.length_control import predicted, soft_label_fit
from judges.trust.matches import JudgedMatch, bootstrap
from judges.trust.support import unsupported

CODE_BLOCK = re.compile(r"```.*?```", re.S)
HEADER = re.compile(r"^#{1,6}\s+\S", re.M)
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S", re.M)
BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
STYLE_NAMES = ("length", "header density", "list density", "bold density")
CONTEXTUAL_BT_REG = 0.5  # FastChat fit_contextual_bt's L2 strength (reg/2 * |params|^2)


@functools.lru_cache(maxsize=65536)  # every bootstrap resample asks again for the same texts
def style(text: str) -> tuple[float, float, float, float]:
    """(length in characters, headers, list items and bold spans per 1,000 characters), code blocks removed."""
    prose = CODE_BLOCK.sub("", text)
    per_k = 1000.0 / max(len(prose), 1)
    return (float(len(text)), len(HEADER.findall(prose)) * per_k, len(LIST_ITEM.findall(prose)) * per_k,
            len(BOLD.findall(prose)) * per_k)


def style_differences(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Arena-Hard's normalized differences: length (a-b)/(a+b), densities (a-b)/(a+b+1)."""
    total = first + second
    total[:, 1:] += 1.0
    total[:, 0] = np.where(total[:, 0] > 0, total[:, 0], 1.0)  # two empty answers: no difference
    return (first - second) / total


def zscore(columns: np.ndarray) -> np.ndarray:
    std = columns.std(axis=0)
    return np.where(std > 0, (columns - columns.mean(axis=0)) / np.where(std > 0, std, 1.0), 0.0)


def battles(matches: list[JudgedMatch]) -> tuple[np.ndarray, np.ndarray]:
    """(features: model term then the z-scored style differences, model_1-first outcome) for both orders."""
    s1 = np.array([style(m.text_1) for m in matches])
    s2 = np.array([style(m.text_2) for m in matches])
    p = np.array([m.preference for m in matches])
    diffs = np.vstack([style_differences(s1, s2), style_differences(s2, s1)])
    model_term = np.concatenate([np.ones(len(matches)), -np.ones(len(matches))])
    return np.column_stack([model_term, zscore(diffs)]), np.concatenate([p, 1 - p])


def style_difference_columns(matches: list[JudgedMatch]) -> dict[str, np.ndarray]:
    """Each style difference, model_1 minus model_2, per match (the support check's input)."""
    diffs = style_differences(np.array([style(m.text_1) for m in matches]), np.array([style(m.text_2)
                                                                                         for m in matches]))
    return dict(zip(STYLE_NAMES, diffs.T))


def equal_style(matches: list[JudgedMatch]) -> float:
    """The point estimate: P(model_1 beats model_2) with every style difference at 0."""
    if not matches:
        return math.nan
    preference = np.array([m.preference for m in matches])
    if preference.min() == preference.max():  # one outcome only: nothing for style to explain
        return float(preference[0])
    features, outcome = battles(matches)
    model = soft_label_fit(features, outcome, C=1 / CONTEXTUAL_BT_REG)
    at_equal_style = np.zeros((1, features.shape[1]))  # z-scored over both orders: 0 is no difference
    at_equal_style[0, 0] = 1.0
    return float(predicted(model, at_equal_style)[0])


def equal_style_win_rate(matches: list[JudgedMatch], n_boot: int = 1000, seed: int = 0, **kwargs) -> dict:
    """{"value", "ci": [lo, hi], "not_estimable": why or None}: the equal-style win rate of model_1, bootstrap
    over questions; no value where the matches do not reach equal style."""
    reason = unsupported(style_difference_columns(matches)) if matches else None
    if reason:
        return {"value": None, "ci": [None, None], "not_estimable": reason}
    return {**bootstrap(matches, equal_style, n_boot=n_boot, seed=seed, **kwargs), "not_estimable": None}
