"""Checks before anything loads: recipe keys and types, data sources, and what the machine must have.

    align sft --config R --dry_run true      (also align dpo; `align series FILE --dry-run` runs it
                                              for every recipe a series references)

Every real run starts with the same checks, before the output directory is touched or a model
loads. Each problem is one line; any problem exits 2. The environment checks read the recipe's
raw values (recipe file, translated, then command-line flags), so they run even where TRL's own
config would refuse to be built (bf16 on a machine without a GPU).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from align.plumbing.errors import UserError
from align.plumbing.files import is_hub_id, offline_flag
from align.train.compat import translate_argv, translate_keys
from align.train.mixture import is_local, local_file
from align.train.mixture_spec import Mixture, Source, mixture_from_args
from align.train.values import key_label, lenient_bool, output_dir_problem, raw_recipe_file

# report_to names -> the module that must be importable (transformers' integration names)
TRACKER_MODULES = {"wandb": "wandb", "tensorboard": ("tensorboard", "tensorboardX"), "mlflow": "mlflow",
                   "comet_ml": "comet_ml", "clearml": "clearml", "neptune": "neptune", "dvclive": "dvclive",
                   "codecarbon": "codecarbon", "azure_ml": "azureml", "trackio": "trackio", "swanlab": "swanlab",
                   "dagshub": "dagshub", "flyte": "flytekit", "kubeflow": "kubeflow"}


def _installed(*modules: str) -> bool:
    return any(importlib.util.find_spec(m) is not None for m in modules)


def _flag(value: Any) -> bool:
    """A recipe boolean as the trainer will read it (a word it refuses is the recipe parse's to name)."""
    return lenient_bool(value) is True


def _gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def raw_settings(stage: str, argv: list[str]) -> tuple[str | None, dict[str, Any]]:
    """(recipe path, recipe keys translated and overridden by command-line flags, as raw values)."""
    from align.train.recipe import _cli_keys, _split_config_flag

    config, cli = _split_config_flag(argv)
    raw: dict[str, Any] = {}
    if config:  # an empty or unreadable recipe is said alone (not followed by what its defaults would need)
        raw, _ = translate_keys(raw_recipe_file(config), config, stage)
    cli, _ = translate_argv(cli, "command line", stage)
    raw.update(_cli_keys(cli))
    return config, raw


def environment_problems(raw: dict[str, Any]) -> list[str]:
    """What the recipe asks of this machine that it does not have."""
    problems = []
    gpu = _gpu()
    bf16 = raw.get("bf16")
    if not gpu and (_flag(bf16) or (bf16 is None and not _flag(raw.get("fp16")))):
        why = "bf16: true" if bf16 is not None else "bf16 (TRL's default when unset)"
        problems.append(f"{why} needs a GPU; none here: set bf16: false (and dtype: float32 on CPU)")
    if not gpu and _flag(raw.get("fp16")):
        problems.append("fp16: true needs a GPU; none here: set fp16: false")
    for key in ("load_in_4bit", "load_in_8bit"):
        if _flag(raw.get(key)):
            if not gpu:
                problems.append(f"{key}: true (QLoRA) needs a CUDA GPU; none here: set {key}: false")
            elif not _installed("bitsandbytes"):
                problems.append(f"{key}: true needs bitsandbytes, which is not installed (pip install bitsandbytes)")
    attn = str(raw.get("attn_implementation") or "")
    if attn in ("flash_attention_2", "flash_attention_3"):
        module = "flash_attn" if attn == "flash_attention_2" else "flash_attn_interface"
        if not _installed(module):
            problems.append(f"attn_implementation: {attn} needs the {module} package, which is not installed: "
                            "install it or set attn_implementation: sdpa")
        elif not gpu:
            problems.append(f"attn_implementation: {attn} needs a CUDA GPU; none here: set attn_implementation: sdpa")
    if _flag(raw.get("padding_free")) and attn not in ("flash_attention_2", "flash_attention_3"):
        problems.append("padding_free: true needs attn_implementation flash_attention_2/3: set padding_free: false")
    problems += _tracker_problems(raw.get("report_to"))
    if _flag(raw.get("push_to_hub")):
        problems += _hub_problems(raw)
    if _flag(raw.get("use_liger_kernel")) and not _installed("liger_kernel"):
        problems.append("use_liger_kernel: true needs liger-kernel, which is not installed: "
                        "set use_liger_kernel: false")
    optim = str(raw.get("optim") or "")
    if any(word in optim for word in ("8bit", "paged", "bnb")) and not _installed("bitsandbytes"):
        problems.append(f"optim: {optim} needs bitsandbytes, which is not installed: use optim: adamw_torch")
    if raw.get("deepspeed") and not _installed("deepspeed"):
        problems.append("deepspeed: set, but deepspeed is not installed")
    return problems


def _tracker_problems(report_to: Any) -> list[str]:
    if report_to is None:
        return []
    names = report_to if isinstance(report_to, list) else str(report_to).replace(",", " ").split()
    problems = []
    for name in names:
        if name in ("none", "all"):
            continue
        modules = TRACKER_MODULES.get(name)
        if modules is None:
            problems.append(f"report_to: unknown tracker {name!r} (known: {sorted(TRACKER_MODULES)} or none)")
        elif not _installed(*([modules] if isinstance(modules, str) else modules)):
            problems.append(f"report_to: {name} is not installed: install it or drop it from report_to "
                            "(report_to: none logs to the console only)")
    return problems


def _hub_problems(raw: dict) -> list[str]:
    if offline_flag():
        return ["push_to_hub: true needs hub access, and HF_HUB_OFFLINE=1: set push_to_hub: false"]
    from huggingface_hub import get_token

    if not raw.get("hub_token") and not get_token():
        return ["push_to_hub: true needs a hub token (huggingface-cli login, or HF_TOKEN): none is set"]
    return []


def hub_dataset_problem(source: Source) -> str | None:
    """None when a hub dataset can be read from here (online, or cached while offline)."""
    import datasets

    try:
        datasets.load_dataset_builder(source.path, source.name, data_dir=source.data_dir,
                                      data_files=source.data_files)
    except Exception as err:  # noqa: BLE001 - any failure here means "cannot be read from this machine"
        if offline_flag():
            return (f"dataset {source.label()}: a hub dataset that needs hub access (HF_HUB_OFFLINE=1 and not "
                    "cached): use a local file or directory")
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"dataset {source.label()}: cannot be read ({first})"
    return None


def source_problem(source: Source) -> str | None:
    path = Path(source.path)
    if is_local(source):
        if path.is_dir() and local_file(source) is None and source.data_files is None and source.data_dir is None:
            if not any(path.glob("*")):
                return f"dataset {source.label()}: directory {path} is empty"
        return None
    if not is_hub_id(source.path, bare_name=True) or path.suffix in (".jsonl", ".json", ".parquet"):
        return f"dataset {source.label()}: {path} not found"
    return hub_dataset_problem(source)


def data_sources(data_args, source: str, seed: int) -> list[Source]:
    mixture: Mixture | None = mixture_from_args(data_args, source, seed)
    if mixture is not None:
        return mixture.sources
    return [Source(path=data_args.dataset_name, name=data_args.dataset_config, split=data_args.dataset_train_split)]


def config_file(model: str) -> Path | None:
    """The checkpoint's config.json: in its directory, or a hub id's copy in the local cache; None when
    neither is here. An invalid hub id raises huggingface_hub's ValueError."""
    path = Path(model)
    if path.exists():
        return path / "config.json" if (path / "config.json").is_file() else None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(model, "config.json")
    return Path(cached) if isinstance(cached, str) else None


def model_problem(model: str | None) -> str | None:
    if not model:
        return None
    path = Path(model)
    if path.exists():
        return None if config_file(model) else f"model_name_or_path {model}: no config.json in it"
    if not is_hub_id(model, bare_name=True):
        return f"model_name_or_path {model}: not found"
    if offline_flag() and config_file(model) is None:
        return f"model_name_or_path {model}: a hub model that needs hub access (HF_HUB_OFFLINE=1, not cached)"
    return None


# attn_implementation -> the class flag transformers reads before it refuses an architecture
ATTENTION_FLAGS = {"sdpa": "_supports_sdpa", "flash_attention_2": "_supports_flash_attn",
                   "flash_attention_3": "_supports_flash_attn", "flex_attention": "_supports_flex_attn"}


def attention_problem(model: str | None, attn: str | None) -> str | None:
    """An attn_implementation the checkpoint's architecture refuses (Gemma 2 has no sdpa: it cannot
    softcap), found from config.json before the model loads; hub ids not cached here are left to load."""
    if not model or attn not in ATTENTION_FLAGS:
        return None
    try:  # a missing config or an invalid hub id is model_problem's business
        found = config_file(model)
    except ValueError:
        return None
    if found is None:
        return None
    try:
        model_type = json.loads(found.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None  # an unreadable config is transformers' to report, with its own words
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    name = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type)
    architecture = getattr(transformers, name, None) if isinstance(name, str) else None
    if architecture is None:
        return None
    # A private flag: a transformers that renamed it must not turn this refusal into a silent pass.
    supported = getattr(architecture, ATTENTION_FLAGS[attn], None)
    if not isinstance(supported, bool):
        return (f"attn_implementation: {attn}: cannot check that {name} ({model}) supports it: transformers "
                f"{transformers.__version__} has no `{ATTENTION_FLAGS[attn]}` class flag (align/train/checks.py "
                "ATTENTION_FLAGS reads it): set attn_implementation: eager, or update that table")
    if supported:
        return None
    return (f"attn_implementation: {attn}: {name} ({model}) does not support it: "
            "set attn_implementation: eager (or another it supports)")


def eos_token_problem(model: str | None, eos_token: str | None, where: str, trust_remote_code: bool) -> str | None:
    """An eos_token the checkpoint's tokenizer does not have (TRL raises a ValueError after the data is
    read). Loads the tokenizer only when eos_token is set; a missing model or tokenizer is said elsewhere."""
    if not model or eos_token is None or model_problem(model):
        return None
    from transformers import AutoTokenizer

    try:
        vocabulary = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code).get_vocab()
    except (OSError, ValueError):
        return None
    if eos_token in vocabulary:
        return None
    return (f"{where} {eos_token!r} is not in the vocabulary of {model}'s tokenizer: name one of its tokens, "
            "or leave eos_token unset for the tokenizer's own")


def template_problem(data_args, training_args) -> str | None:
    path = getattr(training_args, "chat_template_path", None)
    if data_args.chat_template and path:
        return "chat_template and chat_template_path are both set: keep one"
    if path and not Path(path).is_file():
        return f"chat_template_path {path} is not a file"
    return None


# ---------------------------------------------------------------------- the checks as a whole

def check_run(stage: str, argv: list[str], *, check_model: bool = True, produced: frozenset[str] = frozenset()
              ) -> tuple[Any, list[str], dict]:
    """Every check that needs no model -> (parsed recipe or None, problems, raw settings).

    `produced`: paths an earlier step will write (a series' prepare steps): not checked for existence."""
    from align.train.kinds import KINDS
    from align.train.recipe import cli_keys, parse_recipe

    try:
        config, raw = raw_settings(stage, argv)
    except UserError as err:
        return None, [str(err)], {}
    problems = environment_problems(raw)
    # bf16 already reported: let TRL build its config anyway, so that its own checks run too
    neutral = ["--bf16", "false", "--fp16", "false"] if any(p.startswith(("bf16", "fp16")) for p in problems) else []
    try:
        with warnings.catch_warnings():  # transformers' notices about TRL's own defaults: nothing to act on
            warnings.simplefilter("ignore", FutureWarning)
            parsed = parse_recipe(KINDS[stage].config_class, [*argv, *neutral])
    except UserError as err:
        return None, [*problems, str(err)], raw
    data_args, training_args, model_args, _, resolved = parsed
    where = config or "command line"
    unset = output_dir_problem(resolved, cli_keys(argv))
    problems += [unset] if unset else []
    model_checks = (model_problem(model_args.model_name_or_path),
                    attention_problem(model_args.model_name_or_path, model_args.attn_implementation),
                    eos_token_problem(model_args.model_name_or_path, getattr(training_args, "eos_token", None),
                                      key_label("eos_token", resolved, cli_keys(argv)),
                                      training_args.trust_remote_code),
                    ) if check_model else ()
    for problem in (template_problem(data_args, training_args), *model_checks):
        if problem:
            problems.append(problem)
    try:
        sources = data_sources(data_args, where, training_args.seed)
    except UserError as err:
        return parsed, [*problems, str(err)], raw
    problems += [p for s in sources if not _made_earlier(s.path, produced) and (p := source_problem(s))]
    return parsed, problems, raw


def _made_earlier(path: str, produced: frozenset[str]) -> bool:
    """A file an earlier step writes, or a token shard folder whose metadata.json it writes (align tokenize)."""
    return str(Path(path)) in produced or str(Path(path) / "metadata.json") in produced


def _say(lines: list[str], stream=None) -> None:
    if os.environ.get("RANK", "0") == "0":  # under a launcher every process checks; one reports
        for line in lines:
            print(line, file=stream or sys.stderr, flush=True)


def preflight(stage: str, argv: list[str]):
    """The checks at the start of a run: problems -> one line each and exit 2. Returns the parsed
    recipe, or None after a successful `--dry_run true` (which also reads and checks all the data)."""
    parsed, problems, raw = check_run(stage, argv)
    dry = _flag(raw.get("dry_run")) or (parsed is not None and parsed[3].dry_run)
    summary = None
    if dry and parsed is not None and not problems:
        problems += [p for p in [_output_dir_problem(parsed)] if p]
    if dry and parsed is not None and not problems:
        summary, data_problem = _dry_run_data(stage, parsed)
        problems += [data_problem] if data_problem else []
    if problems:
        _say([f"error: {p}" for p in problems[:-1]])
        raise UserError(problems[-1] + (f" ({len(problems)} problems; nothing was loaded)" if len(problems) > 1
                                        else ""))
    if dry:
        notes = parsed[4].get("translated_keys") or []
        _say([f"note: {n}" for n in notes] + [summary], sys.stdout)
        return None
    return parsed


def _output_dir_problem(parsed) -> str | None:
    """What the real run's output_dir policy refuses (a non-empty or input-holding output_dir), so a dry
    run that passes is a run that starts. Deletes and creates nothing."""
    from align.train.output_plan import plan_output_dir, run_inputs

    data_args, training_args, model_args, run_args, _ = parsed
    try:
        plan_output_dir(training_args, run_args, run_inputs(model_args, data_args, training_args))
    except UserError as err:
        return str(err)
    return None


def _dry_run_data(stage: str, parsed) -> tuple[str | None, str | None]:
    """Read and check all the data (no model, no tokenizer) -> (summary line, problem)."""
    from align.train.kinds import KINDS
    from align.train.mixture import load_training_data

    data_args, training_args, model_args, _, resolved = parsed
    where = resolved.get("recipe_file") or "command line"
    try:
        train, evaluation, cards = load_training_data(data_args, training_args, KINDS[stage].rows, where)
    except UserError as err:
        return None, str(err)
    sources = len(cards.get("mixture", {}).get("sources", [])) or 1
    return (f"{where}: {stage} recipe ok: {train.rows_kept} train rows"
            f"{f', {evaluation.rows_kept} eval rows' if evaluation else ''} from {sources} source(s), "
            f"model {model_args.model_name_or_path} not loaded (dry run)"), None


def check_recipe(stage: str, argv: list[str], *, check_model: bool = True,
                 produced: frozenset[str] = frozenset()) -> list[str]:
    """Problems of one recipe command line (for `align series --dry-run`), without loading data rows."""
    _, problems, _ = check_run(stage, argv, check_model=check_model, produced=produced)
    return problems
