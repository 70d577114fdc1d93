"""The stage table of a series: every stage it runs, in order, each an instance of its kind (stage_kind.py).

    prepare:<name>      the series file's `prepare:` steps (data, question subsets), once, before the entries
    base cpt base_eval sft dpo heldout_sft heldout_dpo answer      per entry, in this order (checkpoint_stages.py,
                                                                   eval_stages.py, judge_stages.py)
    judge pairwise      the first judge, once over every entry that needs it (judge_stages.py)
    report              the first judge's table
    judge:<name> pairwise:<name> report:<name>     each later judge of a `judge:` list, and its report

Every command is `align <verb> ...` through the CLI; training verbs run under the series' launcher (python,
accelerate, slurm). Adding a stage means adding one entry to STAGES (or to `stage_table`); the runner walks
the table in order.
"""

from __future__ import annotations

import sys
from pathlib import Path

from align.plumbing.errors import UserError
from align.plumbing.files import file_sha256
from align.series.checkpoint_stages import BaseStage, CptStage, TrainingStage
from align.series.eval_stages import MEASURES
from align.series.judge_stages import AnswerStage, JudgeStage, ReportStage, later_judge_stages
from align.series.manifest import fingerprint
from align.series.spec import Series
from align.series.stage_kind import Skip, Stage, StageCommand, align_cli
from align.series.stage_outputs import output_path, scratch_baseline

__all__ = ["ACROSS_ENTRIES", "ENTRY_STAGES", "PIPELINE", "SIDE_STAGES", "STAGES", "PrepareStage", "Skip",
           "Stage", "StageCommand", "output_path", "prepare_stages", "scratch_baseline", "selected_stages",
           "stage_table"]


class PrepareStage(Stage):
    """A series file's `prepare:` step as a stage run once before the entries; complete once every file it
    lists is there. Its command's first word `python` or `align` runs this interpreter / the align CLI."""

    per_entry = False

    def __init__(self, step: dict):
        self.step, self.name = step, f"prepare:{step['name']}"
        self.files = [Path(f) for f in step["outputs"]]

    def outputs(self, series: Series, entry: str | None) -> list[Path]:
        return self.files

    def verify(self, series: Series, entry: str | None) -> str | None:
        return fingerprint([file_sha256(f) for f in self.files]) if all(f.is_file() for f in self.files) else None

    def command(self, series: Series, entry: str | None, **_) -> StageCommand:
        raw = [str(a) for a in self.step["command"]]
        if raw[0] == "align":
            return StageCommand(align_cli(), raw[1:])
        return StageCommand([sys.executable] if raw[0] == "python" else raw[:1], raw[1:])


# The built-in stages, the same for every series (the first judge reads the series' `judge:` when it runs).
STAGES: dict[str, Stage] = {stage.name: stage for stage in [
    BaseStage(),            # grow / init: built from another entry or a path; an entry with `path:` has it given
    CptStage(),             # continued pretraining (entries with a `cpt:` block); SFT starts from its output
    MEASURES["base_eval"],  # the study's Table 1, before SFT
    TrainingStage("sft"),
    TrainingStage("dpo"),
    MEASURES["heldout_sft"],  # the final model on held-out SFT rows
    MEASURES["heldout_dpo"],  # ... and on held-out preference pairs
    AnswerStage(),
    JudgeStage("judge"),
    # judge.mode pairwise: each non-scratch entry against the same-size scratch entry. No reset: the
    # judge's cache is keyed on the whole prompts (both answers), so only changed matches are paid for.
    JudgeStage("pairwise"),
    ReportStage(),
]}


# Per-entry stages run entry by entry, in table order; batched ones once over all entries after them;
# series-wide ones (the reports, the later judges) last.
PIPELINE = [st for st in STAGES.values() if st.per_entry and not st.batched]
ACROSS_ENTRIES = [st for st in STAGES.values() if st.per_entry and st.batched]
ENTRY_STAGES = [st.name for st in PIPELINE + ACROSS_ENTRIES]
SIDE_STAGES = [st for st in PIPELINE if st.reads]  # measurements: read one stage's output, feed only the report


def prepare_stages(series: Series) -> list[PrepareStage]:
    return [PrepareStage(step) for step in series.prepare]


def stage_table(series: Series) -> dict[str, Stage]:
    """Every stage of this series, in the order the runner walks them: its prepare steps, the built-in stages,
    then each later judge's judgments and report."""
    later = [stage for judge in series.more_judges for stage in later_judge_stages(series, judge)]
    return {stage.name: stage for stage in [*prepare_stages(series), *STAGES.values(), *later]}


STAGE_ALIASES = {"grow": "base", "init": "base"}


def selected_stages(only: str | None) -> set[str]:
    """`--only prepare,grow,sft` -> the stage names it selects (all when not given)."""
    names = ["prepare", *STAGES]
    if not only:
        return set(names)
    chosen = set()
    for word in only.split(","):
        word = STAGE_ALIASES.get(word.strip(), word.strip())
        if word not in names:
            raise UserError(f"--only: unknown stage {word!r} (stages: {', '.join(names)}; grow = base)")
        chosen.add(word)
    return chosen
