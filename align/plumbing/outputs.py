"""Output directories: never write into an input, never delete what is not a previous run's output.

Every command that writes a directory (`align sft|dpo --output_dir`, `align grow|init --out`, the
series runner's stage reset) checks its target with these functions before anything is touched:

- `check_output_target`: the target is not an existing regular file, and is not, does not
  contain, and does not lie inside any input (model, reference model, data file, template).
- `is_previous_run_output`: what `--overwrite_output_dir` / a reset may delete: a directory
  holding our run card, a trainer's checkpoint-N folders or the files a trainer writes first.
- `remove_previous_output`: delete such a directory, refusing anything else.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from align.plumbing.errors import UserError

# Files only a previous run writes at the top of its output directory: our run card (written last),
# transformers' Trainer files (trainer_state.json, training_args.bin, all_results.json), TRL's model
# card, and the weights/tokenizer a save writes. Checkpoint folders are matched by name.
RUN_OUTPUT_FILES = ("run_card.json", "trainer_state.json", "training_args.bin", "all_results.json",
                    "train_results.json", "README.md", "config.json", "model.safetensors",
                    "model.safetensors.index.json", "adapter_config.json", "tokenizer_config.json",
                    "generation_config.json", "loss.png")
CHECKPOINT_DIR = re.compile(r"^checkpoint-\d+$")
RUN_MARKERS = ("run_card.json", "trainer_state.json", "training_args.bin")


def _resolved(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(os.path.expanduser(str(path)))).resolve()


def is_previous_run_output(path: str | os.PathLike) -> bool:
    """True for a directory a previous training/growth run wrote (so replacing it loses no input).

    It must hold a run card, a trainer's state or arguments, a checkpoint-N folder or the trainer's
    logs (runs/, a run killed before its first checkpoint), and nothing
    at its top level that a run does not write (a stray file there means someone else's data).
    """
    path = Path(path)
    if not path.is_dir():
        return False
    entries = list(path.iterdir())
    has_marker = any((path / name).is_file() for name in RUN_MARKERS) or any(
        e.is_dir() and (CHECKPOINT_DIR.match(e.name) or e.name == "runs") for e in entries)
    return has_marker and all(_written_by_a_run(e) for e in entries)


def _written_by_a_run(entry: Path) -> bool:
    name = entry.name
    if entry.is_dir():
        # checkpoint-N, LoRA's adapter/, tensorboard's runs/, and our own temporary siblings
        return bool(CHECKPOINT_DIR.match(name)) or name in ("adapter", "runs") or name.startswith(".")
    return (name in RUN_OUTPUT_FILES or name.startswith(("model-", "tokenizer", "special_tokens", "chat_template",
                                                          "adapter_model", "vocab", "merges", "added_tokens"))
            or name.endswith((".safetensors", ".tmp")) or name.startswith("."))


def check_output_target(out: str | os.PathLike, inputs: Mapping[str, str | os.PathLike | None],
                        flag: str = "--output_dir") -> None:
    """Refuse an output that is a regular file, or that is, contains or lies inside an input path.

    `inputs` maps a name for the message ("model_name_or_path") to a path; values that are not
    local paths (a hub id, None) are ignored.
    """
    target = _resolved(out)
    if target.exists() and not target.is_dir():
        raise UserError(f"{flag} {out} is an existing file, not a directory: choose a directory path")
    for name, given in inputs.items():
        if not given or not Path(str(given)).expanduser().exists():
            continue  # not a local path (hub id) or not set
        source = _resolved(given)
        if target == source:
            relation = "is"
        elif target in source.parents:
            relation = "contains"
        elif source in target.parents:
            relation = "lies inside"
        else:
            continue
        raise UserError(f"{flag} {out} {relation} the input {name} {given}: write the output somewhere "
                        "else (an output directory may be replaced; an input must never be)")


def check_new_output(out: str | os.PathLike, inputs: Mapping[str, str | os.PathLike | None],
                     flag: str = "--out") -> None:
    """For commands with no overwrite option (`align grow`, `align init`): the target must be new or
    empty, and must not overlap an input. Checked before anything is loaded."""
    check_output_target(out, inputs, flag=flag)
    out = Path(out)
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"{flag} {out} already exists and is not empty; choose a new directory")


def remove_previous_output(path: str | os.PathLike, flag: str = "--output_dir") -> None:
    """Delete `path` if it is a previous run's output; refuse (UserError) if it holds anything else."""
    path = Path(path)
    if not path.exists():
        return
    if path.is_dir() and not any(path.iterdir()):
        return  # empty: nothing to delete
    if not is_previous_run_output(path):
        foreign = sorted(e.name for e in path.iterdir() if not _written_by_a_run(e))[:3] if path.is_dir() else []
        detail = f" (it holds {', '.join(foreign)})" if foreign else " (no run card, checkpoint or trainer files)"
        raise UserError(f"{flag} {path} is not a previous run's output{detail}: refusing to delete it; "
                        "choose another directory or empty it yourself")
    shutil.rmtree(path)
