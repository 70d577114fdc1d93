"""Any judgment file as FastChat's vote records, the input of compute_agreement.py.

A vote is `{question_id, model_a, model_b, winner, judge, turn}` with winner `model_a`, `model_b` or a
string containing "tie" (the `mt_bench_human_judgments` format). Three kinds of file become votes:

- a votes file (a JSON list of such records; several judges per match allowed): read as it is;
- a pairwise judgment file (`<judge>_pair.jsonl`): one vote per match, model_1 as model_a, the winner by
  FastChat's show_result rule (judges/records.outcome: a game-1 tie or a flipped verdict is a tie);
  a match with an unreadable verdict ("error") is left out, as show_result leaves it out;
- a single-answer judgment file (`<judge>_single.jsonl`): for each question and turn, every two models
  both validly scored (1-10) make a vote, decided by the higher score, equal scores a tie (FastChat's
  "single grades become pairwise by score").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from align.plumbing.errors import UserError
from align.plumbing.files import _read_text, read_jsonl
from judges.file_kinds import PAIRWISE, judgment_kind
from judges.judging.controls import is_control
from judges.questions import load_questions
from judges.records import latest_per_slot, load_judgments, outcome, plain_int, read_judgments

# model_1's result (records.outcome) as a FastChat vote names the winner (model_1 is the vote's model_a)
VOTE_WINNER_OF_OUTCOME = {"win": "model_a", "loss": "model_b", "tie": "tie"}
VOTE_FIELDS = ("question_id", "model_a", "model_b", "winner", "judge", "turn")


@dataclass
class Source:
    """One side of an agreement: its votes, and its scores when it is a single-answer file."""
    path: str
    kind: str  # "votes", "pair" or "single"
    votes: list[dict]
    scores: dict[tuple[str, int, int], float] = field(default_factory=dict)  # (model, question, turn) -> 1-10


def judge_name(judge) -> str:
    """A vote's judge as one name: FastChat writes a judge model as [model, prompt], a human as a string."""
    return str(judge[0]) if isinstance(judge, list) and judge else str(judge)


def file_kind(path: str) -> str:
    """`votes` (a JSON list), `pair` or `single` (FastChat judgment JSONL), from the file's content."""
    text = _read_text(Path(path))
    if text.lstrip().startswith("["):
        return "votes"
    for rec in read_jsonl(path):
        kind = judgment_kind(rec)
        if kind is not None:
            return "pair" if kind == PAIRWISE else "single"
        raise UserError(f"{path}:1: neither a pairwise judgment (model_1, model_2, g1_winner, g2_winner), a single "
                        "judgment (model, score) nor a votes file (a JSON list of {question_id, model_a, model_b, "
                        "winner, judge, turn})")
    raise UserError(f"{path}: no judgments in it")


def question_turns(question_dir: str | None = None) -> dict[int, int]:
    """question_id -> its number of turns: the question set judgment records are checked against."""
    return {q["question_id"]: len(q["turns"]) for q in load_questions(question_dir)}


def pair_votes(path: str, turns: dict[int, int]) -> list[dict]:
    """A `_pair.jsonl` file's matches as FastChat votes (the latest judgment of each match)."""
    judged, _ = load_judgments([path], turns, pairwise=True)
    votes = []
    for (m1, m2, qid, turn), rec in sorted(judged.items()):
        result = outcome(rec)
        if result == "error":
            continue
        votes.append({"question_id": qid, "model_a": m1, "model_b": m2, "winner": VOTE_WINNER_OF_OUTCOME[result],
                      "judge": rec.get("judge", "unknown"), "turn": turn})
    return votes


def single_scores(path: str, turns: dict[int, int]) -> tuple[dict[tuple[str, int, int], float], str]:
    """(valid 1-10 scores by (model, question, turn), the judge's name) of a `_single.jsonl` file: the
    latest judgment of each slot (records.latest_per_slot), every record checked as the report checks it."""
    latest = latest_per_slot(read_judgments(path, turns))
    # the judge check's @mismatched controls are left out: their easy verdicts would lift any agreement
    scores = {slot: float(rec["score"]) for slot, rec in latest.items()
              if 1 <= float(rec["score"]) <= 10 and not is_control(slot[0])}
    judges = {judge_name(rec["judge"]) for rec in latest.values() if rec.get("judge")}
    if len(judges) > 1:
        raise UserError(f"{path}: judgments from different judges ({', '.join(sorted(judges))}): one judge per file")
    return scores, judges.pop() if judges else Path(path).stem


def score_votes(scores: dict[tuple[str, int, int], float], judge: str) -> list[dict]:
    """Every two models scored on the same question and turn, as a vote decided by the higher score."""
    by_slot: dict[tuple[int, int], dict[str, float]] = {}
    for (model, qid, turn), score in scores.items():
        by_slot.setdefault((qid, turn), {})[model] = score
    votes = []
    for (qid, turn), models in sorted(by_slot.items()):
        names = sorted(models)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                winner = "model_a" if models[a] > models[b] else "model_b" if models[a] < models[b] else "tie"
                votes.append({"question_id": qid, "model_a": a, "model_b": b, "winner": winner, "judge": judge,
                              "turn": turn})
    return votes


def check_vote(vote, where: str) -> dict:
    """A votes-file record, checked: one line naming the record and what was expected."""
    expected = (f"{where}: expected {{{', '.join(VOTE_FIELDS)}}} with turn 1 or 2, two different models and winner "
                "model_a, model_b or a tie")
    if not isinstance(vote, dict) or any(k not in vote for k in VOTE_FIELDS):
        raise UserError(expected)
    qid, turn = vote["question_id"], vote["turn"]
    for name, value in (("question_id", qid), ("turn", turn)):
        if not plain_int(value):  # 81.9 or true would be truncated into some other question's vote
            raise UserError(f"{where}: {name} {value!r}: expected a whole number")
    winner, a, b = vote["winner"], vote["model_a"], vote["model_b"]
    if (turn not in (1, 2) or not isinstance(winner, str) or not isinstance(a, str) or not isinstance(b, str)
            or a == b or not (winner in ("model_a", "model_b") or "tie" in winner)):
        raise UserError(expected)
    return vote


def read_votes_file(path: str) -> list[dict]:
    try:
        records = json.loads(_read_text(Path(path)))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(records, list):
        raise UserError(f"{path}: expected a JSON list of votes")
    lines = element_lines(_read_text(Path(path)), len(records))
    return [check_vote(vote, f"{path}:{line}: vote {i}") for i, (vote, line) in enumerate(zip(records, lines))]


_BETWEEN = re.compile(r"[\s,]*")  # what separates two elements of a JSON list


def element_lines(text: str, count: int) -> list[int]:
    """The line each element of a (valid) JSON list starts on, so a bad vote is named by file:line."""
    decoder, lines, pos, line = json.JSONDecoder(), [], text.index("[") + 1, 1 + text.count("\n", 0, text.index("["))
    for _ in range(count):
        start = _BETWEEN.match(text, pos).end()
        line += text.count("\n", pos, start)
        lines.append(line)
        _, pos = decoder.raw_decode(text, start)
        line += text.count("\n", start, pos)
    return lines


def load_source(path: str, judge_prefix: str | None = None, question_dir: str | None = None) -> Source:
    """One side of an agreement; `judge_prefix` keeps only votes whose judge name starts with it
    (FastChat's human pool is the `expert` judges of the human judgments file). Judgment files are
    checked against the question set (judges/records.py); a votes file only for turns 1-2."""
    kind = file_kind(path)
    scores: dict = {}
    if kind == "votes":
        votes = read_votes_file(path)
    elif kind == "pair":
        votes = pair_votes(path, question_turns(question_dir))
    else:
        scores, judge = single_scores(path, question_turns(question_dir))
        votes = score_votes(scores, judge)
    if judge_prefix is not None:
        votes = [v for v in votes if judge_name(v["judge"]).startswith(judge_prefix)]
    if not votes:
        raise UserError(f"{path}: no usable votes" + (f" from judges named {judge_prefix}*" if judge_prefix else ""))
    return Source(str(path), kind, votes, scores)
