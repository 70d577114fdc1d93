"""`align sft|dpo|cpt` as their own launcher, as `trl sft` is: accelerate's flags go to `accelerate launch`.

    align sft --accelerate_config zero3 --num_processes 8 --config recipes/sft/ultrachat.yaml ...

`--accelerate_config NAME|PATH` (NAME: a config shipped in the package, align/data/accelerate/, which
recipes/accelerate/ links to: single, ddp, zero2, zero3, fsdp) and any flag of `accelerate launch`
(--num_processes, --mixed_precision, --main_process_port, ...) that is not also a recipe key are taken
out of the command line; the rest is the recipe command line. With none of them the run is in this
process, as before. With any, the recipe is checked here first (a bad key, value or output_dir is
refused before any process starts), then
`accelerate launch [those flags] --mixed_precision <the recipe's> -m align.sft|dpo|cpt <recipe args>`.
Mixed precision comes from the recipe's bf16/fp16: a --mixed_precision that disagrees is refused.
"""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path

from align.plumbing.errors import UserError
from align.plumbing.extras import require_extra
from align.plumbing.interrupt import call_in_own_group

# package data, so names work from an installed wheel too (recipes/accelerate is a link to it in a clone)
ACCELERATE_CONFIGS = Path(str(resources.files("align") / "data" / "accelerate"))
# accelerate's own flags that would change what runs, not how it is launched: never forwarded
NOT_FORWARDED = {"-h", "--help", "-m", "--module", "--no_python", "--no-python"}


def accelerate_config_path(value: str, where: str = "--accelerate_config") -> Path:
    """A path to an accelerate config, or the name of one shipped in align/data/accelerate/ (the one
    lookup `align sft|dpo|cpt` and a series file's train.accelerate_config share)."""
    path = Path(value)
    if path.is_file():
        return path
    named = ACCELERATE_CONFIGS / f"{value}.yaml"
    if named.is_file():
        return named
    names = sorted(p.stem for p in ACCELERATE_CONFIGS.glob("*.yaml"))
    raise UserError(f"{where} {value}: neither a file nor one of {', '.join(names)}")


def check_launcher_installed(config: Path) -> None:
    """A DeepSpeed config (zero2, zero3) without deepspeed installed: one line now, not a worker's traceback."""
    from align.plumbing.files import read_yaml_mapping

    if str(read_yaml_mapping(config, "accelerate config").get("distributed_type", "")).upper() == "DEEPSPEED":
        require_extra("deepspeed", f"--accelerate_config {config}")


def _accelerate_options() -> dict[str, bool]:
    """accelerate launch's option strings -> whether the option takes a value."""
    from accelerate.commands.launch import launch_command_parser

    return {opt: action.nargs != 0 for action in launch_command_parser()._actions
            for opt in action.option_strings if opt not in NOT_FORWARDED}


def split_launch_args(argv: list[str], recipe_keys: set[str]) -> tuple[list[str], list[str]]:
    """(arguments for `accelerate launch`, the recipe command line). Recipe keys win a shared name
    (--gradient_accumulation_steps is the recipe's)."""
    options = _accelerate_options()
    launch, recipe = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, has_value, value = arg.partition("=")
        if name == "--accelerate_config":
            if not has_value:
                if i + 1 >= len(argv):
                    raise UserError("command line: --accelerate_config needs a name or path")
                value, i = argv[i + 1], i + 1
            config = accelerate_config_path(value)
            check_launcher_installed(config)
            launch += ["--config_file", str(config)]
        elif name in options and name.lstrip("-").replace("-", "_") not in recipe_keys:
            launch.append(arg)
            if options[name] and not has_value and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                launch.append(argv[i + 1])
                i += 1
        else:
            recipe.append(arg)
        i += 1
    return launch, recipe


def _given_mixed_precision(launch: list[str]) -> str | None:
    for i, arg in enumerate(launch):
        name, has_value, value = arg.partition("=")
        if name in ("--mixed_precision", "--mixed-precision"):
            return value if has_value else (launch[i + 1] if i + 1 < len(launch) else None)
    return None


def launch_if_asked(stage: str, argv: list[str]) -> int | None:
    """Launch under `accelerate launch` when argv carries launcher flags; None: run in this process."""
    from align.train.checks import preflight
    from align.train.kinds import KINDS
    from align.train.output_plan import plan_output_dir, run_inputs
    from align.train.recipe import known_recipe_keys, recipe_command_line
    from align.train.values import mixed_precision_of

    launch, recipe_argv = split_launch_args(argv, known_recipe_keys(KINDS[stage].config_class))
    if not launch:
        return None
    if "LOCAL_RANK" in os.environ:
        raise UserError(f"already running under a launcher: launcher flags {' '.join(launch)} are not recipe keys")
    parsed = preflight(stage, recipe_argv)  # every check that needs no model, as the run itself does first
    if parsed is None:
        return 0  # --dry_run true: checked here, nothing launched
    data_args, training_args, model_args, run_args, _ = parsed
    plan_output_dir(training_args, run_args, run_inputs(model_args, data_args, training_args))  # deletes nothing
    recipe_path, _ = recipe_command_line(recipe_argv)
    wanted = mixed_precision_of(training_args.bf16, training_args.fp16)  # as the trainer parsed them
    given = _given_mixed_precision(launch)
    if given is None:
        launch += ["--mixed_precision", wanted]
    elif given != wanted:
        raise UserError(f"--mixed_precision {given} disagrees with the recipe {recipe_path or '(command line)'} "
                        f"(bf16/fp16 mean {wanted}): drop --mixed_precision (the recipe decides) or change the "
                        "recipe's bf16/fp16")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *launch, "-m", f"align.{stage}", *recipe_argv]
    print("align: " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
    return call_in_own_group(cmd)  # Ctrl-C / SIGTERM stop the launcher and all its workers
