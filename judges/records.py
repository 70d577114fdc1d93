"""Answer and judgment records as every reader sees them: answering, judging, the report, the pairwise
report, the judge-trust votes and the series' verifiers all read them through here.

- Which record of a slot counts (a slot: (model, question) for answers, (model, question, turn) or
  (model_1, model_2, question, turn) for judgments): latest_per_slot, one rule for all.
- What is still missing: `<judgments>.failed.jsonl`, its slots never judged since (load_judgments).
- The one check of a judgment record: a record that could not have come from judging the
  question set at hand is refused, naming its file and line, never averaged in or skipped.

Refused: a question_id not in the question set, a turn outside that question's turns (1-2 in
MT-Bench), a question_id or turn that is not a plain integer, a single score that is not a
number (a string "7" or a boolean `true` is not one) or is not finite, a pairwise verdict that is not
one of FastChat's. A numeric score outside 1-10 (FastChat's -1: no rating) is a judgment without
a usable verdict and is counted as invalid by the report, as before.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from align.plumbing.errors import UserError
from align.plumbing.files import numbered_jsonl
from judges.file_kinds import PAIRWISE, first_judgment_kind, judgment_kind

PAIR_VERDICTS = ("model_1", "model_2", "tie", "error")


def plain_int(value) -> bool:
    """A question_id or turn as records hold them: an int, not a bool, a float (81.9) or a string ("81")."""
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
    if not plain_int(qid) or qid not in question_turns:
        raise UserError(f"{where}: question_id {qid!r} is not a question of the question set "
                        f"({len(question_turns)} questions)")
    if not plain_int(turn) or not 1 <= turn <= question_turns[qid]:
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


# ---------------------------------------------------------------- the latest record per slot

FAILED_SUFFIX = ".failed.jsonl"


def failed_list_path(output: str | Path) -> Path:
    """`<output>.failed.jsonl`: the judgments of `output` that failed after retries."""
    output = Path(output)
    return output.with_name(output.name + FAILED_SUFFIX)


def record_slot(rec: dict) -> tuple:
    """The judged thing a record is about: (model, question, turn), or (model_1, model_2, question, turn)."""
    if "model_1" in rec:
        return rec.get("model_1"), rec.get("model_2"), rec.get("question_id"), rec.get("turn")
    return rec.get("model"), rec.get("question_id"), rec.get("turn")


def _tstamp(rec: dict) -> float:
    value = rec.get("tstamp")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def latest_per_slot(slotted: Iterable[tuple[tuple, dict]]) -> dict[tuple, dict]:
    """slot -> its latest record, for answers and judgments alike. THE RULE: the record with the highest
    `tstamp` wins; among equal tstamps (or none: a missing or non-numeric tstamp counts as 0) the one read
    last wins, i.e. later in its file, and in a later file of several. Appends carry the time they were
    made, so for files this project wrote this is simply "the last one appended"; the tstamp matters
    for files put together by hand (a re-judged slot copied in front of its stale judgment stays the one)."""
    latest: dict[tuple, tuple[float, dict]] = {}
    for slot, rec in slotted:
        when = _tstamp(rec)
        if slot not in latest or when >= latest[slot][0]:
            latest[slot] = (when, rec)
    return {slot: rec for slot, (_, rec) in latest.items()}


def read_judgments(path: str | Path, question_turns: Mapping[int, int], pairwise: bool = False
                   ) -> list[tuple[tuple, dict]]:
    """(slot, record) for every record of a judgment file, in file order, each checked by checked_judgment;
    a missing file is a UserError."""
    if not Path(path).is_file():
        raise UserError(f"{path}: judgment file not found")
    out = []
    for i, rec in numbered_jsonl(path):
        if not pairwise and judgment_kind(rec) == PAIRWISE:
            raise UserError(f"{path}:{i}: a pairwise judgment; expected single-answer grading rows")
        out.append((checked_judgment(rec, f"{path}:{i}", question_turns, pairwise), rec))
    return out


def failed_slots(failed_list: str | Path, pairwise: bool = False) -> set[tuple]:
    """The slots listed in a failed list (none when the file does not exist); a row without its
    slot's fields is a UserError naming file:line."""
    failed_list = Path(failed_list)
    if not failed_list.is_file():
        return set()
    names = ("model_1", "model_2") if pairwise else ("model",)
    slots = set()
    for i, rec in numbered_jsonl(failed_list):
        slot = record_slot(rec) if isinstance(rec, dict) else ()
        if (len(slot) != len(names) + 2 or not all(isinstance(s, str) and s for s in slot[:-2])
                or not all(plain_int(s) for s in slot[-2:])):
            raise UserError(f"{failed_list}:{i}: expected {', '.join(names)}, question_id and turn in every row")
        slots.add(slot)
    return slots


def load_judgments(paths: Iterable[str | Path], question_turns: Mapping[int, int], pairwise: bool = False
                   ) -> tuple[dict[tuple, dict], set[tuple]]:
    """(the latest judgment per slot by latest_per_slot's rule, the slots in the files' failed lists
    never judged since): what the report, the pairwise report and the judge check count."""
    slotted: list[tuple[tuple, dict]] = []
    failed: set[tuple] = set()
    for path in paths:
        slotted += read_judgments(path, question_turns, pairwise)
        failed |= failed_slots(failed_list_path(path), pairwise)
    judged = latest_per_slot(slotted)
    return judged, failed - set(judged)


# ---------------------------------------------------------------- answers

def answer_slots(path: str | Path) -> list[tuple[tuple[str, int], dict]]:
    """((model, question_id), record) for every record of a FastChat model_answer file, in file order;
    the model is the record's model_id, else the file's stem. A record without question_id (int) and
    choices[0].turns (strings) is a UserError naming file:line."""
    if not Path(path).is_file():
        raise UserError(f"{path}: answer file not found")
    out = []
    for i, rec in numbered_jsonl(path):
        try:
            turns = rec["choices"][0]["turns"]
            qid = rec["question_id"]
            usable = isinstance(qid, int) and turns and all(isinstance(t, str) for t in turns)
        except (KeyError, IndexError, TypeError):
            usable = False
        if not usable:  # an `if`, not an assert: python -O drops asserts and would let the record through
            raise UserError(f"{path}:{i}: expected FastChat model_answer fields question_id (int) and "
                            "choices[0].turns (list of strings)")
        out.append(((rec.get("model_id") or Path(path).stem, qid), rec))
    return out


def load_answers(paths: list[str]) -> dict[str, dict[int, dict]]:
    """model -> question_id -> answer record: the latest per (model, question) by latest_per_slot's rule."""
    latest = latest_per_slot(slotted for path in paths for slotted in answer_slots(path))
    if not latest:
        raise UserError(f"no answers in {', '.join(map(str, paths))}")
    answers: dict[str, dict[int, dict]] = {}
    for (model, qid), rec in latest.items():
        answers.setdefault(model, {})[qid] = rec
    return answers


# Pairwise records: which files hold them, and model_1's result of a match (FastChat's show_result rule),
# here so that the report and the judge-trust measures read them one way.
def is_pair_file(path: str) -> bool:
    """Whether a judgment file holds pairwise records (judged by its first record)."""
    if not Path(path).is_file():
        raise UserError(f"{path}: judgment file not found")
    return first_judgment_kind(path) == PAIRWISE


def outcome(rec: dict) -> str:
    """model_1's result: win, loss, tie (FastChat: a game-1 tie or a flipped verdict) or error."""
    g1, g2 = rec["g1_winner"], rec["g2_winner"]
    if "error" in (g1, g2):
        return "error"
    if g1 == "tie" or g1 != g2:
        return "tie"
    return "win" if g1 == "model_1" else "loss"
