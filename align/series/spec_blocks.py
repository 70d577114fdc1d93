"""The series file's typed blocks: `answer:`, `judge:` (one or a list) and `eval:`, each a dataclass that
holds every default of its block, and the checks that read them. spec.py puts them into a Series (and
re-exports the classes); the stages read only the dataclasses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from align.plumbing.errors import UserError
from align.series.spec_values import PACKAGED_PREFIX, check_checkpoint, check_keys, check_number

JUDGE_MODES = ("single", "pairwise")  # pairwise: single scores plus each entry against its same-size scratch
JUDGE_NAME = re.compile(r"^[A-Za-z0-9][\w.-]{0,63}$")  # a later judge's folder under model_judgment/ and judges/


# ----------------------------------------------------------------------------- typed blocks (defaults here only)

@dataclass
class AnswerConfig:
    """`answer:`: how every entry's MT-Bench answers are made (`align mtbench answer`'s options)."""
    backend: str | None = None          # hf (default of align mtbench answer), openai, vllm
    question_begin: int | None = None   # the questions answered: [begin, end) of the question file
    question_end: int | None = None
    max_new_token: int | None = None
    batch_size: int | None = None
    question_dir: str | None = None     # default: the packaged MT-Bench questions
    extra_args: list = field(default_factory=list)  # more `align mtbench answer` arguments, as written


@dataclass
class JudgeConfig:
    """One judge of `judge:` (a mapping, or each mapping of a list): `align mtbench judge`'s options."""
    model: str                          # an API model name, a local checkpoint, or packaged:NAME
    name: str | None = None             # a later judge's folder name (default judge-<position>)
    base_url: str | None = None         # an OpenAI-compatible server; a local model is served on loopback
    parallel: int | None = None         # requests in flight (not part of the fingerprint)
    max_tokens: int | None = None
    prefill: str | None = None          # the start of every single-score answer ("Rating: [[")
    pair_prefill: str | None = None     # ... of every pairwise verdict ("[[")
    mode: str = "single"                # pairwise: also each entry against its same-size scratch entry
    controls: bool = True               # the judge check's @mismatched controls
    extra_args: list = field(default_factory=list)


@dataclass
class EvalConfig:
    """`eval:`: the judge-free stages (align/series/eval_stages.py): `align eval` on base checkpoints, `align
    heldout` after DPO. Files (heldout_text, sft_data, dpo_data) may be written by a prepare step."""
    tasks: list | None = None           # lm-eval task names (default: the study's Table 1)
    include_path: list | None = None    # folders of lm-eval task YAMLs
    heldout_text: str | None = None
    limit: int | None = None
    batch_size: int | None = None
    device: str | None = None
    dtype: str | None = None
    heldout_rows: int = 1000
    sft_data: str = "HuggingFaceH4/ultrachat_200k"
    sft_split: str | None = None
    dpo_data: str = "HuggingFaceH4/ultrafeedback_binarized"
    dpo_split: str | None = None
    beta: float | None = None           # default: the DPO recipe's (the series' overrides first)
    max_length: int | None = None
    heldout_batch_size: int | None = None
    allow_code: bool = False            # true: include_path tasks may run their Python (`!function`) helpers


def keys_of(config: type) -> set[str]:
    return {f.name for f in fields(config)}


ANSWER_KEYS, JUDGE_KEYS, EVAL_KEYS = keys_of(AnswerConfig), keys_of(JudgeConfig), keys_of(EvalConfig)


# ----------------------------------------------------------------------------- reading them

def answer_config(obj: Any, file: Path) -> AnswerConfig:
    answer = check_keys(obj, ANSWER_KEYS, "answer", file)
    for key in ("question_begin", "question_end", "max_new_token", "batch_size"):
        check_number(answer.get(key), f"answer.{key}", file, int)
    return AnswerConfig(**{k: v for k, v in answer.items() if v is not None})


def eval_config(raw: dict, file: Path) -> EvalConfig | None:
    """The top level's `eval:` block; None when there is none (the judge-free stages are off)."""
    if "eval" not in raw:
        return None
    block = check_keys(raw["eval"], EVAL_KEYS, "eval", file)
    for key in ("limit", "heldout_rows", "max_length", "heldout_batch_size"):
        if check_number(block.get(key), f"eval.{key}", file, int) is not None and block[key] < 1:
            raise UserError(f"{file}: eval.{key}: expected a whole number of at least 1, got {block[key]!r}")
    check_number(block.get("beta"), "eval.beta", file)
    if not isinstance(block.get("allow_code", False), bool):
        raise UserError(f"{file}: eval.allow_code: expected true or false, got {block['allow_code']!r}")
    for key in ("tasks", "include_path"):
        value = block.get(key)
        if value is not None and (not isinstance(value, list) or not value or
                                  not all(isinstance(v, str) and v for v in value)):
            raise UserError(f"{file}: eval.{key}: expected a non-empty list of names, got {value!r}")
    for i, folder in enumerate(block.get("include_path") or []):
        if not Path(folder).is_dir():
            raise UserError(f"{file}: eval.include_path[{i}]: folder {folder!r} not found (lm-eval task YAMLs)")
    return EvalConfig(**{k: v for k, v in block.items() if v is not None})


def _judge_config(obj: Any, file: Path, where: str = "judge") -> JudgeConfig:
    judge = check_keys(obj, JUDGE_KEYS, where, file, required=("model",))
    for key in ("parallel", "max_tokens"):
        check_number(judge.get(key), f"{where}.{key}", file, int)
    if judge.get("mode", "single") not in JUDGE_MODES:
        raise UserError(f"{file}: {where}.mode: expected one of {', '.join(JUDGE_MODES)}, got {judge['mode']!r}")
    if not isinstance(judge.get("controls", True), bool):
        raise UserError(f"{file}: {where}.controls: expected true or false, got {judge['controls']!r}")
    judge_model = str(judge["model"])
    if judge_model.startswith(PACKAGED_PREFIX) or judge_model.startswith((".", "/", "~")):
        check_checkpoint(judge_model, f"{where}.model", file)
    return JudgeConfig(**{k: v for k, v in judge.items() if v is not None})


def judge_configs(obj: Any, file: Path) -> list[JudgeConfig]:
    """`judge:` as one mapping or a list of them (several judges: an open judge beside GPT-4). The first judge is
    the reference (the main table); each later one is judged too, gets its own table and its agreement with the
    first (align/series/judge_stages.py). Every judge of a list has a `name` (default judge-<position>)."""
    if not isinstance(obj, list):
        return [_judge_config(obj, file)]
    if not obj:
        raise UserError(f"{file}: judge: expected a mapping or a non-empty list of mappings")
    judges = [_judge_config(j, file, f"judge[{i}]") for i, j in enumerate(obj)]
    names = [str(j.name or f"judge-{i + 1}") for i, j in enumerate(judges)]
    for i, name in enumerate(names):
        if not JUDGE_NAME.match(name):
            raise UserError(f"{file}: judge[{i}].name: expected letters, digits, '.', '_' or '-' "
                            f"(a folder name), got {name!r}")
        if names.index(name) != i:
            raise UserError(f"{file}: judge[{i}].name: {name!r} names two judges")
        judges[i].name = name
    models = [str(j.model) for j in judges]
    if len(set(models)) < len(models):  # the report tells judges apart by the model named in each record
        raise UserError(f"{file}: judge: two judges of the list have the same model {max(models, key=models.count)!r}")
    if any(j.mode != judges[0].mode for j in judges):
        raise UserError(f"{file}: judge: every judge of the list needs the same mode (their agreement compares "
                        "like with like)")
    return judges
