"""Running one stage of a series: whether it is current (its fingerprint against the manifest), running it
through the stage executor, and recording it (`running`, then `done` once its outputs verify, or `failed`).

Each stage runs through the stage executor (default process.run_logged: a subprocess, `align <verb> ...`) with
its log in `<output_dir>/<entry>/<stage>.log`. The manifest records each stage's input fingerprint and output
fingerprint; a re-run skips what is current, redoes what changed (and, through the fingerprints, everything
downstream), and resumes what was interrupted. A stage is done only once its outputs are verified. The walk
over the whole table is walk.py's.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from align.plumbing.files import file_sha256
from align.plumbing.redact import redact_argv
from align.plumbing.runcard import utc_timestamp
from align.series import finish
from align.series.manifest import SERIES_KEY, Manifest, fingerprint
from align.series.process import run_logged, say, tail_lines
from align.series.spec import Series
from align.series.stages import PrepareStage, Stage, StageCommand, stage_table

# (stage, series, entry, *, resume, resolve, batch) -> the command to run; tests pass stand-ins
CommandFactory = Callable[..., StageCommand]
# (command, log, label, lock_fd) -> exit status: runs one stage's command, its output appended to the log; the
# default is a subprocess in its own process group (process.run_logged); tests run stand-in stages in-process
StageExecutor = Callable[[StageCommand, Path, str, "int | None"], int]


def own_command(stage: Stage, series: Series, entry: str | None, **options) -> StageCommand:
    return stage.command(series, entry, **options)


class StageRunner:
    """The state of one run of a series and the running of one stage; walk.Runner walks the table."""

    def __init__(self, series: Series, only: set[str], names: list[str], *, dry: bool = False,
                 lock_fd: int | None = None, commands: CommandFactory = own_command,
                 execute: StageExecutor = run_logged):
        self.series = series
        self.lock_fd = lock_fd
        self.only = only
        self.names = names
        self.dry = dry
        self.commands = commands
        self.execute = execute
        self.table = stage_table(series)
        # the series-wide stages after the entries: the first judge's report, then each later judge's stages
        self.series_end = [st for st in self.table.values() if not st.per_entry and not isinstance(st, PrepareStage)]
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
            self.status[(key, stage.name)] = finish.plan_label(self.manifest.get(key, stage.name), decision)
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
        stage.before_run(self.series, entries[0])  # what it reads that the series writes (the report's curves)
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

    def prepared_inputs(self, args: list[str]) -> list[str]:
        """Output fingerprints of the prepare steps a stage reads: one of its arguments names a
        prepared file or a directory holding one (so new questions do not re-run training)."""
        paths = [Path(a) for a in args if "/" in a]
        return [fp for outputs, fp in self.prepared
                if any(o == a or a in o.parents for o in outputs for a in paths)]
