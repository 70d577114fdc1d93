"""Length-controlled and equal-style win rates (AlpacaEval 2's GLM; a contextual Bradley-Terry on style): a judge
that prefers the longer (or more markdown-heavy) answer whoever wrote it loses its advantage under control;
a judge that prefers one model regardless keeps it."""

from __future__ import annotations

import math
import random

import pytest

from judges.trust.length_control import length_controlled, length_controlled_win_rate, raw_win_rate
from judges.trust.matches import JudgedMatch, matches_from_pairs, win_rate
from judges.trust.style_control import equal_style, equal_style_win_rate, style

N_BOOT = 100


def matches(judge, seed=0, questions=80, model_1_longer=0.8):
    """Two turns per question; model_1's answer is the longer in `model_1_longer` of the matches."""
    rng = random.Random(seed)
    out = []
    for q in range(81, 81 + questions):
        for turn in (1, 2):
            long, short = sorted((rng.randint(200, 1500), rng.randint(200, 1500)), reverse=True)
            len_1, len_2 = (long, short) if rng.random() < model_1_longer else (short, long)
            text_1, text_2 = "a " * (len_1 // 2), "b " * (len_2 // 2)
            out.append(JudgedMatch(q, turn, judge(rng, text_1, text_2), text_1, text_2))
    return out


def prefers_longer(rng, text_1, text_2):
    """Picks the longer answer, the more surely the larger the difference (a length-biased judge)."""
    diff = len(text_1) - len(text_2)
    longer_wins = rng.random() < 0.5 + 0.48 * math.tanh(abs(diff) / 300)
    return "model_1" if (diff > 0) == longer_wins else "model_2"


def prefers_model_1(rng, text_1, text_2):
    """Picks model_1 80% of the time, whatever the lengths (a real difference between the models)."""
    return "model_1" if rng.random() < 0.8 else ("tie" if rng.random() < 0.3 else "model_2")


def test_length_bias_is_removed():
    games = matches(prefers_longer)
    raw = raw_win_rate(games, n_boot=N_BOOT)
    lc = length_controlled_win_rate(games, n_boot=N_BOOT)
    sc = equal_style_win_rate(games, n_boot=N_BOOT)
    assert raw["value"] > 0.68 and raw["ci"][0] > 0.55  # raw: model_1 "wins" by being longer
    assert abs(lc["value"] - 0.5) < 0.1 and lc["ci"][0] < 0.5 < lc["ci"][1]
    assert abs(sc["value"] - 0.5) < 0.1 and sc["ci"][0] < 0.5 < sc["ci"][1]


def test_a_real_preference_survives_control():
    games = matches(prefers_model_1)
    raw = win_rate(games)
    lc = length_controlled_win_rate(games, n_boot=N_BOOT)
    sc = equal_style_win_rate(games, n_boot=N_BOOT)
    assert raw > 0.75
    for controlled in (lc, sc):
        assert abs(controlled["value"] - raw) < 0.06 and controlled["ci"][0] > 0.6
        assert controlled["ci"][0] <= controlled["value"] <= controlled["ci"][1]


def test_markdown_bias_is_removed_by_style_not_by_length():
    """Equal lengths; model_1's answer is the bold-and-lists one in 80% of matches; the judge likes markdown."""
    rng = random.Random(3)
    plain, rich = "word " * 60, "- **word** word\n" * 20
    plain = plain[:len(rich)].ljust(len(rich))
    games = []
    for q in range(81, 161):
        text_1, text_2 = (rich, plain) if rng.random() < 0.8 else (plain, rich)
        likes_rich = rng.random() < 0.85
        winner = "model_1" if (text_1 == rich) == likes_rich else "model_2"
        games.append(JudgedMatch(q, 1, winner, text_1, text_2))
    assert win_rate(games) > 0.68
    assert abs(length_controlled(games) - win_rate(games)) < 0.02  # no length difference to control
    assert abs(equal_style(games) - 0.5) < 0.1


def test_style_features():
    text = "# Title\n\nSome **bold** and __bold__.\n\n1. one\n2. two\n- three\n\n```\n# not a header\n- no\n```\n"
    length, headers, lists, bold = style(text)
    prose_chars = len(text) - len("```\n# not a header\n- no\n```")
    assert length == len(text)
    assert headers == pytest.approx(1000 / prose_chars)
    assert lists == pytest.approx(3 * 1000 / prose_chars)
    assert bold == pytest.approx(2 * 1000 / prose_chars)


def test_degenerate_inputs():
    ties = [JudgedMatch(q, 1, "tie", "x" * q, "y") for q in range(81, 101)]
    assert length_controlled(ties) == 0.5 and equal_style(ties) == 0.5
    # lengths on both sides of model_2's (equal length within the data), but only 4 questions
    few = [JudgedMatch(q, 1, "model_1" if q % 2 else "model_2", "x" * (q % 3), "y") for q in range(81, 85)]
    assert length_controlled_win_rate(few, n_boot=N_BOOT)["ci"] == [None, None]  # below --min-ci-questions
    assert length_controlled_win_rate([], n_boot=N_BOOT) == {"value": None, "ci": [None, None], "not_estimable": None}
    same_length = [JudgedMatch(q, 1, "model_1" if q % 3 else "model_2", "x", "y") for q in range(81, 101)]
    assert length_controlled(same_length) == pytest.approx(win_rate(same_length), abs=0.01)


def test_matches_from_pair_judgments():
    answers = {m: {81: {"choices": [{"turns": [f"{m} one", f"{m} two"]}]}} for m in ("x", "y")}
    judged = {("x", "y", 81, 1): {"g1_winner": "model_1", "g2_winner": "model_1"},
              ("x", "y", 81, 2): {"g1_winner": "model_1", "g2_winner": "error"},
              ("x", "y", 82, 1): {"g1_winner": "tie", "g2_winner": "tie"}}  # no answers to 82
    assert matches_from_pairs(judged, answers) == {("x", "y"): [JudgedMatch(81, 1, "model_1", "x one", "y one")]}
