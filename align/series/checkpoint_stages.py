"""The stages that make a checkpoint: base (grow / init), cpt, sft, dpo.

Each writes one checkpoint folder <output_dir>/<entry>/<stage>, complete once its config and its run card
(written last) are there; a trainer resumes from its last complete `checkpoint-N`; a fresh start removes only
what a previous run of the stage wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

from align.plumbing.argtypes import option_args
from align.plumbing.files import file_sha256
from align.plumbing.locks import output_lock
from align.plumbing.outputs import remove_previous_output
from align.series import pretraining
from align.series.spec import Series, resolve_packaged
from align.series.stage_kind import Skip, Stage, StageCommand, align_cli, train_env, training_program
from align.series.stage_outputs import (
    base_checkpoint,
    checkpoint_fingerprint,
    has_checkpoint,
    output_path,
    pretrained_checkpoint,
)


def remove_output(path: Path) -> None:
    """A stage's output folder or file, before a fresh start: only what a previous run wrote, and not while an
    align command is writing it."""
    with output_lock(path, "stage reset: output"):
        if path.is_dir():
            remove_previous_output(path, flag="stage output")
        elif path.exists():
            path.unlink()


def recipe_overrides(mapping: dict) -> list[str]:
    """{key: value} -> ['--key', 'value'] in the recipe command line's syntax."""
    args: list[str] = []
    for key, value in mapping.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, dict)):
            value = json.dumps(value)
        args += [f"--{key}", str(value)]
    return args


class CheckpointStage(Stage):
    """A stage whose output is one checkpoint folder."""

    resources = "training"

    def __init__(self, name: str):
        self.name = name

    def outputs(self, series: Series, entry: str | None) -> list[Path]:
        return [output_path(series, entry, self.name)]

    def verify(self, series: Series, entry: str | None) -> str | None:
        out = output_path(series, entry, self.name)
        card = out / "run_card.json"
        return file_sha256(card) if card.is_file() and (out / "config.json").is_file() else None

    def resumable(self, series: Series, entry: str | None) -> bool:
        return has_checkpoint(output_path(series, entry, self.name))

    def reset(self, series: Series, entry: str | None) -> None:
        remove_output(output_path(series, entry, self.name))

    def accelerate_inputs(self, series: Series) -> list[str]:
        accelerate = series.train.get("accelerate_config")
        return [accelerate] if accelerate else []


class BaseStage(CheckpointStage):
    """grow / init: built from another entry or a path; an entry with `path:` has it given."""

    resources = "grow"

    def __init__(self):
        super().__init__("base")

    def resumable(self, series: Series, entry: str | None) -> bool:
        return False

    def skip(self, series: Series, entry: str | None) -> Skip | None:
        path = series.entry(entry).path
        return None if path is None else Skip("given", checkpoint_fingerprint(path))

    def inputs(self, series: Series, entry: str | None) -> list[str]:
        """The growth spec or the init shape: their content is part of the base's fingerprint."""
        e = series.entry(entry)
        return [e.grow["spec"]] if e.grow else [e.init["shape"]] if e.init and e.init.get("shape") else []

    def command(self, series: Series, entry: str | None, *, resolve: bool = True, **_) -> StageCommand:
        e = series.entry(entry)
        # an init copies a shape (the source's base will do), a grow the trained weights
        source = pretrained_checkpoint if e.grow else base_checkpoint
        src = source(series, e.source, resolve) if series.is_entry(e.source) else (
            resolve_packaged(e.source) if resolve else e.source)
        out = str(output_path(series, entry, "base"))
        if e.init:
            return StageCommand(align_cli(), ["init", "--like", src, "--seed", str(e.init.get("seed", 0)),
                                              "--out", out, *option_args(e.init, {"shape": "--shape"})])
        g = e.grow
        return StageCommand(align_cli(), ["grow", "--from", src, "--to", str(g["spec"]), "--method",
                                          str(g["method"]), "--depth", str(g.get("depth", "stack")), "--out", out,
                                          *option_args(g, {"noise": "--noise", "seed": "--seed"})])


class CptStage(CheckpointStage):
    """Continued pretraining of the base checkpoint (entries with a `cpt:` block); SFT starts from its output."""

    def __init__(self):
        super().__init__("cpt")

    def skip(self, series: Series, entry: str | None) -> Skip | None:
        return Skip("none", None) if series.entry(entry).cpt is None else None

    def inputs(self, series: Series, entry: str | None) -> list[str]:
        return [pretraining.recipe_of(series, series.entry(entry))] + self.accelerate_inputs(series)

    def command(self, series: Series, entry: str | None, *, resume: bool = False, resolve: bool = True,
                **_) -> StageCommand:
        """`align cpt` on the entry's base checkpoint, with the token budget the series gives or derives."""
        args, overrides = pretraining.cpt_args(series, entry, base_checkpoint(series, entry, resolve),
                                               str(output_path(series, entry, "cpt")))
        args += recipe_overrides(overrides) + (["--resume_from_checkpoint", "true"] if resume else [])
        return StageCommand(training_program(series), args, train_env(series))


class TrainingStage(CheckpointStage):
    """sft (from the pretrained checkpoint) and dpo (from the SFT output), with the series' recipe and overrides."""

    def inputs(self, series: Series, entry: str | None) -> list[str]:
        return [getattr(series, self.name)["recipe"]] + self.accelerate_inputs(series)

    def command(self, series: Series, entry: str | None, *, resume: bool = False, resolve: bool = True,
                **_) -> StageCommand:
        block, own = getattr(series, self.name), getattr(series.entry(entry), self.name)
        model = pretrained_checkpoint(series, entry, resolve) if self.name == "sft" else str(
            output_path(series, entry, "sft"))
        args = [self.name, "--config", str(block["recipe"]), "--model_name_or_path", model,
                "--output_dir", str(output_path(series, entry, self.name)),
                *recipe_overrides({**(block.get("overrides") or {}), **(own.get("overrides") or {})})]
        if resume:
            args += ["--resume_from_checkpoint", "true"]
        return StageCommand(training_program(series), args, train_env(series))
