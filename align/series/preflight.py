"""`align series FILE --dry-run`: the training checks for every recipe the series runs.

Each CPT/SFT/DPO stage's command line (recipe + the series' overrides) goes through the same checks
as `align sft|dpo --dry_run true`, except the model: a stage's model is often built by an earlier
stage. A problem shared by several stages is reported once, naming them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from align.series.spec import Series
from align.series.stages import STAGES


def recipe_problems(series: Series, names: list[str]) -> dict[str, list[str]]:
    """problem line -> the stages ("entry/sft") it concerns."""
    from align.train.checks import check_recipe

    produced = frozenset(str(Path(out)) for step in series.prepare for out in step["outputs"])
    found: dict[str, list[str]] = {}
    for name in names:
        for stage in ("cpt", "sft", "dpo"):
            if STAGES[stage].skip(series, name) is not None:  # no `cpt:` block
                continue
            args = STAGES[stage].command(series, name, resolve=False).args[1:]  # the recipe command line
            for problem in check_recipe(stage, args, check_model=False, produced=produced):
                found.setdefault(problem, []).append(f"{name}/{stage}")
    return found


def report_recipe_problems(series: Series, names: list[str]) -> int:
    """Print one line per problem; the number of problems."""
    found = recipe_problems(series, names)
    for problem, stages in found.items():
        print(f"error: {problem} (in {', '.join(stages)})", file=sys.stderr, flush=True)
    return len(found)
