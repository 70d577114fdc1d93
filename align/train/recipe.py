"""YAML recipe + command line -> typed configs (TRL's own dataclasses plus a few keys of ours).

A recipe is a flat YAML mapping of TRL `SFTConfig`/`DPOConfig` keys, TRL `ModelConfig` keys,
TRL `ScriptArguments` data keys and the extra keys declared below. Command-line flags override
recipe keys (`--learning_rate 1.0e-5`), as in TRL's own scripts.

Everything is checked before any model or dataset is loaded: an unknown key, or a value of the
wrong type (YAML 1.1 reads `3e-5` as a string), is a one-line UserError naming key and file.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import ModelConfig, ScriptArguments, TrlParser

from align.plumbing.errors import UserError
from align.train.compat import RunExtras, TemplateArguments, checkpointing_default, translate_argv, translate_keys
from align.train.mixture_spec import MixtureArguments, command_line_data_wins
from align.train.values import check_values, raw_recipe_file, recipe_bool

INVALID_ROW_POLICIES = ("error", "skip")


@dataclass
class DataArguments(ScriptArguments, MixtureArguments, TemplateArguments):
    """TRL's data keys (`dataset_name`, `dataset_config`, `dataset_train_split`, ...) plus ours."""

    max_train_rows: int | None = field(
        default=None, metadata={"help": "Use only the first N rows of the train split (before validation)."})
    invalid_rows: str = field(
        default="error", metadata={"help": "A row that fails the schema check: 'error' stops the run naming the "
                                           "row, 'skip' drops it and counts it in the run card.",
                                   "choices": list(INVALID_ROW_POLICIES)})


@dataclass
class ModelArguments(ModelConfig):
    """TRL's model keys (`model_name_or_path`, `dtype`, `attn_implementation`, LoRA keys) plus ours."""

    torch_dtype: str | None = field(
        default=None, metadata={"help": "transformers' older name for `dtype`; when set it wins over `dtype`.",
                                "choices": ["auto", "bfloat16", "float16", "float32"]})
    merge_adapter: bool = field(
        default=False, metadata={"help": "With use_peft: merge the trained LoRA adapter into the base weights and "
                                         "save an ordinary full checkpoint (the adapter goes to output_dir/adapter)."})


@dataclass
class RunArguments(RunExtras):
    """Output-directory policy (transformers 5 dropped its `overwrite_output_dir`)."""

    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Delete a non-empty output_dir first instead of refusing to run."})


class _Parser(TrlParser):
    """TRL's parser with abbreviations off (`--max_step 3` is refused, not read as `--max_steps`), and
    argparse errors as UserError (exit 2, one line) naming the recipe file when the value came from it."""

    def __init__(self, classes, recipe_path: str | None = None, recipe: dict | None = None,
                 cli: list[str] | None = None):
        super().__init__(classes, allow_abbrev=False)
        from align.train.kinds import kind_of

        self.prog = f"align {kind_of(classes[1]).name}"
        self.recipe_path, self.recipe, self.cli = recipe_path, recipe or {}, cli or []

    def error(self, message: str) -> typing.NoReturn:  # argparse hook
        flag = re.match(r"argument (--[\w-]+)", message)
        key = flag.group(1)[2:].replace("-", "_") if flag else None
        if key and key in self.recipe and not any(a == f"--{key}" or a.startswith(f"--{key}=") for a in self.cli):
            raise UserError(f"{self.recipe_path}: key '{key}': {message.split(': ', 1)[-1]}")
        raise UserError(f"command line: {message}")


def _field_types(classes) -> dict[str, Any]:
    types: dict[str, Any] = {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            types.setdefault(f.name, hints.get(f.name, Any))
    return types


def _field_choices(classes) -> dict[str, list]:
    return {f.name: list(f.metadata["choices"]) for cls in classes for f in dataclasses.fields(cls)
            if f.metadata.get("choices")}


def _scalar_kinds(tp: Any) -> set[type]:
    """The plain scalar types a (possibly Optional/Union) annotation accepts."""
    args = typing.get_args(tp)
    union = typing.get_origin(tp) in (typing.Union, types.UnionType)
    members = args if union else (tp,)
    return {m for m in members if m in (bool, int, float, str)}


def _coerce(key: str, value: Any, tp: Any, source: str) -> Any:
    """Convert a YAML value to the field's type where that is unambiguous, else refuse with a clear message."""
    kinds = _scalar_kinds(tp)
    if value is None or not kinds or isinstance(value, (list, dict)):
        return value
    if bool in kinds and not (kinds & {int, float, str}):
        try:
            return recipe_bool(value)  # the trainer's own reading of a boolean word
        except ValueError:
            raise UserError(f"{source}: key '{key}' expects a boolean (true/false, yes/no, t/f, y/n, 1/0), "
                            f"got {value!r}") from None
    if isinstance(value, bool) and bool not in kinds and kinds & {int, float}:  # Python's True == 1
        expected = "a number" if float in kinds else "an integer"
        raise UserError(f"{source}: key '{key}' expects {expected}, got {value!r} (a boolean)")
    if float in kinds and not isinstance(value, bool):
        if isinstance(value, (int, float)):
            return float(value) if int not in kinds else value
        if isinstance(value, str) and str not in kinds:
            try:
                return float(value)  # YAML 1.1 reads 3e-5 as a string
            except ValueError:
                raise UserError(f"{source}: key '{key}' expects a number, got {value!r}") from None
    if int in kinds and float not in kinds and not isinstance(value, bool):
        if isinstance(value, int):
            return value
        number = value
        if isinstance(value, str) and str not in kinds:
            try:
                number = float(value)
            except ValueError:
                raise UserError(f"{source}: key '{key}' expects an integer, got {value!r}") from None
        if isinstance(number, float):
            if not number.is_integer():
                raise UserError(f"{source}: key '{key}' expects an integer, got {value!r}")
            return int(number)
    return value


def load_recipe_file(path: str | Path, known: dict[str, Any], choices: dict[str, list] | None = None,
                     stage: str = "sft", notes: list[str] | None = None) -> dict[str, Any]:
    """Read a recipe YAML and check every key and scalar type against the dataclass fields.

    Keys renamed or removed upstream are translated first (align.train.compat); each translation
    is appended to `notes`."""
    path = Path(path)
    data, translated = translate_keys(raw_recipe_file(path), str(path), stage)
    if notes is not None:
        notes.extend(translated)
    out = {}
    for key, value in data.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"{path}: unknown key '{key}'{hint}")
        out[key] = _coerce(key, value, known[key], str(path))
        allowed = (choices or {}).get(key)
        if allowed and out[key] is not None and out[key] not in allowed:
            raise UserError(f"{path}: key '{key}' must be one of {allowed}, got {value!r}")
    return out


def _split_config_flag(argv: list[str]) -> tuple[str | None, list[str]]:
    rest, config = [], None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--config":
            if i + 1 >= len(argv):
                raise UserError("command line: --config needs a recipe path")
            config, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--config="):
            config = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return config, rest


def parse_recipe(config_class: type, argv: list[str] | None = None):
    """Parse `--config R.yaml [--key value ...]` into (data_args, training_args, model_args, run_args, resolved).

    `config_class` is a training kind's config (align.train.kinds: TRL's SFTConfig or DPOConfig, CPTConfig).
    `resolved` is the merged recipe (YAML then CLI) as a plain dict of the keys that were set, for the run card.
    """
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    classes = _recipe_classes(config_class)
    known = _field_types(classes)
    config_path, cli = _split_config_flag(argv)
    from align.train.kinds import kind_of

    kind = kind_of(config_class)
    notes: list[str] = []
    recipe = load_recipe_file(config_path, known, _field_choices(classes), kind.name, notes) if config_path else {}
    cli, cli_notes = translate_argv(cli, "command line", kind.name)
    parser = recipe_parser(config_class, config_path, recipe, cli)
    try:
        data_args, training_args, model_args, run_args, extra = parser.parse_args_into_dataclasses(
            args=cli, return_remaining_strings=True)
    except (ValueError, TypeError) as err:  # a dataclass __post_init__ refused a combination of values
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{_blame(first, config_path, recipe, cli)}: invalid settings: {first}") from None
    if extra:
        flag = next((a.split("=", 1)[0][2:] for a in extra if a.startswith("--")), "")
        close = difflib.get_close_matches(flag, list(known), n=1) if flag else []
        hint = f" (did you mean --{close[0]}? flags are never abbreviated)" if close else ""
        raise UserError(f"command line: unknown argument(s) {' '.join(extra)}{hint}")
    if model_args.torch_dtype is not None:
        model_args.dtype = model_args.torch_dtype
    if data_args.invalid_rows not in INVALID_ROW_POLICIES:
        raise UserError(f"{config_path}: key 'invalid_rows' must be one of {INVALID_ROW_POLICIES}")
    if not model_args.model_name_or_path:
        raise UserError(f"{config_path or 'command line'}: model_name_or_path is required")
    command_line_data_wins(data_args, _cli_keys(cli))
    if not (data_args.dataset_name or data_args.dataset_mixture or data_args.datasets or data_args.dataset_mixer):
        raise UserError(f"{config_path or 'command line'}: dataset_name (or a dataset mixture) is required")
    resolved = {"recipe_file": config_path, **recipe, **_cli_keys(cli), "translated_keys": notes + cli_notes}
    check_values(training_args, model_args, data_args, resolved, set(_cli_keys(cli)))
    note = kind.apply_budget(training_args, resolved, set(_cli_keys(cli)))  # CPT: max_tokens -> max_steps
    resolved["translated_keys"] += [note] if note else []
    return data_args, training_args, model_args, run_args, resolved


def _recipe_classes(config_class: type) -> tuple[type, ...]:
    return (DataArguments, config_class, ModelArguments, RunArguments)


def recipe_parser(config_class: type, recipe_path: str | None = None, recipe: dict | None = None,
                  cli: list[str] | None = None) -> TrlParser:
    """The parser of a training kind's recipe command line (`align sft|dpo|cpt --help` prints its help), with
    the recipe's keys as defaults; `recipe_path` and `cli` name where a refused value came from."""
    parser = _Parser(_recipe_classes(config_class), recipe_path, recipe, cli)
    parser.set_defaults_with_config(**checkpointing_default(config_class, recipe or {}), **(recipe or {}))
    return parser


def _blame(message: str, config_path: str | None, recipe: dict, cli: list[str]) -> str:
    """'FILE: key K' or 'command line: --K' for the value a library's check refused, when the message
    quotes it; else the recipe file (or the command line when there is none)."""
    def quoted(value: Any) -> bool:
        text = str(value)
        return (isinstance(value, (str, int, float)) and not isinstance(value, bool) and len(text) > 1
                and re.search(rf"(?<![\w.-]){re.escape(text)}(?![\w.-])", message) is not None)

    for key, value in _cli_keys(cli).items():
        if quoted(value):
            return f"command line: --{key}"
    for key, value in recipe.items():
        if quoted(value):
            return f"{config_path}: key '{key}'"
    return config_path or "command line"


def recipe_command_line(argv: list[str]) -> tuple[str | None, dict[str, Any]]:
    """(recipe path, {key: raw value} of the command-line overrides), without checking anything."""
    config_path, cli = _split_config_flag(argv)
    return config_path, _cli_keys(cli)


def known_recipe_keys(config_class: type) -> set[str]:
    """Every key a recipe for `config_class` (a training kind's config) may set."""
    return set(_field_types(_recipe_classes(config_class)))


def cli_keys(argv: list[str]) -> set[str]:
    """The recipe keys given as flags on a recipe command line (for messages naming where a value came from)."""
    return set(_cli_keys(_split_config_flag(argv)[1]))


def _cli_keys(cli: list[str]) -> dict[str, Any]:
    """The flags given on the command line, as key -> raw value (for the run card)."""
    out: dict[str, Any] = {}
    key = None
    for arg in cli:
        if arg.startswith("--"):
            key, _, value = arg[2:].partition("=")
            out[key] = value if value else True
            if value:
                key = None
        elif key is not None:
            out[key] = arg if out[key] is True else [*(out[key] if isinstance(out[key], list) else [out[key]]), arg]
    return out
