"""`align series FILE`: every entry through base -> sft -> dpo -> answer, one judge call (and one pairwise
call with judge.mode pairwise), one report.

What a stage is comes from the stage table (stages.py); this module only walks it. Each stage is
a subprocess (`align <verb> ...`) with its output in `<output_dir>/<entry>/` and its log in
`<output_dir>/<entry>/<stage>.log`. The manifest records each stage's input
fingerprint and output fingerprint; a re-run skips what is current, redoes what changed (and,
through the fingerprints, everything downstream), and resumes what was interrupted. A stage
is done only once its outputs are verified.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from align.plumbing.errors import UserError
from align.plumbing.files import file_sha256
from align.plumbing.redact import redact_argv
from align.plumbing.runcard import utc_timestamp
from align.series import more_judges
from align.series.estimate import estimate_rows
from align.series.eval_preflight import EVAL_STAGES, eval_problems
from align.series.manifest import SERIES_KEY, Manifest, RunLock, fingerprint
from align.series.more_judges import judge_stages
from align.series.process import run_logged, say, tail_lines
from align.series.requeue import Preempted, raise_preempted, requeue_this_job
from align.series.spec import PACKAGED_PREFIX, Series, load_series, parse_models
from align.series.stage_outputs import checkpoint_fingerprint
from align.series.stages import (
    STAGES,
    Stage,
    StageCommand,
    build_command,
    prepare_stage,
    selected_stages,
)
from judges.api.client import resolve_api_key


def add_arguments(parser) -> None:
    parser.add_argument("series_file", help="series YAML (see recipes/series/)")
    parser.add_argument("--only", help="comma-separated stages to run: "
                                       "prepare,base (grow),cpt,base_eval,sft,dpo,heldout_sft,heldout_dpo,answer,judge,"
                                       "pairwise,report")
    parser.add_argument("--models", help="comma-separated entry names (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and compute estimates; run nothing")
    parser.add_argument("--submit", choices=["slurm"], help="slurm: a job per stage with the `cluster:` block's "
                                                           "resources (with --dry-run: print the job graph)")


# (stage, series, entry, *, resume, resolve, batch) -> the command to run; tests pass stand-ins
CommandFactory = Callable[..., StageCommand]
# (command, log, label, lock_fd) -> exit status: runs one stage's command, its output appended to the log; the
# default is a subprocess in its own process group (process.run_logged); tests run stand-in stages in-process
StageExecutor = Callable[[StageCommand, Path, str, "int | None"], int]
# Per-entry stages run entry by entry, in table order; batched ones once over all entries after them;
# series-wide ones (the report) last.
PIPELINE = [st for st in STAGES.values() if st.per_entry and not st.batched]
ACROSS_ENTRIES = [st for st in STAGES.values() if st.per_entry and st.batched]
SERIES_END = [st for st in STAGES.values() if not st.per_entry]
ENTRY_STAGES = [st.name for st in PIPELINE + ACROSS_ENTRIES]
SIDE_STAGES = [st for st in PIPELINE if st.reads]  # measurements: read one stage's output, feed only the report


def run(args, commands: CommandFactory = build_command, execute: StageExecutor = run_logged) -> int:
    series = load_series(args.series_file)
    only = selected_stages(args.only)
    names = parse_models(series, args.models)
    if args.submit:
        from align.series.slurm_submit import submit

        if args.only:
            raise UserError("--submit slurm submits every stage that is not done; --only is for one job's stage")
        if report_problems(eval_problems(series, only)):  # before any job is queued
            return 2
        planned = Runner(series, selected_stages(None), names, dry=True, commands=commands)
        planned.run()  # what is done, what is not
        return submit(series, names, planned.status, dry=args.dry_run)
    if args.dry_run:
        runner = Runner(series, only, names, dry=True, commands=commands)
        runner.run()
        print_plan(runner)
        from align.series.preflight import report_recipe_problems  # loads TRL: only for a dry run

        recipe_problems = report_recipe_problems(series, names)
        return 2 if report_problems(eval_problems(series, only)) or recipe_problems else 0
    if "judge" in only:
        check_judge_key(series)
    if report_problems(eval_problems(series, only)):  # seconds now, not after SFT and DPO
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` / scancel: stop the stage cleanly too
    signal.signal(signal.SIGUSR1, raise_preempted)  # Slurm's --signal=B:USR1@LEAD: checkpoint, then requeue
    with RunLock(series.output_dir) as lock:
        try:
            return Runner(series, only, names, lock_fd=lock.fh.fileno(), commands=commands, execute=execute).run()
        except Preempted:
            return requeue_this_job()
        except KeyboardInterrupt:
            print(f"interrupted: re-run the same command to resume (manifest: {series.output_dir / 'manifest.json'})",
                  file=sys.stderr, flush=True)
            return 130


def report_problems(problems: list[str]) -> int:
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr, flush=True)
    return len(problems)


def check_judge_key(series: Series) -> None:
    """A served judge's key is checked before days of training, not when the judge stage starts."""
    for judge in [series.judge, *series.more_judges]:
        model = str(judge["model"])
        if model.startswith(PACKAGED_PREFIX) or Path(model).expanduser().is_dir():
            continue  # a local judge: served on loopback, no key
        resolve_api_key("OPENAI_API_KEY", judge.get("base_url"), flag=f"{series.file}: judge:")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Runner:
    def __init__(self, series: Series, only: set[str], names: list[str], *, dry: bool = False,
                 lock_fd: int | None = None, commands: CommandFactory = build_command,
                 execute: StageExecutor = run_logged):
        self.series = series
        self.execute = execute
        self.lock_fd = lock_fd
        self.only = only
        self.names = names
        self.dry = dry
        self.commands = commands
        self.manifest = Manifest.load(series.output_dir)
        self.outputs: dict[tuple[str, str], str] = {}   # (key, stage) -> output fingerprint, when current
        self.status: dict[tuple[str, str], str] = {}    # for the plan / summary
        self.problems: dict[str, str] = {}              # key -> why it stopped
        self.prepared: list[tuple[list[Path], str]] = []  # (a prepare step's output files, its output fp)
        # --only: stages not selected and not current that stopped a chain (key, stage) -> "not done" / "stale"
        self.unselected_inputs: dict[tuple[str, str], str] = {}
        self.failed: set[tuple[str, str]] = set()        # stages that ran in this run and did not finish

    # ------------------------------------------------------------------ one stage
    @staticmethod
    def key(stage: Stage, entry: str | None) -> str:
        """The manifest's name for where a stage's record lives: its entry, or the series."""
        return entry if stage.per_entry else SERIES_KEY

    def fingerprint(self, stage: Stage, entry: str | None, upstream) -> str:
        """What a stage's outputs depend on: its arguments (references unresolved), the content of the
        files it reads, its upstream output and the prepare steps whose files it names."""
        args = self.commands(stage, self.series, entry, resolve=False).args
        kept = [a for i, a in enumerate(args)
                if a not in stage.unfingerprinted and (i == 0 or args[i - 1] not in stage.unfingerprinted)]
        files = [file_sha256(f) for f in stage.inputs(self.series, entry)]
        outputs = stage.outputs(self.series, entry)  # the report's --out-dir holds every prepared file
        return fingerprint(kept, files, upstream, self.prepared_inputs([a for a in args if Path(a) not in outputs]))

    def decide(self, key: str, entry: str | None, stage: Stage, fp: str) -> str:
        """skip (current) / resume / fresh / blocked (not selected and not current)."""
        rec = self.manifest.get(key, stage.name)
        if rec.get("fingerprint") == fp and rec.get("state") == "done":
            out = stage.verify(self.series, entry)
            if out is not None and out == rec.get("output_fingerprint"):
                self.outputs[(key, stage.name)] = out
                return "skip"
        if stage.name.split(":")[0] not in self.only:
            return "blocked"
        if rec.get("fingerprint") == fp and rec.get("state") in ("running", "failed"):
            return "resume"
        return "fresh"

    def plan_label(self, key: str, stage: str, decision: str) -> str:
        rec = self.manifest.get(key, stage)
        if decision == "skip":
            return "done"
        if decision == "blocked":
            return "not selected" if rec.get("state") != "done" else "stale, not selected"
        if decision == "resume":
            return f"resume ({rec.get('state')})"
        return "stale" if rec.get("state") == "done" else "pending"

    def log_path(self, stage: Stage, entry: str | None) -> Path:
        """<output_dir>/<entry>/<stage>.log; series-wide and batched stages log in <output_dir>."""
        folder = self.series.output_dir / (entry if stage.per_entry and not stage.batched else "")
        return folder / f"{stage.name.replace(':', '-')}.log"

    def run_stage(self, stage: Stage, work: list[tuple[str | None, str]]) -> dict[str | None, str]:
        """Bring `stage` up to date for each (entry, fingerprint) in `work`: skip what is current,
        run the rest (one command for all of them when the stage is batched, else `work` is one item).
        Returns the output fingerprints of the entries whose outputs are now current."""
        done, todo = {}, []
        for entry, fp in work:
            key = self.key(stage, entry)
            decision = self.decide(key, entry, stage, fp)
            self.status[(key, stage.name)] = self.plan_label(key, stage.name, decision)
            if decision == "skip":
                done[entry] = self.outputs[(key, stage.name)]
                if not self.dry:
                    say(f"{key} {stage.name}: done, skipped")
            elif self.dry:
                continue
            elif decision == "blocked":
                self.problems.setdefault(key, f"{stage.name} is not done and not selected by --only")
                if not stage.reads:  # a measurement feeds no later stage
                    self.unselected_inputs[(key, stage.name)] = "stale" if "stale" in self.status[(key, stage.name)] \
                        else "not done"
                say(f"{key} {stage.name}: not done and not selected by --only" + ("" if stage.reads else
                                                                                  f"; {key} stops here"))
            elif decision == "resume" and (out := stage.verify(self.series, entry)) is not None:
                # it finished, but the runner died before recording it
                self.manifest.update(key, stage.name, state="done", output_fingerprint=out, finished=utc_timestamp())
                say(f"{key} {stage.name}: finished in an earlier run, outputs verified")
                self.outputs[(key, stage.name)] = done[entry] = out
            else:
                resume = decision == "resume" and stage.resumable(self.series, entry)
                if not resume:
                    stage.reset(self.series, entry)  # a fresh start must not pick up stale outputs
                todo.append((entry, fp, resume))
        if todo:
            done.update(self.record_run(stage, todo))
        return done

    def record_run(self, stage: Stage, todo: list[tuple[str | None, str, bool]]) -> dict[str | None, str]:
        """The one place a stage's run is recorded: `running` with its argv, then the command, then
        `done` for each entry whose outputs verify, `failed` (with the log's tail shown) for the rest."""
        entries = [entry for entry, _, _ in todo]
        resume = all(resumed for _, _, resumed in todo)
        cmd = self.commands(stage, self.series, entries[0], resume=resume,
                            batch=entries if stage.batched else None)
        log = self.log_path(stage, entries[0])
        for entry, fp, resumed in todo:
            key = self.key(stage, entry)
            attempts = self.manifest.get(key, stage.name).get("attempts", 0) + 1
            self.manifest.update(key, stage.name, state="running", fingerprint=fp, argv=redact_argv(cmd.argv),
                                 log=str(log), started=utc_timestamp(), attempts=attempts, resumed=resumed,
                                 error=None)
        first = self.key(stage, entries[0])
        label = f"{stage.name}: {', '.join(entries)}" if stage.batched else f"{first} {stage.name}"
        say(f"{label}: {'resuming' if resume else 'running'} (log: {log})")
        started = time.time()
        rc = self.execute(cmd, log, label, self.lock_fd)
        wall = round(time.time() - started, 1)
        done = {}
        for entry in entries:
            key = self.key(stage, entry)
            out = stage.verify(self.series, entry)
            # a batched command's exit status speaks for all its entries: each one's outputs decide
            if out is None or (rc != 0 and not stage.batched):
                why = f"exit status {rc}" if rc != 0 else "its outputs are incomplete"
                self.manifest.update(key, stage.name, state="failed", error=why, finished=utc_timestamp(),
                                     wall_s=wall)
                self.failed.add((key, stage.name))
                self.fail(key, f"{key}: stage {stage.name} failed ({why}); see {log}", log)
                continue
            self.manifest.update(key, stage.name, state="done", output_fingerprint=out, finished=utc_timestamp(),
                                 wall_s=wall, outputs=[str(p) for p in stage.outputs(self.series, entry)])
            self.outputs[(key, stage.name)] = done[entry] = out
        if done:
            say(f"{label}: done in {wall:.0f} s")
        return done

    def fail(self, key: str, message: str, log: Path | None = None) -> None:
        self.problems[key] = message
        print(f"error: {message}", file=sys.stderr, flush=True)
        for line in tail_lines(log) if log else []:
            print(f"    | {line[:200]}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ the series
    def run(self) -> int:
        s = self.series
        if self.run_prepare():
            # the measures' files a prepare step made, checked before anything trains (by the prepare job itself
            # when it runs alone: its exit status then holds back the jobs after it)
            measures = set(EVAL_STAGES) if "prepare" in self.only else set()
            if not self.dry and report_problems(eval_problems(s, self.only | measures, prepared=True)):
                return 2
            for name in self.names:
                self.run_entry(name)
        else:
            for name in self.names:
                self.problems.setdefault(name, "prepare did not finish")
        for stage in ACROSS_ENTRIES:
            self.run_across_entries(stage)
        for stage in SERIES_END:
            self.run_series_end(stage)
        self.run_more_judges()
        if self.dry:
            return 0
        if self.only != selected_stages(None):
            return self.finish_selected()
        missing = [n for n in self.names if not self.finished(n)]
        report_ok = (SERIES_KEY, "report") in self.outputs and all(
            (SERIES_KEY, f"report:{j['name']}") in self.outputs for j in s.more_judges)
        if report_ok:
            table = s.output_dir / "table.md"
            print("\n" + table.read_text(encoding="utf-8"), flush=True)
            say(f"report: {table} (+ table.csv, categories.png, report.html to browse every answer)")
            for judge in s.more_judges:
                say(f"report:{judge['name']}: {more_judges.report_dir(s, judge) / 'table.md'} (its table and its "
                    "agreement with the first judge)")
        if missing or not report_ok:
            for name in missing:
                print(f"error: {name}: not finished: {self.problems.get(name, 'see the manifest')}", file=sys.stderr)
            if not report_ok:
                print(f"error: report: not finished: {self.problems.get(SERIES_KEY, 'no judged entry')}",
                      file=sys.stderr)
            print(f"series {s.name}: NOT everything finished; manifest: {self.manifest.path}", file=sys.stderr)
            return 1
        say(f"series {s.name}: everything finished; manifest: {self.manifest.path}")
        return 0

    # ------------------------------------------------------------------ --only
    def entry_stages(self, name: str) -> list[str]:
        """The stages that do work for an entry: not off (`post_train: false`), not given, not absent."""
        off_from = len(ENTRY_STAGES) if self.series.entry(name).post_train else ENTRY_STAGES.index("sft")
        return [st.name for st in PIPELINE + ACROSS_ENTRIES if ENTRY_STAGES.index(st.name) < off_from
                and st.applies(self.series, name) and st.given(self.series, name) is None]

    def run_stages(self) -> list[tuple[str, str]]:
        """(key, stage) of everything this run covers: the prepare steps, the --models entries' stages, the
        series-wide ones."""
        keys = [(SERIES_KEY, f"prepare:{step['name']}") for step in self.series.prepare]
        keys += [(name, st) for name in self.names for st in self.entry_stages(name)]
        keys += [(SERIES_KEY, "report")]
        return keys + [(SERIES_KEY, st.name) for judge in self.series.more_judges
                       for st in judge_stages(self.series, judge)]

    def finish_selected(self) -> int:
        """The end of an `--only` run: 0 when every stage asked for is current (a job chain's `afterok` fires),
        the rest not done said on a line of its own; 2 when a stage asked for could not start because an input
        is neither current nor selected; 1 when one asked for, or an input it waits on, failed."""
        s = self.series
        covered = self.run_stages()
        asked = [k for k in covered if k[1].split(":")[0] in self.only]
        missing = [k for k in asked if k not in self.outputs]
        rest = [k for k in covered if k not in asked and k not in self.outputs]
        only = ",".join(st for st in ["prepare", *STAGES] if st in self.only)
        if rest:
            say(f"not done (not selected by --only): {listing(rest)}")
        if not missing:
            say(f"series {s.name}: --only {only}: every stage asked for is done; manifest: {self.manifest.path}")
            return 0
        if not self.failed and self.unselected_inputs:
            causes = listing([k for k in self.unselected_inputs if self.unselected_inputs[k] == "not done"])
            stale = listing([k for k in self.unselected_inputs if self.unselected_inputs[k] == "stale"])
            print(f"error: --only {only}: cannot run {listing(missing)}: input(s) not current and not selected by "
                  f"--only: {'; '.join(filter(None, [causes, stale and f'stale: {stale}']))}; run them first or add "
                  "them to --only", file=sys.stderr, flush=True)
            return 2
        for key, stage in missing:
            print(f"error: {key} {stage}: not done: {self.problems.get(key, 'see the manifest')}", file=sys.stderr)
        print(f"series {s.name}: --only {only}: NOT every stage asked for finished; manifest: {self.manifest.path}",
              file=sys.stderr, flush=True)
        return 1

    def run_prepare(self) -> bool:
        """Series-wide steps (the demo's data and question subset), run before any entry."""
        for step in self.series.prepare:
            stage = prepare_stage(step)
            out = self.run_stage(stage, [(None, self.fingerprint(stage, None, step["outputs"]))]).get(None)
            if out is None and not self.dry:
                return False
            self.prepared.append(([Path(p) for p in step["outputs"]], out or "pending"))
        return True

    def prepared_inputs(self, args: list[str]) -> list[str]:
        """Output fingerprints of the prepare steps a stage reads: one of its arguments names a
        prepared file or a directory holding one (so new questions do not re-run training)."""
        paths = [Path(a) for a in args if "/" in a]
        return [fp for outputs, fp in self.prepared
                if any(o == a or a in o.parents for o in outputs for a in paths)]

    def source_output(self, name: str) -> str | None:
        """The fingerprint of what an entry's base is built from: another entry's base (a grow: its cpt
        output, when it has a cpt stage) or a given path."""
        s, entry = self.series, self.series.entry(name)
        source = entry.source
        if source is None or not s.is_entry(source):
            return None if source is None else checkpoint_fingerprint(source)
        stage = "cpt" if entry.grow and STAGES["cpt"].applies(s, source) else "base"
        return ((STAGES[stage].given(s, source) if stage == "base" else None) or self.outputs.get((source, stage))
                or self.recorded_output(source, stage))

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
            if not stage.applies(self.series, name):  # e.g. no `cpt:`: the next stage reads what this one would
                self.status[(name, stage.name)] = "none"
                if upstream is not None:
                    self.outputs[(name, stage.name)] = upstream
                continue
            given = stage.given(self.series, name)
            if given is not None:
                self.outputs[(name, stage.name)], self.status[(name, stage.name)] = given, "given"
                upstream = given
                continue
            if upstream is None:
                source = self.series.entry(name).source
                if stage.name == "base" and source not in self.names:  # outside --models: an input not selected
                    made_by = "cpt" if self.series.entry(name).grow and STAGES["cpt"].applies(self.series, source) \
                        else "base"
                    self.unselected_inputs[(source, made_by)] = "not done"
                return self.block(name, stage.name, why)
            upstream = self.run_stage(stage, [(name, self.fingerprint(stage, name, upstream))]).get(name)
            why = f"{stage.name} not done"
        if upstream is None:
            self.block(name, ENTRY_STAGES[len(PIPELINE)], why)

    def finished(self, name: str) -> bool:
        """Every stage of the entry is current: through the judge and its measures, or, for an entry with
        `post_train: false`, through its pretraining."""
        if not self.series.entry(name).post_train:
            return all((name, st.name) in self.outputs for st in PIPELINE[:PIPELINE.index(STAGES["sft"])])
        return all((name, st) in self.outputs for st in [ENTRY_STAGES[-1], *(side.name for side in SIDE_STAGES)])

    def run_side(self, stage: Stage, name: str) -> None:
        """A measurement of the stage it reads: run when that output is current; the chain goes on either way."""
        given = stage.given(self.series, name)
        if given is not None:  # switched off (no `eval:` block)
            self.outputs[(name, stage.name)], self.status[(name, stage.name)] = given, "off"
            return
        read = self.outputs.get((name, stage.reads))
        if read is None:
            self.status.setdefault((name, stage.name), "pending" if self.dry else f"waits ({stage.reads} not done)")
            return
        self.run_stage(stage, [(name, self.fingerprint(stage, name, read))])

    def recorded_output(self, entry: str, stage: str) -> str | None:
        """An entry outside this run's selection: trust its manifest record if its outputs still verify."""
        given = STAGES[stage].given(self.series, entry)
        if given is not None:
            return given
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
            given = stage.given(self.series, name)
            if given is not None:  # nothing to run for this entry (e.g. no pairwise match)
                self.outputs[(name, stage.name)], self.status[(name, stage.name)] = given, "not needed"
                continue
            work.append((name, self.fingerprint(stage, name, self.outputs[(name, before)])))
        self.run_stage(stage, work)

    def run_more_judges(self) -> None:
        """Each later judge of a `judge:` list: its judgments of the judged entries, then its report
        (its table and its agreement with the first judge), which waits for them."""
        for judge in self.series.more_judges:
            for stage in judge_stages(self.series, judge):
                waiting = [st for st in self.status if st[0] == SERIES_KEY and st[1].endswith(f":{judge['name']}")
                           and (SERIES_KEY, st[1]) not in self.outputs]
                if stage.name.startswith("report:") and waiting:
                    self.status[(SERIES_KEY, stage.name)] = "pending" if self.dry else "waits (judgments)"
                    self.problems.setdefault(SERIES_KEY, f"{stage.name}: its judge's judgments are not complete")
                    continue
                self.run_series_end(stage)

    def run_series_end(self, stage: Stage) -> None:
        # Every entry of the series with current judgments (also ones outside --models) is in the table.
        last = ENTRY_STAGES[-1]
        fps = {e.name: self.outputs.get((e.name, last)) or self.recorded_output(e.name, last)
               for e in self.series.models}
        # judged: its single judgments current too (an entry without a pairwise match has that stage "given")
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


def listing(keys: list[tuple[str, str]]) -> str:
    """[(entry, stage), ...] -> "entry: stage, stage; report" (in the order given; series-wide stages by name)."""
    grouped: dict[str, list[str]] = {}
    for key, stage in keys:
        grouped.setdefault(key, []).append(stage)
    return "; ".join(", ".join(stages) if key == SERIES_KEY else f"{key}: {', '.join(stages)}"
                     for key, stages in grouped.items())


# ---------------------------------------------------------------------- dry run

def print_plan(runner: Runner) -> None:
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
    print(f"report: {runner.status.get((SERIES_KEY, 'report'), 'pending')}")
    for judge in s.more_judges:  # a later judge of the `judge:` list: its judgments and its own report
        for stage in judge_stages(s, judge):
            print(f"{stage.name}: {runner.status.get((SERIES_KEY, stage.name), 'pending')}")
    print()
    print("compute estimates (6·N·D for training; DPO adds 2·N·D for the reference model; "
          "D = the series' `tokens`, else max_steps x global batch x max_length as an upper bound):")
    for row in estimate_rows(s, runner.names):
        print("  " + row)
