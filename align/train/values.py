"""Values and settings a run checks before anything is loaded, launched or deleted (see also checks.py).

- `check_values`: settings that parse but cannot mean anything (max_steps -3, learning_rate 0,
  batch size 0, ...), named with the file or command line they came from.
- `check_environment`: what this machine or this combination of keys cannot do (QLoRA without
  CUDA, merge_adapter without LoRA).
- `recipe_mixed_precision` / `follow_recipe_precision`: the recipe's bf16/fp16 is the one source of
  truth for mixed precision; an accelerate config saying otherwise is overridden, and said so.
- `raw_recipe_file`: the one reading of a recipe file, for the strict parse (recipe.py) and what is read
  before it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from align.plumbing.errors import UserError
from align.plumbing.files import read_yaml_mapping


def key_source(key: str, resolved: dict[str, Any], cli_keys: set[str]) -> str:
    """Where a recipe key's value came from, for messages: the command line, the recipe file, or the default."""
    if key in cli_keys:
        return "command line"
    if key in resolved and resolved.get("recipe_file"):
        return str(resolved["recipe_file"])
    return "default"


def key_label(key: str, resolved: dict[str, Any], cli_keys: set[str]) -> str:
    """'command line: --key', 'FILE: key 'key'' or 'default: key 'key'': a key and where its value came from."""
    where = key_source(key, resolved, cli_keys)
    return f"{where}: --{key}" if where == "command line" else f"{where}: key '{key}'"


def _refuse(key: str, value: Any, expected: str, resolved: dict, cli_keys: set[str]) -> None:
    raise UserError(f"{key_label(key, resolved, cli_keys)} must be {expected}, got {value!r}")


def check_values(training_args, model_args, data_args, resolved: dict[str, Any], cli_keys: set[str]) -> None:
    """Refuse values TRL/transformers would accept but that cannot mean anything (issue: max_steps -3 trains
    for epochs, max_steps 0 trains one step)."""
    def need(ok: bool, key: str, value: Any, expected: str) -> None:
        if not ok:
            _refuse(key, value, expected, resolved, cli_keys)

    t = training_args
    need(t.max_steps == -1 or t.max_steps >= 1, "max_steps", t.max_steps, "a positive number of steps, or -1 "
         "(train num_train_epochs)")
    if t.max_steps == -1:
        need(t.num_train_epochs > 0, "num_train_epochs", t.num_train_epochs, "> 0 (or set max_steps)")
    need(t.learning_rate > 0, "learning_rate", t.learning_rate, "> 0")
    for key in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        need(getattr(t, key) >= 1, key, getattr(t, key), "at least 1")
    need(t.warmup_steps >= 0, "warmup_steps", t.warmup_steps, ">= 0 (< 1 is a ratio of total steps)")
    need(t.weight_decay >= 0, "weight_decay", t.weight_decay, ">= 0")
    need(t.max_grad_norm is None or t.max_grad_norm >= 0, "max_grad_norm", t.max_grad_norm, ">= 0")
    need(t.logging_steps > 0, "logging_steps", t.logging_steps, "> 0")
    if str(t.save_strategy).endswith("steps"):
        need(t.save_steps > 0, "save_steps", t.save_steps, "> 0 with save_strategy: steps")
    max_length = getattr(t, "max_length", None)
    need(max_length is None or max_length >= 2, "max_length", max_length, "at least 2 tokens (or null: no limit)")
    if getattr(t, "beta", None) is not None:  # DPO
        need(t.beta > 0, "beta", t.beta, "> 0")
    rows = data_args.max_train_rows
    need(rows is None or rows >= 1, "max_train_rows", rows, "at least 1 (or null: all rows)")
    if model_args.use_peft:
        need(model_args.lora_r >= 1, "lora_r", model_args.lora_r, "at least 1")
        need(model_args.lora_alpha > 0, "lora_alpha", model_args.lora_alpha, "> 0")


def output_dir_problem(resolved: dict[str, Any], cli_keys: set[str]) -> str | None:
    """An output_dir that is null (`~`), empty or not set: transformers would write into ./trainer_output."""
    output_dir = resolved.get("output_dir")
    if output_dir is not None and str(output_dir).strip():
        return None
    given = "output_dir" in resolved
    where = key_source("output_dir", resolved, cli_keys) if given else None
    return (f"{where or resolved.get('recipe_file') or 'command line'}: output_dir "
            f"{'is empty (~ / null)' if given else 'is not set'}: name the run's directory (a recipe key or "
            "--output_dir); unset, transformers would write into ./trainer_output")


def check_environment(model_args) -> None:
    """Combinations this machine or these keys cannot run, before the model (or anything) is touched."""
    if model_args.load_in_4bit or model_args.load_in_8bit:
        import torch

        if not torch.cuda.is_available():
            raise UserError("load_in_4bit / load_in_8bit (QLoRA) need a CUDA GPU; none is available")
        if not model_args.use_peft:
            raise UserError("load_in_4bit / load_in_8bit train only LoRA adapters: set use_peft: true")
    if model_args.merge_adapter and not model_args.use_peft:
        raise UserError("merge_adapter needs use_peft: true")


def _prompt_length(tokenizer, messages: list[dict]) -> int:
    """Tokens before the first assistant reply, rendered as TRL renders a prompt (template + generation prompt)."""
    first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
    text = tokenizer.apply_chat_template(messages[:first], add_generation_prompt=True, tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def check_max_length_keeps_answers(dataset, tokenizer, training_args, column: str, trained: str) -> None:
    """Before the model loads: with `keep_start` truncation TRL drops every row whose prompt alone fills
    max_length, and with none left it fails deep inside (DPO: `torch.cat(): expected a non-empty list`, SFT:
    `num_samples=0`). `column` holds each row's conversation (SFT: messages, DPO: chosen), `trained` names
    what of it is trained (the assistant's tokens, the answer). Stops at the first row that fits."""
    max_length = getattr(training_args, "max_length", None)
    if max_length is None or getattr(training_args, "truncation_mode", "keep_start") != "keep_start":
        return
    shortest = None
    for row in dataset:
        length = _prompt_length(tokenizer, row[column])
        if length < max_length:
            return
        shortest = length if shortest is None else min(shortest, length)
    if shortest is not None:
        raise UserError(f"max_length {max_length} keeps no {trained} token of any row: the shortest prompt is "
                        f"{shortest} tokens; raise max_length")


def check_trainable_rows(trainer, training_args, trained: str) -> None:
    """After TRL tokenized and truncated: a max_length too short for any completion leaves no rows
    (torch's `num_samples=0` traceback otherwise). `trained` names what a row trains (assistant, answer)."""
    dataset = trainer.train_dataset
    if dataset is not None and hasattr(dataset, "__len__") and len(dataset) == 0:
        raise UserError(f"max_length {training_args.max_length} keeps no {trained} token of any row: raise "
                        "max_length (the prompts alone are longer)")


# ------------------------------------------------------------------ mixed precision: the recipe decides

def recipe_bool(value: Any) -> bool:
    """The one reading of a boolean in a recipe or on its command line: a YAML boolean, or a word
    transformers' HfArgumentParser reads as one (its string_to_bool: yes/no, true/false, t/f, y/n,
    1/0, any case). Anything else is a ValueError; so the checks, the launcher and the trainer agree."""
    from argparse import ArgumentTypeError

    from transformers.hf_argparser import string_to_bool

    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return bool(string_to_bool(value))
        except ArgumentTypeError:
            pass
    raise ValueError(f"{value!r} is not a boolean (true/false, yes/no, t/f, y/n, 1/0)")


def lenient_bool(value: Any) -> bool | None:
    """recipe_bool, or None for a value it refuses or an unset one (the strict parse names those)."""
    try:
        return None if value is None else recipe_bool(value)
    except ValueError:
        return None


def mixed_precision_of(bf16: Any, fp16: Any) -> str:
    """'bf16', 'fp16' or 'no' from a recipe's bf16/fp16, with TRL's default (bf16 unless fp16)."""
    fp16 = lenient_bool(fp16) or False
    bf16 = lenient_bool(bf16)
    bf16 = (not fp16) if bf16 is None else bf16  # TRL's own default (trl/trainer/base_config.py)
    return "fp16" if fp16 else "bf16" if bf16 else "no"


def empty_recipe_error(path: str | Path) -> UserError:
    return UserError(f"{path}: the recipe is empty (expected `key: value` lines: model_name_or_path, "
                     "dataset_name, output_dir, ...)")


def raw_recipe_file(path: str | Path) -> dict[str, Any]:
    """A recipe file's keys as YAML wrote them: the one reading of the file, for the strict parse below
    and for what must be known before it (the pre-run checks, a launched process's mixed precision)."""
    data = read_yaml_mapping(path, "recipe")
    if not data:
        raise empty_recipe_error(path)
    return data


def recipe_mixed_precision(recipe_path: str | None, cli: dict[str, Any]) -> str:
    """mixed_precision_of the recipe (file, then command line), read before the recipe is parsed (in the
    launched process, before TrainingArguments exist). Read leniently: the strict parse names any error."""
    data = {**(raw_recipe_file(recipe_path) if recipe_path else {}), **cli}
    return mixed_precision_of(data.get("bf16"), data.get("fp16"))


def follow_recipe_precision(recipe_path: str | None, cli: dict[str, Any]) -> str:
    """Under `accelerate launch`: make accelerate's mixed precision the recipe's before TrainingArguments
    read it (else `ds bf16.enabled=True vs hf bf16=False` after the model loads, or bf16 autocast that
    the recipe turned off). Says so once when the accelerate config disagreed."""
    wanted = recipe_mixed_precision(recipe_path, cli)
    given = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if given is not None and given != wanted:
        if os.environ.get("RANK", "0") == "0":
            print(f"align: the accelerate config (or --mixed_precision) says mixed_precision {given}, the recipe "
                  f"{recipe_path or '(command line)'} says {wanted}: using the recipe's {wanted}",
                  file=sys.stderr, flush=True)
        os.environ["ACCELERATE_MIXED_PRECISION"] = wanted
    return wanted
