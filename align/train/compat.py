"""Recipes written for the alignment-handbook or TRL's CLI: keys renamed or removed upstream.

A recipe key that TRL 1.16 / transformers 5.23 renamed is translated to today's key; one that
was removed but has an equivalent becomes that equivalent; one with no meaning today is refused
with the reason. Every translation is one line (logged, and kept in the run card) saying what
the key became, so a run never silently differs from what its recipe says.

Also here: the recipe's `env:` block (TRL's CLI), applied before anything heavy is imported.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from align.plumbing.errors import UserError
from align.plumbing.redact import redact


@dataclass
class TemplateArguments:
    """The alignment-handbook's inline template key."""

    chat_template: str | None = field(default=None, metadata={
        "help": "inline Jinja chat template (alignment-handbook): trained with and saved with the checkpoint, "
                "exactly like chat_template_path"})


@dataclass
class RunExtras:
    """TRL CLI's `env:` block and the dry run."""

    env: str | None = field(default=None, metadata={
        "help": "environment variables set before anything imports (a mapping; TRL's CLI `env:`)"})
    dry_run: bool = field(default=False, metadata={
        "help": "check the recipe, data sources and environment, load no model, train nothing; exit 2 on problems"})


# old key -> (today's key, why)
RENAMED = {
    "max_seq_length": ("max_length", "TRL renamed SFTConfig.max_seq_length to max_length"),
    "hub_model_revision": ("hub_revision", "transformers' name for the hub branch to push to"),
    "evaluation_strategy": ("eval_strategy", "transformers renamed it"),
    "preprocessing_num_workers": ("dataset_num_proc", "the handbook's old name for TRL's dataset_num_proc"),
    "gradient_checkpointing": ("activation_checkpointing", "transformers 5.23 renamed it; the old name goes in v6"),
    "gradient_checkpointing_kwargs": ("activation_checkpointing_kwargs",
                                      "transformers 5.23 renamed it; the old name goes in v6"),
}

# old key -> why it cannot be honoured today
REFUSED = {
    "auto_insert_empty_system_msg": "align renders each conversation with the chat template as written; "
                                    "add a system message to the data instead",
    "text_column": "align sft/dpo train on `messages` (SFT) or `chosen`/`rejected` (DPO) columns; "
                   "select yours with dataset_mixture columns (text_column is for align cpt)",
    "dataset_batch_size": "TRL 1.x tokenizes with datasets.map defaults; there is no batch size to set",
    "num_of_sequences": "TRL 1.x packs with packing_strategy (bfd, bfd_split, wrapped); there is no buffer size",
    "chars_per_token": "TRL 1.x packs tokenized sequences; no character estimate is used",
    "generate_during_eval": "TRL 1.x DPO no longer generates during evaluation",
}

# keys refused above that a stage gives a meaning to
HONOURED_BY = {"cpt": ("text_column",)}

# SFT dataset_kwargs the handbook sets that TRL 1.x removed: value that matches today's behaviour.
DATASET_KWARGS_GONE = {
    "add_special_tokens": (False, "TRL 1.16 tokenizes conversations through the chat template and adds no "
                                  "special tokens of its own"),
    "append_concat_token": (False, "TRL 1.16 packs without a separator token (sequences keep their own "
                                   "position ids)"),
}

PACKING_RENAMED = {"ffd": "bfd"}


def _warmup(raw: dict, source: str, notes: list[str]) -> None:
    ratio = raw.pop("warmup_ratio")
    try:
        ratio = float(ratio)
    except (TypeError, ValueError):
        raise UserError(f"{source}: key 'warmup_ratio' expects a number, got {ratio!r}") from None
    if not 0 <= ratio < 1:
        raise UserError(f"{source}: key 'warmup_ratio' must be in [0, 1), got {ratio}")
    steps = raw.get("warmup_steps")
    if steps not in (None, 0, 0.0, "0") and float(steps) != ratio:
        raise UserError(f"{source}: both warmup_ratio ({ratio}) and warmup_steps ({steps}) are set; keep one")
    raw["warmup_steps"] = ratio
    notes.append(f"warmup_ratio: {ratio} -> warmup_steps: {ratio} (transformers 5 removed warmup_ratio and reads "
                 "warmup_steps in [0, 1) as a fraction of the total steps)")


def _max_prompt_length(raw: dict, source: str, stage: str, notes: list[str]) -> None:
    value = raw.pop("max_prompt_length")
    if stage != "dpo":
        raise UserError(f"{source}: key 'max_prompt_length' has no meaning for SFT (it was a DPO prompt limit; "
                        "use max_length)")
    limit = raw.get("max_length", 1024)
    notes.append(f"max_prompt_length: {value} -> dropped (TRL 1.16 DPO has no prompt-only limit: prompt + answer "
                 f"are cut to max_length {limit} keeping the start, and a pair whose prompt alone fills "
                 "max_length is left out)")


def _dataset_kwargs(raw: dict, source: str, notes: list[str]) -> None:
    kwargs = raw.get("dataset_kwargs")
    if not isinstance(kwargs, dict):
        return
    kept = dict(kwargs)
    for key, (supported, why) in DATASET_KWARGS_GONE.items():
        if key not in kept:
            continue
        value = kept.pop(key)
        if bool(value) != supported:
            raise UserError(f"{source}: key 'dataset_kwargs.{key}: {value}' cannot be honoured: {why}")
        notes.append(f"dataset_kwargs.{key}: {value} -> dropped ({why}, which is what {value} asked for)")
    if kept:
        raw["dataset_kwargs"] = kept
    else:
        raw.pop("dataset_kwargs")


def translate_keys(raw: dict[str, Any], source: str, stage: str) -> tuple[dict[str, Any], list[str]]:
    """Handbook / older TRL keys -> today's keys. Returns (translated copy, one note per change).

    `stage` is "sft" or "dpo". Raises UserError for a key with no meaning today.
    """
    raw, notes = dict(raw), []
    for key, why in REFUSED.items():
        if key in raw and key not in HONOURED_BY.get(stage, ()):
            raise UserError(f"{source}: key '{key}' has no meaning today: {why}")
    for old, (new, why) in RENAMED.items():
        if old not in raw:
            continue
        value = raw.pop(old)
        if new in raw and raw[new] != value:
            raise UserError(f"{source}: both '{old}' ({value}) and '{new}' ({raw[new]}) are set; keep '{new}'")
        raw[new] = value
        notes.append(f"{old}: {value} -> {new}: {value} ({why})")
    if "warmup_ratio" in raw:
        _warmup(raw, source, notes)
    if "max_prompt_length" in raw:
        _max_prompt_length(raw, source, stage, notes)
    if raw.get("use_flash_attention_2") is not None:
        flag = raw.pop("use_flash_attention_2")
        if flag:
            raw.setdefault("attn_implementation", "flash_attention_2")
        notes.append(f"use_flash_attention_2: {flag} -> attn_implementation: {raw.get('attn_implementation')} "
                     "(transformers' current switch)")
    _dataset_kwargs(raw, source, notes)
    strategy = raw.get("packing_strategy")
    if strategy in PACKING_RENAMED:
        raw["packing_strategy"] = PACKING_RENAMED[strategy]
        notes.append(f"packing_strategy: {strategy} -> {PACKING_RENAMED[strategy]} (TRL replaced first-fit "
                     "decreasing packing with best-fit decreasing; both cut over-long sequences)")
    return raw, notes


def translate_argv(cli: list[str], source: str, stage: str) -> tuple[list[str], list[str]]:
    """The same translation for `--old_key value` flags on the command line."""
    out, notes, i = [], [], 0
    names = set(RENAMED) | set(REFUSED) | {"warmup_ratio", "max_prompt_length", "use_flash_attention_2"}
    while i < len(cli):
        arg = cli[i]
        name, eq, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if name not in names:
            out.append(arg)
            i += 1
            continue
        has_value = eq or (i + 1 < len(cli) and not cli[i + 1].startswith("--"))
        if not eq:
            value = cli[i + 1] if has_value else "true"
        i += 2 if has_value and not eq else 1
        translated, more = translate_keys({name: yaml.safe_load(value)}, source, stage)
        notes += more
        for key, val in translated.items():
            out += [f"--{key}", _flag_value(val)]
    return out, notes


def _flag_value(value: Any) -> str:
    """A translated value as a command-line word: dicts as JSON (what transformers parses), bools as true/false."""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def checkpointing_default(config_class: type, recipe: dict[str, Any]) -> dict[str, Any]:
    """TRL's configs default the deprecated `gradient_checkpointing` to True, which transformers 5.23 reads as
    the old name and warns about on every run: a recipe that sets neither name gets that default under
    today's name, `activation_checkpointing` (same behaviour, no warning)."""
    if "activation_checkpointing" in recipe:
        return {}
    default = {f.name: f.default for f in dataclasses.fields(config_class)}.get("gradient_checkpointing")
    return {} if default in (None, dataclasses.MISSING) else {"activation_checkpointing": default}


# ---------------------------------------------------------------------- env: block

def _config_path(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def recipe_env(argv: list[str]) -> dict[str, str]:
    """The recipe's `env:` mapping (TRL's CLI format), read with nothing but YAML."""
    path = _config_path(argv)
    if not path or not Path(path).is_file():
        return {}  # the recipe parser reports a missing file
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return {}  # the recipe parser reports the YAML error with its line
    env = data.get("env") if isinstance(data, dict) else None
    if env is None:
        return {}
    if not isinstance(env, dict) or any(isinstance(v, (dict, list)) for v in env.values()):
        raise UserError(f"{path}: key 'env' must be a mapping of VARIABLE: value")
    return {str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in env.items()}


def apply_recipe_env(argv: list[str]) -> dict[str, str]:
    """Set the recipe's `env:` variables (as TRL's CLI does, they win over the shell's). Call this before
    torch / transformers are imported: many of them (threads, caches, offline mode) are read at import."""
    env = recipe_env(argv)
    os.environ.update(env)
    return env


def env_card(env: dict[str, str]) -> dict[str, str]:
    """The env block for the run card: secret-looking variables (HF_TOKEN, WANDB_API_KEY, ...) blanked."""
    return redact(dict(env))
