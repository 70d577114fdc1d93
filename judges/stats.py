"""Bootstrap and paired statistics over MT-Bench questions (numpy only).

The unit of resampling is the question: a question's two turns share its difficulty, so they
are resampled together. Judgments are noisy (sd ~3.5 per judgment), so single-model CIs are
wide and a difference between two models must be tested paired, over the questions both have.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from itertools import product

import numpy as np


def finite_or_none(x):
    """`x` as JSON should hold it: None for a missing number and for NaN or +-inf (which JSON has no
    way to write), else `x` unchanged (an int stays an int)."""
    if isinstance(x, numbers.Real) and not math.isfinite(x):
        return None
    return x


EXACT_SIGN_FLIP_MAX_N = 16  # 2**16 sign patterns: enumerate them all up to this many questions
# Below this many questions a percentile bootstrap is not a 95% interval (one question: zero width):
# the report shows no CI and says why.
MIN_CI_QUESTIONS = 10
# --min-ci-questions may not go below this: a bootstrap over 1 question is one point (a zero-width "95% CI"),
# over 2 it has three values, and the equal-length line (two parameters) has no residual left below 3.
CI_QUESTIONS_FLOOR = 3


def bootstrap_mean_ci(per_question: list[list[float]], n_boot: int = 10_000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of the mean over all scores, resampling questions (each a list of its valid scores)."""
    per_question = [q for q in per_question if q]
    if not per_question:
        return float("nan"), float("nan")
    sums = np.array([sum(q) for q in per_question], dtype=float)
    counts = np.array([len(q) for q in per_question], dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(sums), size=(n_boot, len(sums)))
    means = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


@dataclass
class PairedResult:
    n: int  # questions both models have
    mean: float  # mean over those questions of (model - baseline) per-question score
    ci_low: float
    ci_high: float
    p_value: float  # two-sided sign-flip (paired permutation) test of "no difference"


def sign_flip_p_value(diffs: np.ndarray, n_perm: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value of a paired sign-flip permutation test on the mean difference.

    Under "no difference" each question's difference is as likely positive as negative.
    Exact (all 2**n sign patterns) for n <= 16, otherwise Monte Carlo with the +1 correction.
    """
    n = len(diffs)
    if n == 0:
        return float("nan")
    observed = abs(diffs.mean())
    tol = 1e-12 * max(1.0, observed)  # ties with the observed statistic count as extreme
    if n <= EXACT_SIGN_FLIP_MAX_N:
        signs = np.array(list(product((1.0, -1.0), repeat=n)))
        return float(np.mean(np.abs(signs @ diffs / n) >= observed - tol))
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(n_perm, n))
    extreme = np.sum(np.abs(signs @ diffs / n) >= observed - tol)
    return float((extreme + 1) / (n_perm + 1))


def paired_difference(model: dict[int, float], baseline: dict[int, float], n_boot: int = 10_000,
                      seed: int = 0, level: float = 0.95) -> PairedResult:
    """model - baseline over shared questions: mean, paired bootstrap percentile CI, sign-flip p-value.

    Inputs map question_id -> that question's score (mean of its valid turns).
    """
    shared = sorted(set(model) & set(baseline))
    if not shared:
        nan = float("nan")
        return PairedResult(0, nan, nan, nan, nan)
    diffs = np.array([model[q] - baseline[q] for q in shared], dtype=float)
    rng = np.random.default_rng(seed)
    boots = diffs[rng.integers(0, len(diffs), size=(n_boot, len(diffs)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(boots, [tail, 100 - tail])
    return PairedResult(len(shared), float(diffs.mean()), float(low), float(high),
                        sign_flip_p_value(diffs, n_perm=n_boot, seed=seed))


def paired_ratio_difference(model: dict, baseline: dict, transform, n_boot: int = 10_000, seed: int = 0,
                            level: float = 0.95) -> PairedResult:
    """model - baseline of a corpus-level measure: transform(sum numerators / sum denominators).

    Inputs map item id -> (numerator, denominator), e.g. a document's (log-likelihood, words) for word
    perplexity exp(-sum ll / sum words). Resampling items (the same resample for both models, paired)
    and recomputing the ratio on each is the ratio estimator's bootstrap; a mean of per-item ratios would
    weigh a short document like a long one. No sign-flip test: the p-value is NaN.
    """
    shared = sorted(set(model) & set(baseline))
    if not shared:
        nan = float("nan")
        return PairedResult(0, nan, nan, nan, nan)
    m = np.array([model[k] for k in shared], dtype=float)
    b = np.array([baseline[k] for k in shared], dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(shared), size=(n_boot, len(shared)))

    def measure(pairs: np.ndarray, rows=slice(None)) -> np.ndarray:
        sums = pairs[rows].sum(axis=-2)
        return transform(sums[..., 0] / sums[..., 1])

    boots = measure(m, idx) - measure(b, idx)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(boots, [tail, 100 - tail])
    return PairedResult(len(shared), float(measure(m) - measure(b)), float(low), float(high), float("nan"))
