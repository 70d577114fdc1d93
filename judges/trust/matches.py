"""Pairwise matches with their answers' texts, and a percentile bootstrap over questions for any
statistic of them (the length- and style-controlled win rates refit their model on every resample).

A match is model_1 (the model rated) against model_2 (the baseline) on one turn of one question;
`winner` is model_1, model_2 or tie (FastChat's show_result outcome), the texts are the answers to
the judged turn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from judges.records import outcome
from judges.stats import MIN_CI_QUESTIONS, finite_or_none

PREFERENCE = {"model_1": 1.0, "tie": 0.5, "model_2": 0.0}  # model_1's share of the match
# model_1's result (records.outcome) as a judgment record names the winner; votes.py's VOTE_WINNER_OF_OUTCOME
# names it as FastChat's votes do (model_a / model_b)
PAIR_WINNER_OF_OUTCOME = {"win": "model_1", "tie": "tie", "loss": "model_2"}


@dataclass(frozen=True)
class JudgedMatch:
    """One judged pairwise match with both answers' texts: what the controlled win rates fit."""
    question_id: int
    turn: int
    winner: str  # model_1, model_2 or tie
    text_1: str  # model_1's answer to the judged turn
    text_2: str  # model_2's

    @property
    def preference(self) -> float:
        return PREFERENCE[self.winner]


def win_rate(matches: list[JudgedMatch]) -> float:
    """The raw (tie-adjusted) win rate: model_1's mean share, ties counting half."""
    return float(np.mean([m.preference for m in matches])) if matches else math.nan


def _clean(x: float) -> float | None:
    return None if x is None else finite_or_none(float(x))


def bootstrap(matches: list[JudgedMatch], statistic: Callable[[list[JudgedMatch]], float], n_boot: int = 1000,
              seed: int = 0, min_questions: int = MIN_CI_QUESTIONS, level: float = 0.95) -> dict:
    """{"value": statistic(matches), "ci": [lo, hi]}: a percentile interval over resamples of the questions
    (both turns of a question together); [None, None] below `min_questions` questions."""
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    questions: dict[int, list[JudgedMatch]] = {}
    for m in matches:
        questions.setdefault(m.question_id, []).append(m)
    # One BLAS thread: on matrices this small, threads cost ten times the arithmetic.
    with threadpool_limits(limits=1):
        value = statistic(matches) if matches else math.nan
        if len(questions) < min_questions:
            return {"value": _clean(value), "ci": [None, None]}
        groups = list(questions.values())
        rng = np.random.default_rng(seed)
        draws = [statistic([m for i in rng.integers(0, len(groups), len(groups)) for m in groups[i]])
                 for _ in range(n_boot)]
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return {"value": _clean(value), "ci": [_clean(low), _clean(high)]}


def answer_text(answers: dict[str, dict[int, dict]], model: str, qid: int, turn: int) -> str | None:
    try:
        return str(answers[model][qid]["choices"][0]["turns"][turn - 1])
    except (KeyError, IndexError, TypeError):
        return None


def matches_from_pairs(judged: dict[tuple[str, str, int, int], dict], answers: dict[str, dict[int, dict]]
                       ) -> dict[tuple[str, str], list[JudgedMatch]]:
    """(model_1, model_2) -> its matches with both answers' texts; a match with an unreadable verdict
    or a missing answer is left out (it is not in the win rates either)."""
    pairs: dict[tuple[str, str], list[JudgedMatch]] = {}
    for (m1, m2, qid, turn), rec in sorted(judged.items()):
        result = outcome(rec)
        text_1, text_2 = answer_text(answers, m1, qid, turn), answer_text(answers, m2, qid, turn)
        if result == "error" or text_1 is None or text_2 is None:
            continue
        pairs.setdefault((m1, m2), []).append(JudgedMatch(qid, turn, PAIR_WINNER_OF_OUTCOME[result], text_1, text_2))
    return pairs
