"""The one check of a judgment record, for every reader of judgment files (the report, the
pairwise report, the series' verifiers): a record that could not have come from judging the
question set at hand is refused, naming its file and line, never averaged in or skipped.

Refused: a question_id not in the question set, a turn outside that question's turns (1-2 in
MT-Bench), a question_id or turn that is not a plain integer, a single score that is not a
number (a string "7" or a boolean `true` is not one) or is not finite, a pairwise verdict that is not
one of FastChat's. A numeric score outside 1-10 (FastChat's -1: no rating) is a judgment without
a usable verdict and is counted as invalid by the report, as before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from align.errors import UserError

PAIR_VERDICTS = ("model_1", "model_2", "tie", "error")


def _plain_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def checked_judgment(rec: dict, where: str, question_turns: Mapping[int, int], pairwise: bool = False) -> tuple:
    """The slot a judgment record is for: (model, question_id, turn), or (model_1, model_2,
    question_id, turn) with `pairwise`; a UserError naming `where` (file:line) otherwise.
    `question_turns`: question_id -> number of turns of the question set the record must belong to."""
    if not isinstance(rec, dict):
        raise UserError(f"{where}: expected a JSON object (a judgment record)")
    names = ("model_1", "model_2") if pairwise else ("model",)
    kind = "pairwise judgment" if pairwise else "single judgment"
    for name in names:
        if not isinstance(rec.get(name), str) or not rec[name]:
            raise UserError(f"{where}: {kind} needs `{name}` (a model name)")
    qid, turn = rec.get("question_id"), rec.get("turn")
    if not _plain_int(qid) or qid not in question_turns:
        raise UserError(f"{where}: question_id {qid!r} is not a question of the question set "
                        f"({len(question_turns)} questions)")
    if not _plain_int(turn) or not 1 <= turn <= question_turns[qid]:
        raise UserError(f"{where}: turn {turn!r} of question {qid}: expected 1-{question_turns[qid]}")
    if pairwise:
        for game in ("g1_winner", "g2_winner"):
            if rec.get(game) not in PAIR_VERDICTS:
                raise UserError(f"{where}: {kind} {game} {rec.get(game)!r}: expected one of "
                                f"{', '.join(PAIR_VERDICTS)}")
    else:
        score = rec.get("score")
        if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
            raise UserError(f"{where}: score {score!r}: expected a number (-1 when the judge gave no rating)")
    return (*(rec[name] for name in names), qid, turn)
