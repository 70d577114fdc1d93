"""The end of a series run: its exit status and its last lines, the `--only` rule among them.

A whole run: 0 when every entry is finished and every report is current (the table is printed), else 1 with
what is not finished. An `--only` run: 0 when every stage asked for is current (a job chain's `afterok`
fires), the rest not done said on a line of its own; 2 when a stage asked for could not start because an
input is neither current nor selected; 1 when one asked for, or an input it waits on, failed.
"""

from __future__ import annotations

import sys

from align.series.judge_stages import ReportStage, report_dir
from align.series.manifest import SERIES_KEY
from align.series.process import say
from align.series.stages import ACROSS_ENTRIES, ENTRY_STAGES, PIPELINE, SIDE_STAGES, STAGES, selected_stages


def report_problems(problems: list[str]) -> int:
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr, flush=True)
    return len(problems)


def plan_label(record: dict, decision: str) -> str:
    """A stage's label in the plan, from its manifest record and what the runner decided."""
    if decision == "skip":
        return "done"
    if decision == "blocked":
        return "not selected" if record.get("state") != "done" else "stale, not selected"
    if decision == "resume":
        return f"resume ({record.get('state')})"
    return "stale" if record.get("state") == "done" else "pending"


def outcome(runner) -> int:
    """The exit status of a run that was not a dry run (runner: walk.Runner, after its walk)."""
    if runner.only != selected_stages(None):
        return finish_selected(runner)
    s = runner.series
    missing = [n for n in runner.names if not finished(runner, n)]
    reports = [st for st in runner.series_end if isinstance(st, ReportStage)]
    report_ok = all((SERIES_KEY, st.name) in runner.outputs for st in reports)
    if report_ok:
        table = s.output_dir / "table.md"
        print("\n" + table.read_text(encoding="utf-8"), flush=True)
        say(f"report: {table} (+ table.csv, categories.png, report.html to browse every answer)")
        for judge in s.more_judges:
            say(f"report:{judge.name}: {report_dir(s, judge) / 'table.md'} (its table and its "
                "agreement with the first judge)")
    if missing or not report_ok:
        for name in missing:
            print(f"error: {name}: not finished: {runner.problems.get(name, 'see the manifest')}", file=sys.stderr)
        if not report_ok:
            print(f"error: report: not finished: {runner.problems.get(SERIES_KEY, 'no judged entry')}",
                  file=sys.stderr)
        print(f"series {s.name}: NOT everything finished; manifest: {runner.manifest.path}", file=sys.stderr)
        return 1
    say(f"series {s.name}: everything finished; manifest: {runner.manifest.path}")
    return 0


def finished(runner, name: str) -> bool:
    """Every stage of the entry is current: through the judge and its measures, or, for an entry with
    `post_train: false`, through its pretraining."""
    if not runner.series.entry(name).post_train:
        return all((name, st.name) in runner.outputs for st in PIPELINE[:PIPELINE.index(STAGES["sft"])])
    return all((name, st) in runner.outputs for st in [ENTRY_STAGES[-1], *(side.name for side in SIDE_STAGES)])


def entry_stages(runner, name: str) -> list[str]:
    """The stages that do work for an entry: not off (`post_train: false`), not skipped (given, absent, off)."""
    series = runner.series
    off_from = len(ENTRY_STAGES) if series.entry(name).post_train else ENTRY_STAGES.index("sft")
    return [st.name for st in PIPELINE + ACROSS_ENTRIES if ENTRY_STAGES.index(st.name) < off_from
            and st.skip(series, name) is None]


def run_stages(runner) -> list[tuple[str, str]]:
    """(key, stage) of everything this run covers: the prepare steps, the --models entries' stages, the
    series-wide ones."""
    keys = [(SERIES_KEY, f"prepare:{step['name']}") for step in runner.series.prepare]
    keys += [(name, st) for name in runner.names for st in entry_stages(runner, name)]
    return keys + [(SERIES_KEY, st.name) for st in runner.series_end]


def finish_selected(runner) -> int:
    """The end of an `--only` run (see the module's docstring)."""
    s = runner.series
    covered = run_stages(runner)
    asked = [k for k in covered if k[1].split(":")[0] in runner.only]
    missing = [k for k in asked if k not in runner.outputs]
    rest = [k for k in covered if k not in asked and k not in runner.outputs]
    only = ",".join(st for st in ["prepare", *STAGES] if st in runner.only)
    if rest:
        say(f"not done (not selected by --only): {listing(rest)}")
    if not missing:
        say(f"series {s.name}: --only {only}: every stage asked for is done; manifest: {runner.manifest.path}")
        return 0
    if not runner.failed and runner.unselected_inputs:
        unselected = runner.unselected_inputs
        causes = listing([k for k in unselected if unselected[k] == "not done"])
        stale = listing([k for k in unselected if unselected[k] == "stale"])
        print(f"error: --only {only}: cannot run {listing(missing)}: input(s) not current and not selected by "
              f"--only: {'; '.join(filter(None, [causes, stale and f'stale: {stale}']))}; run them first or add "
              "them to --only", file=sys.stderr, flush=True)
        return 2
    for key, stage in missing:
        print(f"error: {key} {stage}: not done: {runner.problems.get(key, 'see the manifest')}", file=sys.stderr)
    print(f"series {s.name}: --only {only}: NOT every stage asked for finished; manifest: {runner.manifest.path}",
          file=sys.stderr, flush=True)
    return 1


def listing(keys: list[tuple[str, str]]) -> str:
    """[(entry, stage), ...] -> "entry: stage, stage; report" (in the order given; series-wide stages by name)."""
    grouped: dict[str, list[str]] = {}
    for key, stage in keys:
        grouped.setdefault(key, []).append(stage)
    return "; ".join(", ".join(stages) if key == SERIES_KEY else f"{key}: {', '.join(stages)}"
                     for key, stages in grouped.items())
