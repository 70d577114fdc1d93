"""The walk of a series' stage table (stages.py): per-entry stages entry by entry, each one's output the next
one's upstream; the first judge once over every entry; the series-wide stages (reports, later judges) last.
Running and recording one stage is stage_run.py's; how the run ended is finish.py's.
"""

from __future__ import annotations

from align.series import finish
from align.series.eval_preflight import EVAL_STAGES, eval_problems
from align.series.manifest import SERIES_KEY
from align.series.stage_outputs import checkpoint_fingerprint
from align.series.stage_run import CommandFactory, StageExecutor, StageRunner, own_command
from align.series.stages import ACROSS_ENTRIES, ENTRY_STAGES, PIPELINE, SIDE_STAGES, STAGES, PrepareStage, Stage

__all__ = ["CommandFactory", "Runner", "StageExecutor", "own_command"]


class Runner(StageRunner):
    """A series run (or, with `dry`, its plan): the walk, then finish.outcome's exit status."""

    def run(self) -> int:
        s = self.series
        if self.run_prepare():
            # the measures' files a prepare step made, checked before anything trains (by the prepare job itself
            # when it runs alone: its exit status then holds back the jobs after it)
            measures = set(EVAL_STAGES) if "prepare" in self.only else set()
            if not self.dry and finish.report_problems(eval_problems(s, self.only | measures, prepared=True)):
                return 2
            for name in self.names:
                self.run_entry(name)
        else:
            for name in self.names:
                self.problems.setdefault(name, "prepare did not finish")
        for stage in ACROSS_ENTRIES:
            self.run_across_entries(stage)
        for stage in self.series_end:
            self.run_series_end(stage)
        if self.dry:
            return 0
        return finish.outcome(self)

    def run_prepare(self) -> bool:
        """Series-wide steps (the demo's data and question subset), run before any entry."""
        for stage in [st for st in self.table.values() if isinstance(st, PrepareStage)]:
            out = self.run_stage(stage, [(None, self.fingerprint(stage, None, stage.step["outputs"]))]).get(None)
            if out is None and not self.dry:
                return False
            self.prepared.append((stage.files, out or "pending"))
        return True

    def made_by(self, source: str) -> str:
        """The stage whose output a `grow: from:` another entry reads: its cpt when it has one, else its base."""
        return "cpt" if STAGES["cpt"].skip(self.series, source) is None else "base"

    def source_output(self, name: str) -> str | None:
        """The fingerprint of what an entry's base is built from: another entry's base (a grow: its cpt
        output, when it has a cpt stage) or a given path."""
        s, entry = self.series, self.series.entry(name)
        source = entry.source
        if source is None or not s.is_entry(source):
            return None if source is None else checkpoint_fingerprint(source)
        stage = self.made_by(source) if entry.grow else "base"
        given = STAGES["base"].skip(s, source) if stage == "base" else None
        return (given and given.output) or self.outputs.get((source, stage)) or self.recorded_output(source, stage)

    def run_entry(self, name: str) -> None:
        """The entry's stages in order, each one's output the next one's upstream; stops at the first not done."""
        upstream, why = self.source_output(name), f"its source entry {self.series.entry(name).source} has no base yet"
        for stage in PIPELINE:
            if stage.name == "sft" and not self.series.entry(name).post_train:  # pretrained only (an ancestor)
                for later in ENTRY_STAGES[ENTRY_STAGES.index("sft"):]:
                    self.status[(name, later)] = "off (post_train)"
                return
            if stage.reads:
                self.run_side(stage, name)
                continue
            skip = stage.skip(self.series, name)
            if skip is not None:
                # absent (no `cpt:`): the next stage reads what this one would; given: its output stands in
                self.status[(name, stage.name)] = skip.label
                upstream = skip.output or upstream
                if upstream is not None:
                    self.outputs[(name, stage.name)] = upstream
                continue
            if upstream is None:
                source = self.series.entry(name).source
                if stage.name == "base" and source not in self.names:  # outside --models: an input not selected
                    made_by = self.made_by(source) if self.series.entry(name).grow else "base"
                    self.unselected_inputs[(source, made_by)] = "not done"
                return self.block(name, stage.name, why)
            upstream = self.run_stage(stage, [(name, self.fingerprint(stage, name, upstream))]).get(name)
            why = f"{stage.name} not done"
        if upstream is None:
            self.block(name, ENTRY_STAGES[len(PIPELINE)], why)

    def run_side(self, stage: Stage, name: str) -> None:
        """A measurement of the stage it reads: run when that output is current; the chain goes on either way."""
        skip = stage.skip(self.series, name)
        if skip is not None:  # switched off (no `eval:` block)
            self.outputs[(name, stage.name)], self.status[(name, stage.name)] = skip.output, skip.label
            return
        read = self.outputs.get((name, stage.reads))
        if read is None:
            self.status.setdefault((name, stage.name), "pending" if self.dry else f"waits ({stage.reads} not done)")
            return
        self.run_stage(stage, [(name, self.fingerprint(stage, name, read))])

    def recorded_output(self, entry: str, stage: str) -> str | None:
        """An entry outside this run's selection: trust its manifest record if its outputs still verify."""
        skip = STAGES[stage].skip(self.series, entry)
        if skip is not None and skip.output is not None:
            return skip.output
        rec = self.manifest.get(entry, stage)
        if rec.get("state") == "done" and STAGES[stage].verify(self.series, entry) == rec.get("output_fingerprint"):
            return rec.get("output_fingerprint")
        return None

    def judged(self, name: str) -> bool:
        return (name, "judge") in self.outputs or self.recorded_output(name, "judge") is not None

    def block(self, name: str, stage: str, why: str) -> None:
        """Mark `stage` and everything after it in the entry's pipeline as waiting on `why`."""
        for later in ENTRY_STAGES[ENTRY_STAGES.index(stage):]:
            self.status.setdefault((name, later), "pending" if self.dry else f"waits ({why})")

    def run_across_entries(self, stage: Stage) -> None:
        """A batched stage: one command for every entry whose outputs are missing or stale."""
        before = ENTRY_STAGES[ENTRY_STAGES.index(stage.name) - 1]
        work = []
        for name in self.names:
            if (name, before) not in self.outputs:
                continue
            skip = stage.skip(self.series, name)
            if skip is not None:  # nothing to run for this entry (e.g. no pairwise match)
                self.outputs[(name, stage.name)], self.status[(name, stage.name)] = skip.output, skip.label
                continue
            work.append((name, self.fingerprint(stage, name, self.outputs[(name, before)])))
        self.run_stage(stage, work)

    def run_series_end(self, stage: Stage) -> None:
        """A series-wide stage after the entries (a report, a later judge): over every entry of the series with
        current judgments (also ones outside --models), once the series-wide stages it needs are current."""
        waiting = [need for need in stage.needs if (SERIES_KEY, need) not in self.outputs]
        if waiting:  # a later judge's report: its judge's judgments first
            self.status[(SERIES_KEY, stage.name)] = "pending" if self.dry else "waits (judgments)"
            self.problems.setdefault(SERIES_KEY, f"{stage.name}: its judge's judgments are not complete")
            return
        last = ENTRY_STAGES[-1]
        fps = {e.name: self.outputs.get((e.name, last)) or self.recorded_output(e.name, last)
               for e in self.series.models}
        # judged: its single judgments current too (an entry without a pairwise match has that stage skipped)
        fps = {n: f for n, f in fps.items() if f and self.judged(n)}
        if not fps:
            self.status[(SERIES_KEY, stage.name)] = "pending" if self.dry else "waits (nothing judged)"
            self.problems.setdefault(SERIES_KEY, f"nothing judged: no entry's judgments are complete, so there is "
                                                 f"nothing to report (see the judge log in {self.series.output_dir})")
            return
        models = [(e.name, e.size, e.construction) for e in self.series.models]
        # the judge-free measures of every entry, as far as they are done, are in the report too
        measured = [(e.name, st.name, self.outputs.get((e.name, st.name)) or self.recorded_output(e.name, st.name))
                    for e in self.series.models for st in SIDE_STAGES]
        self.run_stage(stage, [(None, self.fingerprint(stage, None, [sorted(fps.items()), models, measured]))])
