"""Single-answer Δ at equal length: a paired OLS of the score difference on the length difference."""

from __future__ import annotations

import numpy as np
import pytest

from judges.trust.single_length import chars_per_turn, length_adjusted_difference


def test_length_bought_score_is_taken_out():
    """Δ = 0.5 at equal length plus 2 points per 1,000 characters more; the model writes ~500 more."""
    rng = np.random.default_rng(0)
    qids = range(81, 161)
    extra = {q: rng.normal(500, 300) for q in qids}
    base_scores = {q: float(rng.integers(3, 8)) for q in qids}
    model_scores = {q: base_scores[q] + 0.5 + 0.002 * extra[q] + rng.normal(0, 0.5) for q in qids}
    base_chars = {q: 800.0 for q in qids}
    model_chars = {q: 800.0 + extra[q] for q in qids}
    result = length_adjusted_difference(model_scores, base_scores, model_chars, base_chars)
    assert result["n"] == 80
    assert result["raw"] == pytest.approx(np.mean([model_scores[q] - base_scores[q] for q in qids]))
    assert result["raw"] > 1.3  # the plain Δ credits the length
    assert result["ci"][0] < 0.5 < result["ci"][1] and abs(result["value"] - 0.5) < 0.3
    assert result["slope_per_1000_chars"] == pytest.approx(2.0, abs=0.5)
    diffs = [model_scores[q] - base_scores[q] for q in qids]
    slope, intercept = np.polyfit([extra[q] / 1000 for q in qids], diffs, 1)  # the same least squares
    assert result["value"] == pytest.approx(intercept) and result["slope_per_1000_chars"] == pytest.approx(slope)


def test_no_value_when_lengths_do_not_vary_and_no_ci_when_few():
    scores = {q: 5.0 + q % 3 for q in range(81, 101)}
    base = {q: 5.0 for q in range(81, 101)}
    same = {q: 100.0 for q in range(81, 101)}
    longer = {q: 300.0 for q in range(81, 101)}
    out = length_adjusted_difference(scores, base, longer, same)  # always 200 longer: cannot separate
    assert out["value"] is None and out["raw"] == pytest.approx(0.95)
    out = length_adjusted_difference(scores, base, same, same)  # equal lengths: Δ itself, with its t-interval
    assert out["value"] == pytest.approx(0.95) and out["ci"][0] < 0.95 < out["ci"][1]
    few = {q: 100.0 + 10 * (q - 83) for q in range(81, 86)}  # 5 questions, both sides of equal length
    out = length_adjusted_difference(scores, base, few, same)
    assert out["n"] == 5 and out["value"] is not None and out["ci"] == [None, None]


def test_chars_per_turn():
    answers = {"m": {81: {"choices": [{"turns": ["abcd", "ab"]}]}, 82: {"choices": []}}}
    assert chars_per_turn(answers, "m") == {81: 3.0}
    assert chars_per_turn(answers, "other") == {}
