"""`align series FILE --dry-run`: the plan, a line per entry with each stage's label, and compute estimates.

A label is what the walk found ("done", "pending", "stale", "resume (running)", "waits (...)", ...) or the
reason a stage has nothing to run ("given", "off", "not needed", "none", "off (post_train)").
"""

from __future__ import annotations

from align.series.estimate import estimate_rows
from align.series.manifest import SERIES_KEY
from align.series.stages import ENTRY_STAGES


def print_plan(runner) -> None:
    """runner: walk.Runner after a dry walk."""
    s = runner.series
    print(f"series {s.name} ({s.file}) -> {s.output_dir}")
    stages = ENTRY_STAGES
    width = max(len(n) for n in runner.names + ["entry"]) + 2
    print("".join(h.ljust(w) for h, w in [("entry", width)] + [(st, 22) for st in stages]))
    for name in runner.names:
        cells = [runner.status.get((name, st), "pending") for st in stages]
        print(name.ljust(width) + "".join(c[:21].ljust(22) for c in cells))
    for step in s.prepare:
        print(f"prepare {step['name']}: {runner.status.get((SERIES_KEY, 'prepare:' + step['name']), 'pending')}")
    # the first judge's report, then each later judge of the `judge:` list: its judgments and its own report
    for stage in runner.series_end:
        print(f"{stage.name}: {runner.status.get((SERIES_KEY, stage.name), 'pending')}")
    print()
    print("compute estimates (6·N·D for training; DPO adds 2·N·D for the reference model; "
          "D = the series' `tokens`, else max_steps x global batch x max_length as an upper bound):")
    for row in estimate_rows(s, runner.names):
        print("  " + row)
