"""The judge check: each model's answers judged again against the wrong questions.

`<model>@mismatched` answers question q with the model's own answer to another question of the
same turn count: within each turn-count group, questions sorted by id, question i gets the answer
to question i-1 (a rotation: a fixed derangement, mostly within one category, since FastChat's ids
run by category). A judge that reads the answers scores the model clearly above its control; one
that does not (a tiny judge, a broken prompt, truncated answers) scores them alike, and then the
model's score is not evidence. The report's judge check is that paired difference.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

CONTROL_SUFFIX = "@mismatched"


def is_control(model: str) -> bool:
    return model.endswith(CONTROL_SUFFIX)


def control_of(model: str) -> str:
    return model + CONTROL_SUFFIX


def derangement(question_ids: list[int], n_turns: dict[int, int]) -> dict[int, int]:
    """question -> the question whose answer it is given; groups of one (nothing to swap with) are left out."""
    groups: dict[int, list[int]] = {}
    for qid in sorted(question_ids):
        groups.setdefault(n_turns[qid], []).append(qid)
    mapping = {}
    for group in groups.values():
        if len(group) > 1:
            mapping.update({qid: group[i - 1] for i, qid in enumerate(group)})
    return mapping


def mismatched_answers(answers: dict[str, dict[int, dict]], questions: list[dict]) -> dict[str, dict[int, dict]]:
    """A control model per model (never for a control), over the questions being judged."""
    n_turns = {q["question_id"]: len(q["turns"]) for q in questions}
    controls = {}
    for model, by_question in answers.items():
        if is_control(model):
            continue
        mapping = derangement([qid for qid in by_question if qid in n_turns], n_turns)
        left_out = sorted(set(by_question) & set(n_turns) - set(mapping))
        if left_out:
            log.warning("%s: no other answered question with the same number of turns as %s; no control there",
                        model, ", ".join(map(str, left_out)))
        name = control_of(model)
        controls[name] = {qid: {**by_question[source], "question_id": qid, "model_id": name,
                                "answer_id": f"{by_question[source].get('answer_id', '')}{CONTROL_SUFFIX}",
                                "mismatched_from": source}
                          for qid, source in mapping.items()}
    return controls
