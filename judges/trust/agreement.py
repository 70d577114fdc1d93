"""Agreement between two judges, as FastChat's fastchat/llm_judge/compute_agreement.py defines it.

A match's key is (question, the two models sorted); a vote given with the models the other way round
has its winner flipped. Any verdict containing "tie" is a tie, and two ties agree. Two judges: every
(vote of A, vote of B) on a key is one comparison (FastChat's GPT-4 against the human pool). One pool
(A and B the same file): every two votes i < j on a key (FastChat's human against human).
"with_ties" is FastChat's setup S1 (every comparison counts); "without_ties" is S2 (a comparison
where either vote is a tie is skipped). Random verdicts agree 33% (S1) and 50% (S2) of the time;
the MT-Bench paper (Table 5) found GPT-4 against humans 66% / 85% and humans among themselves 63% / 81%
on turn 1.

`compare` gives the agreement of two files (`align mtbench agreement` and the report's second judge);
`split_by_judge` tells the report's --input-file apart by judge.

Two single-answer files add how their scores agree: Spearman's rank correlation (scipy) and Cohen's
kappa (sklearn), quadratic-weighted on the 1-10 scores and plain on the per-pair verdicts.
"""

from __future__ import annotations

import os
from itertools import combinations
from pathlib import Path

from align.plumbing.errors import UserError
from align.plumbing.files import read_jsonl
from judges.stats import finite_or_none
from judges.trust.votes import Source, file_kind, judge_name, load_source

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


# ---------------------------------------------------------------- two files, two judges

def _same_file(a: str, b: str) -> bool:
    return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)


def compare(a_path: str, b_path: str, prefix_a: str | None = None, prefix_b: str | None = None,
            question_dir: str | None = None) -> dict:
    """The agreement JSON for two files (or one pool, when they are the same file and filter)."""
    a = load_source(a_path, prefix_a, question_dir)
    within = _same_file(a_path, b_path) and prefix_a == prefix_b
    b = None if within else load_source(b_path, prefix_b, question_dir)
    out = {**agreement(a, b), "mode": "within one pool" if within else "between two judges",
           "a": {"file": a.path, "kind": a.kind, "votes": len(a.votes)}}
    if b is not None:
        out["b"] = {"file": b.path, "kind": b.kind, "votes": len(b.votes)}
        if a.kind == b.kind == "single":
            out["single"] = score_agreement(a, b)
    return out


def _file_judge(path: str) -> str | None:
    """The judge named by a judgment file's first record that names one; None if none does (or no file)."""
    if not Path(path).is_file():
        return None  # the report's own reader says what is wrong with it
    for rec in read_jsonl(path):
        if rec.get("judge"):
            return judge_name(rec["judge"])
    return None


def split_by_judge(files: list[str]) -> list[tuple[str, list[str]]]:
    """[(judge, its files)] in the order the judges first appear; a file naming no judge goes with the
    first; more than two judges is refused."""
    groups: dict[str, list[str]] = {}
    unnamed = []
    for path in files:
        judge = _file_judge(path)
        if judge is None:
            unnamed.append(path)
        else:
            groups.setdefault(judge, []).append(path)
    if not groups:
        return [("unknown", list(files))]
    first = next(iter(groups))
    groups[first] = [p for p in files if p in groups[first] or p in unnamed]
    if len(groups) > 2:
        raise UserError(f"--input-file: judgments of {len(groups)} judges ({', '.join(groups)}); the report takes "
                        "one judge, or two to compare")
    return list(groups.items())


def judges_agreement(files_a: list[str], files_b: list[str], question_dir: str | None) -> dict:
    """Agreement of two judges: their pairwise files if both have one, else their single-answer files
    (verdicts by score), else whatever kinds they have (a pairwise judge against verdicts by score)."""
    kinds_a = {file_kind(p): p for p in reversed(files_a)}  # the first file of each kind
    kinds_b = {file_kind(p): p for p in reversed(files_b)}
    kind = next((k for k in ("pair", "single") if k in kinds_a and k in kinds_b), None)
    a = kinds_a[kind] if kind else next(iter(kinds_a.values()))
    b = kinds_b[kind] if kind else next(iter(kinds_b.values()))
    return compare(a, b, question_dir=question_dir)
