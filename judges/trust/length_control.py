"""Length-controlled win rate: AlpacaEval 2's glm_winrate, `length_controlled_minimal` variant, at a fixed C
(Dubois et al. 2024, "Length-Controlled AlpacaEval: A Simple Way to Debias Automatic Evaluators",
arXiv:2404.04475; tatsu-lab/alpaca_eval, src/alpaca_eval/metrics/glm_winrate.py).

The judge's preference p for model_1 (1 win, 0 loss, 0.5 tie) is fitted by a logistic GLM with no
intercept on two features: tanh((len(baseline) - len(model)) / std), lengths in characters and the std
over the matches, and a constant model-identity term. The soft label p enters as each match twice,
labelled 1 with weight p and 0 with weight 1 - p. The length-controlled win rate is the fitted
probability with the length term at 0, averaged over the matches: what the judge would prefer if both
answers had the same length. Centring: at ZERO length difference (not at the pool's mean difference).

`length_controlled_minimal` leaves out AlpacaEval's instruction-difficulty term, which is estimated
from AlpacaEval's own leaderboard; MT-Bench has no such data. The fit is glm_winrate's branch WITHOUT
cross-validation: scikit-learn's LogisticRegression (L1: l1_ratio=1, liblinear, C=100, no intercept),
bit-identical to that branch. AlpacaEval's default is a cross-validated LogisticRegressionCV; against it
the median gap was 0.07 points on simulated battles, but over 1 point in about a fifth of the draws: those
where cross-validation picks a strong L1 penalty and shrinks the rate to exactly 50%.

Read only where the data reaches equal length (judges/trust/support.py): with fewer than 10% of the
matches on either side of zero length difference, the figure is not estimable (an extrapolation).
"""

from __future__ import annotations

import math

import numpy as np

from judges.trust.matches import JudgedMatch, bootstrap, win_rate
from judges.trust.support import unsupported


def length_features(matches: list[JudgedMatch]) -> np.ndarray:
    """tanh of the standardized length difference (baseline minus model, as glm_winrate's output_1 - output_2)."""
    delta = np.array([len(m.text_2) - len(m.text_1) for m in matches], dtype=float)
    std = delta.std(ddof=1) if len(delta) > 1 else 0.0
    return np.tanh(delta / std) if std > 0 else np.zeros_like(delta)


def soft_label_fit(features: np.ndarray, preference: np.ndarray, **options):
    """A logistic regression of soft labels: each row twice, y=1 weighted p and y=0 weighted 1-p."""
    from sklearn import config_context
    from sklearn.linear_model import LogisticRegression

    x = np.vstack([features, features])
    y = np.concatenate([np.ones(len(features)), np.zeros(len(features))])
    weight = np.concatenate([preference, 1 - preference])
    with config_context(assume_finite=True):  # our features are finite; skip the check (fits run per resample)
        return LogisticRegression(fit_intercept=False, **options).fit(x, y, sample_weight=weight)


def predicted(model, features: np.ndarray) -> np.ndarray:
    """P(y=1) of a fitted no-intercept logistic regression (predict_proba's sigmoid, without its checks)."""
    from scipy.special import expit

    return expit(features @ model.coef_[0])


def length_controlled(matches: list[JudgedMatch]) -> float:
    """The point estimate: mean predicted preference at zero length difference."""
    if not matches:
        return math.nan
    preference = np.array([m.preference for m in matches])
    if preference.min() == preference.max():  # one outcome only: nothing for length to explain
        return float(preference[0])
    features = np.column_stack([length_features(matches), np.ones(len(matches))])
    model = soft_label_fit(features, preference, l1_ratio=1.0, solver="liblinear", C=100.0, random_state=123)
    at_equal_length = features.copy()
    at_equal_length[:, 0] = 0.0
    return float(predicted(model, at_equal_length).mean())


def length_differences(matches: list[JudgedMatch]) -> np.ndarray:
    """model_1's answer length minus model_2's, in characters, per match."""
    return np.array([len(m.text_1) - len(m.text_2) for m in matches], dtype=float)


def length_controlled_win_rate(matches: list[JudgedMatch], n_boot: int = 1000, seed: int = 0, **kwargs) -> dict:
    """{"value", "ci": [lo, hi], "not_estimable": why or None}: AlpacaEval 2's length-controlled win rate of
    model_1 (fixed C), bootstrap over questions; no value where the matches do not reach equal length."""
    reason = unsupported({"length": length_differences(matches)}) if matches else None
    if reason:
        return {"value": None, "ci": [None, None], "not_estimable": reason}
    return {**bootstrap(matches, length_controlled, n_boot=n_boot, seed=seed, **kwargs), "not_estimable": None}


def raw_win_rate(matches: list[JudgedMatch], n_boot: int = 1000, seed: int = 0, **kwargs) -> dict:
    """{"value", "ci"}: the tie-adjusted win rate the controlled ones stand beside."""
    return bootstrap(matches, win_rate, n_boot=n_boot, seed=seed, **kwargs)
