"""Agreement between two judges, as FastChat's fastchat/llm_judge/compute_agreement.py defines it.

A match's key is (question, the two models sorted); a vote given with the models the other way round
has its winner flipped. Any verdict containing "tie" is a tie, and two ties agree. Two judges: every
(vote of A, vote of B) on a key is one comparison (FastChat's GPT-4 against the human pool). One pool
(A and B the same file): every two votes i < j on a key (FastChat's human against human).
"with_ties" is FastChat's setup S1 (every comparison counts); "without_ties" is S2 (a comparison
where either vote is a tie is skipped). Random verdicts agree 33% (S1) and 50% (S2) of the time;
the MT-Bench paper (Table 5) found GPT-4 against humans 66% / 85% and humans among themselves 63% / 81%
on turn 1.

Two single-answer files add how their scores agree: Spearman's rank correlation (scipy) and Cohen's
kappa (sklearn), quadratic-weighted on the 1-10 scores and plain on the per-pair verdicts.
"""

from __future__ import annotations

from itertools import combinations

from judges.stats import finite_or_none
from judges.trust.votes import Source

TURNS = (1, 2)


def flipped(winner: str) -> str:
    return {"model_a": "model_b", "model_b": "model_a"}.get(winner, winner)


def is_tie(winner: str) -> bool:
    return "tie" in winner


def same_verdict(one: str, other: str) -> bool:
    return (is_tie(one) and is_tie(other)) or one == other


def by_match(votes: list[dict]) -> dict[int, dict[tuple, list[str]]]:
    """turn -> (question, model, model) sorted -> winners in that order (compute_agreement's layout)."""
    keyed: dict[int, dict[tuple, list[str]]] = {turn: {} for turn in TURNS}
    for vote in votes:
        a, b, winner = vote["model_a"], vote["model_b"], vote["winner"]
        if a > b:
            a, b, winner = b, a, flipped(winner)
        keyed[vote["turn"]].setdefault((vote["question_id"], a, b), []).append(winner)
    return keyed


def tally(comparisons: list[tuple[str, str]], skip_ties: bool) -> dict:
    kept = [(x, y) for x, y in comparisons if not (skip_ties and (is_tie(x) or is_tie(y)))]
    agree = sum(same_verdict(x, y) for x, y in kept)
    return {"agree": agree, "total": len(kept), "ratio": agree / len(kept) if kept else None}


def comparisons_between(a: dict[tuple, list[str]], b: dict[tuple, list[str]]) -> list[tuple[str, str]]:
    return [(x, y) for key, votes in a.items() if key in b for x in votes for y in b[key]]


def comparisons_within(pool: dict[tuple, list[str]]) -> list[tuple[str, str]]:
    return [pair for votes in pool.values() for pair in combinations(votes, 2)]


def agreement(a: Source, b: Source | None = None) -> dict:
    """{"turn_1": {"with_ties": {agree, total, ratio}, "without_ties": {...}}, "turn_2": ...};
    b None: the agreement within a's pool."""
    keyed_a = by_match(a.votes)
    keyed_b = by_match(b.votes) if b is not None else None
    out = {}
    for turn in TURNS:
        pairs = (comparisons_within(keyed_a[turn]) if keyed_b is None
                 else comparisons_between(keyed_a[turn], keyed_b[turn]))
        out[f"turn_{turn}"] = {"with_ties": tally(pairs, skip_ties=False), "without_ties": tally(pairs, skip_ties=True)}
    return out


def _number(x) -> float | None:
    return finite_or_none(float(x))


def score_agreement(a: Source, b: Source) -> dict:
    """Two single-answer judges: Spearman and kappa of the scores they both gave validly, and kappa of the
    verdicts (higher score wins) on the matches both decide."""
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score

    shared = sorted(set(a.scores) & set(b.scores))
    out: dict = {"scores": len(shared), "spearman": None, "spearman_p": None, "kappa_quadratic": None}
    if len(shared) >= 2:
        xs, ys = [a.scores[s] for s in shared], [b.scores[s] for s in shared]
        rho, p = spearmanr(xs, ys)
        out["spearman"], out["spearman_p"] = _number(rho), _number(p)
        out["kappa_quadratic"] = _number(cohen_kappa_score([round(x) for x in xs], [round(y) for y in ys],
                                                           weights="quadratic"))
    verdicts_a = {(t, key): w[0] for t, keyed in by_match(a.votes).items() for key, w in keyed.items()}
    verdicts_b = {(t, key): w[0] for t, keyed in by_match(b.votes).items() for key, w in keyed.items()}
    both = sorted(set(verdicts_a) & set(verdicts_b))
    out["verdicts"] = len(both)
    out["verdict_kappa"] = (_number(cohen_kappa_score([verdicts_a[k] for k in both], [verdicts_b[k] for k in both]))
                            if both else None)
    return out
