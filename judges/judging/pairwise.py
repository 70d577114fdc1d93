"""Pairwise MT-Bench judging (`align mtbench judge --mode pairwise-baseline|pairwise-all`), as FastChat does it.

FastChat's prompts (pair-v2 / pair-math-v1 for turn 1, their -multi-turn variants for turn 2;
reference answers for math, reasoning and coding), two games per match: game 1 shows model_1's
answer as A, game 2 the same answers swapped. Each reply is read exactly as FastChat reads it:
"[[A]]" anywhere wins, then "[[B]]", then "[[C]]" (a tie); anything else is the verdict "error",
written as such and counted, never guessed. Records carry FastChat's fields (g1_winner/g2_winner
in model_1/model_2/tie/error terms), so `python -m fastchat.llm_judge.show_result --mode
pairwise-all` reads the file; `cache_key` is our only addition.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from align.plumbing.errors import UserError
from judges.judging.engine import cache_key
from judges.questions import NEED_REFERENCE, reference_fields

PAIR_PROMPTS = ("pair-v2", "pair-math-v1", "pair-v2-multi-turn", "pair-math-v1-multi-turn")
# What a game's A / B verdict means for the match: game 2 shows model_2 as A.
GAME_WINNER = ({"A": "model_1", "B": "model_2"}, {"A": "model_2", "B": "model_1"})


def parse_verdict(judgment: str) -> str:
    """FastChat's [[A]]/[[B]]/[[C]] reading: "A", "B", "tie" or "error"."""
    for token, verdict in (("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "tie")):
        if token in judgment:
            return verdict
    return "error"


def build_pair_prompt(template: dict, question: dict, turns_a: list[str], turns_b: list[str],
                      reference: list[str] | None, turn: int) -> str:
    """FastChat's run_judge_pair prompt: turn 2 shows both whole conversations; references if given."""
    kwargs = reference_fields(reference, turn)
    if turn == 2:
        return template["prompt_template"].format(
            question_1=question["turns"][0], question_2=question["turns"][1], answer_a_1=turns_a[0],
            answer_b_1=turns_b[0], answer_a_2=turns_a[1], answer_b_2=turns_b[1], **kwargs)
    return template["prompt_template"].format(question=question["turns"][0], answer_a=turns_a[0],
                                              answer_b=turns_b[0], **kwargs)


@dataclass(frozen=True)
class PairMatch:
    """One match: model_1 against model_2 on one turn of one question, judged in both orders."""
    model_1: str
    model_2: str
    question_id: int
    turn: int
    prompt_name: str
    system_prompt: str
    g1_user_prompt: str
    g2_user_prompt: str
    cache_key: str

    @property
    def slot(self) -> tuple[str, str, int, int]:
        return self.model_1, self.model_2, self.question_id, self.turn

    def requests(self) -> list[tuple[str, str]]:
        return [(self.system_prompt, self.g1_user_prompt), (self.system_prompt, self.g2_user_prompt)]

    def names(self) -> dict:
        return {"model_1": self.model_1, "model_2": self.model_2}

    def record(self, judge: str, replies: list[str], tstamp: float | None = None) -> dict:
        g1, g2 = (GAME_WINNER[game].get(v, v) for game, v in enumerate(map(parse_verdict, replies)))
        return {"question_id": self.question_id, **self.names(), "g1_winner": g1, "g2_winner": g2,
                "judge": [judge, self.prompt_name], "g1_user_prompt": self.g1_user_prompt,
                "g1_judgment": replies[0], "g2_user_prompt": self.g2_user_prompt, "g2_judgment": replies[1],
                "turn": self.turn, "tstamp": time.time() if tstamp is None else tstamp,
                "cache_key": self.cache_key}


def model_pairs(models: list[str], baseline: str | list[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """FastChat's matches: every model against the baseline (model_2), every pair in the given order
    (no baseline), or the given (model, baseline) pairs."""
    if baseline is None:
        return [(a, b) for i, a in enumerate(models) for b in models[i + 1:]]
    if not isinstance(baseline, str):
        for pair in baseline:
            missing = [m for m in pair if m not in models]
            if missing or pair[0] == pair[1]:
                raise UserError(f"--pair {' '.join(pair)}: " + (f"no answers for {', '.join(missing)} in --answer-file"
                                                               if missing else "a model against itself"))
        return list(dict.fromkeys(baseline))
    if baseline not in models:
        raise UserError(f"--baseline-model {baseline}: no answers for it in --answer-file "
                        f"(models: {', '.join(models)})")
    return [(m, baseline) for m in models if m != baseline]


def make_pair_matches(judge: str, questions: list[dict], answers: dict[str, dict[int, dict]],
                      prompts: dict[str, dict], references: dict[int, list[str]],
                      baseline: str | list[tuple[str, str]] | None,
                      prefill: str = "") -> list[PairMatch]:
    """All matches in FastChat's order (turn 1 then turn 2); a question either model lacks is skipped."""
    for name in PAIR_PROMPTS:
        if name not in prompts:
            raise UserError(f"judge_prompts.jsonl has no prompt named {name!r}")
    pairs = model_pairs(list(answers), baseline)
    if not pairs:
        raise UserError("pairwise judging needs answers of at least two models")
    matches = []
    for turn in (1, 2):
        for q in questions:
            if turn == 2 and len(q["turns"]) != 2:
                continue
            qid = q["question_id"]
            needs_ref = q.get("category") in NEED_REFERENCE
            if needs_ref and qid not in references:
                raise UserError(f"no reference answer for question {qid} ({q['category']})")
            name = ("pair-math-v1" if needs_ref else "pair-v2") + ("-multi-turn" if turn == 2 else "")
            template = prompts[name]
            for m1, m2 in pairs:
                if qid not in answers[m1] or qid not in answers[m2]:
                    continue
                t1, t2 = (_turns(answers[m][qid], m, q, turn) for m in (m1, m2))
                ref = references.get(qid) if needs_ref else None
                g1 = build_pair_prompt(template, q, t1, t2, ref, turn)
                g2 = build_pair_prompt(template, q, t2, t1, ref, turn)
                key = cache_key(judge, name, qid, turn, template["system_prompt"], g1 + "\0" + g2, prefill)
                matches.append(PairMatch(m1, m2, qid, turn, name, template["system_prompt"], g1, g2, key))
    return matches


def _turns(answer: dict, model: str, question: dict, turn: int) -> list[str]:
    turns = answer["choices"][0]["turns"]
    if len(turns) < turn:
        raise UserError(f"answer of {model} to question {question['question_id']} has {len(turns)} turn(s), "
                        f"expected {len(question['turns'])}")
    return turns
