"""Style-controlled win rate, after Arena-Hard-Auto's style control (lmarena/arena-hard-auto,
show_result.py with --style-control and utils/add_markdown_info.py; LMSYS, "Does Style Matter?
Disentangling style and substance in Chatbot Arena", 2024).

Every match is two battles, one per order (as Arena-Hard counts its two games), with the outcome
model_1's share (1 / 0.5 for a tie / 0) and 1 minus it. A Bradley-Terry model with style covariates
is a logistic regression, no intercept, on: the model term (+1 when model_1 is the battle's first
answer, -1 otherwise) and four style features of first (a) against second (b): length
(len_a - len_b) / (len_a + len_b) in characters, and the densities (d_a - d_b) / (d_a + d_b + 1) of
markdown headers, list items and bold spans per 1,000 characters (code blocks removed first); each
feature z-scored over the battles. Ties enter as soft labels (each battle twice, weighted p and 1-p).
The style-controlled win rate is the fitted probability that model_1 wins with every style feature
at 0. Centring: at the POOL'S MEAN style difference (z-scored features at 0), Arena-Hard's choice;
since every match enters in both orders here, that mean is zero, so it coincides with equal style.

Arena-Hard minimises the contextual Bradley-Terry loss with scipy and an L2 penalty reg/2 * |params|^2
(reg 0.5); the same objective is scikit-learn's L2 LogisticRegression with C = 1/reg = 2 (its fractional
outcomes are our duplicated rows weighted p and 1-p). Differences, on purpose: lengths are characters,
not tokens (no tokenizer is assumed); markdown enters as densities, not raw counts, so it is not a second
length term; Arena-Hard adds 1 to every denominator, length's too, which for answers of hundreds of
characters changes nothing that matters.
"""

from __future__ import annotations

import functools
import math
import re

import numpy as np

from judges.trust.length_control import predicted, soft_label_fit
from judges.trust.matches import Match, bootstrap

CODE_BLOCK = re.compile(r"```.*?```", re.S)
HEADER = re.compile(r"^#{1,6}\s+\S", re.M)
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S", re.M)
BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
ARENA_HARD_REG = 0.5  # fit_contextual_bt's L2 strength


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


def battles(matches: list[Match]) -> tuple[np.ndarray, np.ndarray]:
    """(features: model term then the z-scored style differences, model_1-first outcome) for both orders."""
    s1 = np.array([style(m.text_1) for m in matches])
    s2 = np.array([style(m.text_2) for m in matches])
    p = np.array([m.preference for m in matches])
    diffs = np.vstack([style_differences(s1, s2), style_differences(s2, s1)])
    model_term = np.concatenate([np.ones(len(matches)), -np.ones(len(matches))])
    return np.column_stack([model_term, zscore(diffs)]), np.concatenate([p, 1 - p])


def style_controlled(matches: list[Match]) -> float:
    """The point estimate: P(model_1 beats model_2) with the style features at the pool's mean."""
    if not matches:
        return math.nan
    preference = np.array([m.preference for m in matches])
    if preference.min() == preference.max():  # one outcome only: nothing for style to explain
        return float(preference[0])
    features, outcome = battles(matches)
    model = soft_label_fit(features, outcome, C=1 / ARENA_HARD_REG)
    at_mean_style = np.zeros((1, features.shape[1]))
    at_mean_style[0, 0] = 1.0
    return float(predicted(model, at_mean_style)[0])


def style_controlled_win_rate(matches: list[Match], n_boot: int = 1000, seed: int = 0, **kwargs) -> dict:
    """{"value", "ci": [lo, hi]}: Arena-Hard-style style-controlled win rate of model_1, bootstrap over questions."""
    return bootstrap(matches, style_controlled, n_boot=n_boot, seed=seed, **kwargs)
