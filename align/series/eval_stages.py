"""The judge-free stages of a series (the series file's `eval:` block): a stage kind, MeasureStage.

- `base_eval`: `align eval` (lm-evaluation-harness) on every entry's base checkpoint, before SFT: the
  study's Table 1.
- `heldout_sft` / `heldout_dpo`: `align heldout` on the final post-trained model (after DPO), the model
  the MT-Bench table describes: its mean held-out loss on the SFT recipe's test split, and its preference
  accuracy and reward margin on the DPO recipe's test split, with the SFT checkpoint as the reference
  (the model DPO started from, as in training).

They are side stages: each reads one stage's output (`reads`) and no stage reads theirs except the report,
so changing `eval:` never re-runs training. Without an `eval:` block they are off (nothing runs).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from align.plumbing.argtypes import option_args
from align.plumbing.errors import UserError
from align.plumbing.files import file_sha256, read_yaml_mapping
from align.series.manifest import fingerprint
from align.series.spec import EvalConfig, Series
from align.series.stage_kind import Skip, Stage, StageCommand, align_cli, train_env
from align.series.stage_outputs import eval_dir, output_path, pretrained_checkpoint

# What each stage writes (its run card last), so a reset removes exactly these.
WRITES = {"base_eval": ("eval.run_card.json", "base_eval.json", "lm_eval"),
          "heldout_sft": ("heldout.run_card.json", "heldout.json"),
          "heldout_dpo": ("heldout.run_card.json", "heldout.json")}
FOLDERS = {"lm_eval"}  # the one folder among them (lm-eval's own files)
RESULT = {"base_eval": "base_eval.json", "heldout_sft": "heldout.json", "heldout_dpo": "heldout.json"}


class MeasureStage(Stage):
    """A judge-free measurement of the stage it `reads`: its folder, its result file, its run card last."""

    resources = "eval"
    unfingerprinted = ("--batch-size", "--device")

    def __init__(self, name: str, reads: str):
        self.name, self.reads = name, reads

    def outputs(self, series: Series, entry: str | None) -> list[Path]:
        return [eval_dir(series, entry, self.name)]

    def skip(self, series: Series, entry: str | None) -> Skip | None:
        """No `eval:` block: off, with a stand-in output fingerprint."""
        return Skip("off", fingerprint("eval off")) if series.eval is None else None

    def verify(self, series: Series, entry: str | None) -> str | None:
        """Complete once the run card (written last) and the result file are there: the result's hash."""
        out = eval_dir(series, entry, self.name)
        result = out / RESULT[self.name]
        return file_sha256(result) if result.is_file() and (out / WRITES[self.name][0]).is_file() else None

    def reset(self, series: Series, entry: str | None) -> None:
        """Remove what a previous run of the stage wrote (the run card first), nothing else in the folder: a
        name of ours that is a symbolic link, or a file where we write a folder (or the reverse), is refused,
        not removed."""
        out = eval_dir(series, entry, self.name)
        present = [out / name for name in WRITES[self.name] if (out / name).exists() or (out / name).is_symlink()]
        for path in present:  # all checked before any is removed
            if path.is_symlink() or path.is_dir() != (path.name in FOLDERS):
                what = "a symbolic link" if path.is_symlink() else "a folder" if path.is_dir() else "a file"
                raise UserError(f"{path}: {what}, not what {self.name} writes there: refusing to remove it before "
                                f"re-running {entry}'s {self.name}; move it away")
        for path in present:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    def inputs(self, series: Series, entry: str | None) -> list[str]:
        """Files a measurement reads (their content is part of its fingerprint): for `base_eval` every file
        under the include paths and the held-out text, for `heldout_*` its data file; only those that exist now
        (a prepared file counts through its prepare step, a hub dataset by its name in the arguments)."""
        e = series.eval or EvalConfig()
        if self.name != "base_eval":
            data = getattr(e, f"{self.name.split('_')[1]}_data")
            return [str(data)] if data and Path(data).is_file() else []
        found = sorted(str(f) for folder in e.include_path or [] for f in Path(folder).rglob("*")
                       if f.is_file())
        text = e.heldout_text
        return found + ([str(text)] if text and Path(text).is_file() else [])

    def command(self, series: Series, entry: str | None, *, resolve: bool = True, **_) -> StageCommand:
        """`align eval` on the entry's base checkpoint; `align heldout` on its DPO model (reference: its SFT
        model)."""
        if self.name == "base_eval":
            args = base_eval_args(series, entry, pretrained_checkpoint(series, entry, resolve))
        else:
            args = heldout_args(series, entry, self.name.split("_")[1],
                                *(str(output_path(series, entry, s)) for s in ("dpo", "sft")))
        return StageCommand(align_cli(), args, train_env(series))


MEASURE_STAGES = [MeasureStage("base_eval", reads="cpt"),  # the study's Table 1, before SFT
                  MeasureStage("heldout_sft", reads="dpo"),  # the final model on held-out SFT rows
                  MeasureStage("heldout_dpo", reads="dpo")]  # ... and on held-out preference pairs
MEASURES = {stage.name: stage for stage in MEASURE_STAGES}


def base_eval_args(series: Series, entry: str, model: str) -> list[str]:
    e = series.eval or EvalConfig()
    args = ["eval", "--model-path", model, "--out", str(eval_dir(series, entry, "base_eval"))]
    if e.tasks:
        args += ["--tasks", ",".join(map(str, e.tasks))]
    for folder in e.include_path or []:
        args += ["--include-path", str(folder)]
    if e.allow_code:
        args.append("--allow-code")  # the series file allows the task folders' Python helpers
    return args + option_args(vars(e), {"heldout_text": "--heldout-text", "limit": "--limit",
                                        "batch_size": "--batch-size", "device": "--device", "dtype": "--dtype"})


def dpo_beta(series: Series) -> float | None:
    """The DPO recipe's beta (the series' overrides first): the implicit reward is the one DPO trained."""
    overrides = series.dpo.get("overrides") or {}
    if overrides.get("beta") is not None:
        return overrides["beta"]
    return read_yaml_mapping(series.dpo["recipe"], "DPO recipe").get("beta")


def heldout_args(series: Series, entry: str, kind: str, model: str, reference: str) -> list[str]:
    e = series.eval or EvalConfig()
    data, rows = getattr(e, f"{kind}_data"), e.heldout_rows
    args = ["heldout", "--kind", kind, "--model-path", model, "--data", str(data), "--rows", str(rows),
            "--out", str(eval_dir(series, entry, f"heldout_{kind}"))]
    if kind == "dpo":
        args += ["--ref-model-path", reference]
        beta = e.beta if e.beta is not None else dpo_beta(series)
        args += ["--beta", str(beta)] if beta is not None else []
    return args + option_args(vars(e), {f"{kind}_split": "--split", "max_length": "--max-length",
                                        "heldout_batch_size": "--batch-size", "device": "--device",
                                        "dtype": "--dtype"})


def report_args(series: Series) -> list[str]:
    """`--base-eval NAME=DIR` / `--heldout NAME=DIR` for every entry whose evaluation is complete."""
    args = []
    for entry in series.models if series.eval is not None else []:
        for stage, flag in (("base_eval", "--base-eval"), ("heldout_sft", "--heldout"), ("heldout_dpo", "--heldout")):
            if MEASURES[stage].verify(series, entry.name) is not None:
                args += [flag, f"{entry.name}={eval_dir(series, entry.name, stage)}"]
    return args
