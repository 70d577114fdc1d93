"""`align series FILE`: every entry through base -> sft -> dpo -> answer, one judge call, one report.

Each stage is a subprocess (the stage's own CLI) with its output in `<output_dir>/<entry>/`
and its log in `<output_dir>/<entry>/<stage>.log`. The manifest records each stage's input
fingerprint and output fingerprint; a re-run skips what is current, redoes what changed (and,
through the fingerprints, everything downstream), and resumes what was interrupted. A stage
is done only once its outputs are verified.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from align.files import atomic_write_text, read_jsonl
from align.outputs import remove_previous_output
from align.redact import redact_argv
from align.series import spec as plan
from align.series.manifest import SERIES_KEY, Manifest, RunLock, fingerprint, now

HEARTBEAT_S = 30


def add_arguments(parser) -> None:
    parser.add_argument("series_file", help="series YAML (see recipes/series/)")
    parser.add_argument("--only", help="comma-separated stages to run: prepare,base (grow),sft,dpo,answer,judge,report")
    parser.add_argument("--models", help="comma-separated entry names (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and compute estimates; run nothing")


def run(args) -> int:
    series = plan.load_series(args.series_file)
    only = plan.parse_only(args.only)
    names = plan.parse_models(series, args.models)
    if args.dry_run:
        runner = Runner(series, only, names, dry=True)
        runner.run()
        print_plan(runner)
        from align.series.preflight import report_recipe_problems  # loads TRL: only for a dry run

        return 2 if report_recipe_problems(series, names) else 0
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` / scancel: stop the stage cleanly too
    with RunLock(series.output_dir) as lock:
        try:
            return Runner(series, only, names, lock_fd=lock.fh.fileno()).run()
        except KeyboardInterrupt:
            print(f"interrupted: re-run the same command to resume (manifest: {series.output_dir / 'manifest.json'})",
                  file=sys.stderr, flush=True)
            return 130


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def say(msg: str) -> None:
    print(f"[series {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def last_line(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 4096))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in tail.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1][:160] if lines else ""


def tail_lines(path: Path, n: int = 8) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").replace("\r", "\n").splitlines()
    except OSError:
        return []
    return [ln for ln in lines if ln.strip()][-n:]


def stop_group(proc: subprocess.Popen, grace_s: float = 30) -> None:
    """SIGTERM the stage's process group, SIGKILL it if it has not gone after `grace_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def has_checkpoint(out_dir: Path) -> bool:
    return out_dir.is_dir() and any(p.is_dir() for p in out_dir.glob("checkpoint-*"))


def remove(path: Path) -> None:
    """A stage's stale output: a directory only when a previous run wrote it (else UserError)."""
    if path.is_dir():
        remove_previous_output(path, flag="stage output")
    elif path.exists():
        path.unlink()


class Runner:
    def __init__(self, series: plan.Series, only: set[str], names: list[str], dry: bool = False,
                 lock_fd: int | None = None):
        self.series = series
        self.lock_fd = lock_fd
        self.only = only
        self.names = names
        self.dry = dry
        self.manifest = Manifest.load(series.output_dir)
        self.outputs: dict[tuple[str, str], str] = {}   # (entry, stage) -> output fingerprint, when current
        self.status: dict[tuple[str, str], str] = {}    # for the plan / summary
        self.problems: dict[str, str] = {}              # entry -> why it stopped
        self._expected = None
        self.prepared: list[tuple[list[Path], str]] = []  # (a prepare step's output files, its output fp)

    # ------------------------------------------------------------------ verification
    def expected(self) -> list[tuple[int, int]]:
        if self._expected is None:
            self._expected = plan.expected_question_ids(self.series)
        return self._expected

    def verify(self, entry: str, stage: str) -> str | None:
        """The output fingerprint when the stage's outputs are complete, else None."""
        if stage.startswith("prepare:"):
            step = next(s for s in self.series.prepare if f"prepare:{s['name']}" == stage)
            files = [Path(f) for f in step["outputs"]]
            return fingerprint([plan.file_digest(f) for f in files]) if all(f.is_file() for f in files) else None
        out = plan.stage_output(self.series, entry, stage)
        if stage in ("base", "sft", "dpo"):
            card = out / "run_card.json"
            return plan.file_digest(card) if card.is_file() and (out / "config.json").is_file() else None
        if stage == "answer":
            if not out.is_file():
                return None
            turns = {r.get("question_id"): len((r.get("choices") or [{}])[0].get("turns") or [])
                     for r in read_jsonl(out)}
            if any(turns.get(qid, 0) < n for qid, n in self.expected()):
                return None
            return plan.file_digest(out)
        if stage == "judge":
            rows = self.judgment_rows(entry)
            have = {(r.get("question_id"), r.get("turn")) for r in rows}
            if any((qid, t) not in have for qid, n in self.expected() for t in range(1, n + 1)):
                return None
            return fingerprint(sorted(json.dumps(r, sort_keys=True) for r in rows))
        if stage == "report":
            table = out / "table.csv"
            return plan.file_digest(table) if table.is_file() and (out / "table.md").is_file() else None
        raise ValueError(stage)

    def judgment_rows(self, entry: str) -> list[dict]:
        path = plan.stage_output(self.series, None, "judge")
        return [r for r in read_jsonl(path) if r.get("model") == entry] if path.is_file() else []

    # ------------------------------------------------------------------ one stage
    def can_resume(self, entry: str, stage: str) -> bool:
        if stage in ("sft", "dpo"):
            return has_checkpoint(plan.stage_output(self.series, entry, stage))
        return stage in ("answer", "judge")  # they skip what they already wrote

    def reset(self, entry: str, stage: str) -> None:
        """Remove a stage's stale outputs before it starts afresh (a resume would reuse them)."""
        if stage == "judge":
            path = plan.stage_output(self.series, None, "judge")
            for file in (path, path.with_name(path.name + ".failed.jsonl")):  # judgments + the judge's failures
                if file.is_file():
                    keep = [r for r in read_jsonl(file) if r.get("model") != entry]
                    atomic_write_text(file, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep))
        elif stage in ("base", "sft", "dpo", "answer"):
            remove(plan.stage_output(self.series, entry, stage))

    def decide(self, key: str, stage: str, fp: str) -> str:
        """skip (current) / resume / fresh / blocked (not selected and not current)."""
        rec = self.manifest.get(key, stage)
        if rec.get("fingerprint") == fp and rec.get("state") == "done":
            out = self.verify(key, stage)
            if out is not None and out == rec.get("output_fingerprint"):
                self.outputs[(key, stage)] = out
                return "skip"
        base_stage = stage.split(":")[0]
        if base_stage not in self.only:
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

    def log_path(self, key: str, stage: str) -> Path:
        folder = self.series.output_dir / (key if key != SERIES_KEY else "")
        return folder / f"{stage.replace(':', '-')}.log"

    def stage(self, key: str, stage: str, fp: str, make_command) -> str | None:
        """Run one stage unless current; returns its output fingerprint, or None if not done."""
        decision = self.decide(key, stage, fp)
        self.status[(key, stage)] = self.plan_label(key, stage, decision)
        if decision == "skip":
            if not self.dry:
                say(f"{key} {stage}: done, skipped")
            return self.outputs[(key, stage)]
        if self.dry:
            return None
        if decision == "blocked":
            self.problems.setdefault(key, f"{stage} is not done and not selected by --only")
            say(f"{key} {stage}: not done and not selected by --only; {key} stops here")
            return None
        if decision == "resume":
            out = self.verify(key, stage)
            if out is not None:  # it finished but the runner died before recording it
                self.manifest.update(key, stage, state="done", output_fingerprint=out, finished=now())
                say(f"{key} {stage}: finished in an earlier run, outputs verified")
                self.outputs[(key, stage)] = out
                return out
            if not self.can_resume(key, stage):
                decision = "fresh"
        if decision == "fresh":
            self.reset(key, stage)
        cmd = make_command(decision == "resume")
        log = self.log_path(key, stage)
        rec = self.manifest.get(key, stage)
        self.manifest.update(key, stage, state="running", fingerprint=fp, argv=redact_argv(cmd.argv),
                             log=str(log), started=now(), attempts=rec.get("attempts", 0) + 1,
                             resumed=decision == "resume", error=None)
        say(f"{key} {stage}: {'resuming' if decision == 'resume' else 'running'} (log: {log})")
        started = time.time()
        rc = self.execute(cmd, log, f"{key} {stage}")
        out = self.verify(key, stage)
        wall = round(time.time() - started, 1)
        if rc != 0 or out is None:
            why = f"exit status {rc}" if rc != 0 else "its outputs are incomplete"
            self.manifest.update(key, stage, state="failed", error=why, finished=now(), wall_s=wall)
            self.fail(key, f"{key}: stage {stage} failed ({why}); see {log}", log)
            return None
        self.manifest.update(key, stage, state="done", output_fingerprint=out, finished=now(), wall_s=wall,
                             outputs=self.output_paths(key, stage))
        say(f"{key} {stage}: done in {wall:.0f} s")
        self.outputs[(key, stage)] = out
        return out

    def output_paths(self, key: str, stage: str) -> list[str]:
        if stage.startswith("prepare:"):
            return next(list(st["outputs"]) for st in self.series.prepare if f"prepare:{st['name']}" == stage)
        return [str(plan.stage_output(self.series, None if key == SERIES_KEY else key, stage))]

    def fail(self, key: str, message: str, log: Path | None = None) -> None:
        self.problems[key] = message
        print(f"error: {message}", file=sys.stderr, flush=True)
        for line in tail_lines(log) if log else []:
            print(f"    | {line[:200]}", file=sys.stderr, flush=True)

    def execute(self, cmd: plan.StageCommand, log: Path, label: str) -> int:
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **cmd.env, "PYTHONUNBUFFERED": "1"}
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"\n===== {now()} {shlex.join(redact_argv(cmd.argv))}\n")
            fh.flush()
            try:
                # Own process group: on Ctrl-C / SIGTERM the whole stage tree (accelerate's workers too)
                # is stopped. The lock's fd is inherited, so a stage orphaned by a killed runner still
                # holds the output directory and a second runner cannot start the same stage beside it.
                proc = subprocess.Popen(cmd.argv, stdout=fh, stderr=subprocess.STDOUT, env=env, process_group=0,
                                        pass_fds=(self.lock_fd,) if self.lock_fd is not None else ())
            except OSError as err:
                fh.write(f"cannot start: {err}\n")
                return 127
            started = last_beat = time.time()
            try:
                while proc.poll() is None:
                    time.sleep(0.5)
                    if time.time() - last_beat >= HEARTBEAT_S:
                        last_beat = time.time()
                        say(f"{label}: running {time.time() - started:.0f} s | {last_line(log)}")
            except BaseException:  # Ctrl-C / SIGTERM: the manifest keeps `running` -> resumed next time
                stop_group(proc)
                fh.write(f"===== {now()} interrupted\n")
                raise
        return proc.returncode

    # ------------------------------------------------------------------ the series
    def command(self, entry, stage, **kw):
        # Looked up on the module each time so tests can swap in stand-in commands.
        return lambda resume: plan.stage_command(self.series, entry, stage, resume=resume, **kw)

    def args_fp(self, entry, stage, **kw) -> list[str]:
        """The stage's arguments with unresolved references (packaged:...), as fingerprint material."""
        return plan.stage_command(self.series, entry, stage, resolve=False, **kw).args

    def run(self) -> int:
        s = self.series
        if self.run_prepare():
            for name in self.names:
                self.run_entry(name)
        else:
            for name in self.names:
                self.problems.setdefault(name, "prepare did not finish")
        judged = self.run_judge()
        self.run_report(judged)
        if self.dry:
            return 0
        missing = [n for n in self.names if (n, "judge") not in self.outputs]
        report_ok = (SERIES_KEY, "report") in self.outputs
        if report_ok:
            table = s.output_dir / "table.md"
            print("\n" + table.read_text(encoding="utf-8"), flush=True)
            say(f"report: {table} (+ table.csv, categories.png)")
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

    def run_prepare(self) -> bool:
        """Series-wide steps (the demo's data and question subset), run before any entry."""
        for step in self.series.prepare:
            name = f"prepare:{step['name']}"
            fp = fingerprint([str(a) for a in step["command"]], step["outputs"])
            out = self.stage(SERIES_KEY, name, fp,
                             lambda resume, st=step: plan.stage_command(self.series, None, "prepare", prepare_step=st))
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

    def run_entry(self, name: str) -> None:
        s, e = self.series, self.series.entry(name)
        # base: given (path / hub id / packaged) or built (grow / init) from another entry or path
        if e.path is not None:
            base_fp = plan.checkpoint_fingerprint(e.path)
            self.outputs[(name, "base")] = base_fp
            self.status[(name, "base")] = "given"
        else:
            if s.is_entry(e.source):
                src = s.entry(e.source)
                src_fp = (plan.checkpoint_fingerprint(src.path) if src.path is not None else
                          self.outputs.get((e.source, "base")) or self.recorded_output(e.source, "base"))
                if src_fp is None:
                    self.block(name, "base", f"its source entry {e.source} has no base checkpoint yet")
                    return
            else:
                src_fp = plan.checkpoint_fingerprint(e.source)
            spec = plan.file_digest(e.grow["spec"]) if e.grow else None
            fp = fingerprint(self.args_fp(name, "base"), spec, src_fp)
            base_fp = self.stage(name, "base", fp, self.command(name, "base"))
            if base_fp is None:
                return self.block(name, "sft", "base not done")
        upstream = base_fp
        for stage in ("sft", "dpo"):
            block = getattr(s, stage)
            acc = s.train.get("accelerate_config")
            args = self.args_fp(name, stage)
            fp = fingerprint(args, plan.file_digest(block["recipe"]), plan.file_digest(acc) if acc else None,
                             upstream, self.prepared_inputs(args))
            upstream = self.stage(name, stage, fp, self.command(name, stage))
            if upstream is None:
                return self.block(name, "answer" if stage == "dpo" else "dpo", f"{stage} not done")
        args = self.args_fp(name, "answer")
        fp = fingerprint(args, upstream, self.prepared_inputs(args))
        if self.stage(name, "answer", fp, self.command(name, "answer")) is None:
            return self.block(name, "judge", "answer not done")

    def recorded_output(self, entry: str, stage: str) -> str | None:
        """An entry outside this run's selection: trust its manifest record if its outputs still verify."""
        rec = self.manifest.get(entry, stage)
        if rec.get("state") == "done" and self.verify(entry, stage) == rec.get("output_fingerprint"):
            return rec.get("output_fingerprint")
        return None

    def block(self, name: str, stage: str, why: str) -> None:
        """Mark `stage` and everything after it in the entry's pipeline as waiting on `why`."""
        for later in plan.ENTRY_STAGES[plan.ENTRY_STAGES.index(stage):]:
            self.status.setdefault((name, later), "pending" if self.dry else f"waits ({why})")

    def judge_fp(self, name: str, answer_fp: str) -> str:
        j = self.series.judge
        return fingerprint(str(j["model"]), j.get("base_url"), j.get("max_tokens"),
                           [str(a) for a in j.get("extra_args") or []], answer_fp,
                           self.prepared_inputs(self.args_fp(None, "judge")))

    def run_judge(self) -> list[str]:
        """One judge call for every entry whose judgments are missing or stale (one judge server start)."""
        todo, judged = [], []
        for name in self.names:
            answer_fp = self.outputs.get((name, "answer"))
            if answer_fp is None:
                self.status.setdefault((name, "judge"), "pending" if self.dry else "waits (answer not done)")
                continue
            fp = self.judge_fp(name, answer_fp)
            decision = self.decide(name, "judge", fp)
            self.status[(name, "judge")] = self.plan_label(name, "judge", decision)
            if decision == "skip":
                judged.append(name)
                if not self.dry:
                    say(f"{name} judge: done, skipped")
            elif decision == "blocked":
                self.problems.setdefault(name, "judge is not done and not selected by --only")
            else:
                todo.append((name, fp, decision))
        if self.dry or not todo:
            return judged
        for name, fp, decision in todo:
            if decision == "fresh":
                self.reset(name, "judge")
        answer_files = [str(plan.stage_output(self.series, n, "answer")) for n, _, _ in todo]
        judge_model = plan.resolve_packaged(str(self.series.judge["model"]))
        cmd = plan.stage_command(self.series, None, "judge", answer_files=answer_files, judge_model=judge_model)
        log = self.log_path(SERIES_KEY, "judge")
        for name, fp, decision in todo:
            rec = self.manifest.get(name, "judge")
            self.manifest.update(name, "judge", state="running", fingerprint=fp, argv=redact_argv(cmd.argv),
                                 log=str(log), started=now(), attempts=rec.get("attempts", 0) + 1)
        names = ", ".join(n for n, _, _ in todo)
        say(f"judge: {names} (log: {log})")
        started = time.time()
        rc = self.execute(cmd, log, "judge")
        wall = round(time.time() - started, 1)
        for name, fp, _ in todo:
            out = self.verify(name, "judge")
            if out is None:
                why = f"exit status {rc}" if rc != 0 else "judgments are missing"
                self.manifest.update(name, "judge", state="failed", error=why, finished=now(), wall_s=wall)
                self.fail(name, f"{name}: stage judge failed ({why}); see {log}", log)
            else:
                self.manifest.update(name, "judge", state="done", output_fingerprint=out, finished=now(),
                                     wall_s=wall, outputs=self.output_paths(name, "judge"))
                self.outputs[(name, "judge")] = out
                judged.append(name)
        say(f"judge: finished in {wall:.0f} s ({len(judged)} entries judged)")
        return judged

    def run_report(self, judged: list[str]) -> None:
        # Every entry of the series with current judgments (also ones outside --models) is in the table.
        fps = {n: self.outputs.get((n, "judge")) or self.recorded_output(n, "judge") for n in
               [e.name for e in self.series.models]}
        fps = {n: f for n, f in fps.items() if f}
        if not fps:
            self.status[(SERIES_KEY, "report")] = "pending" if self.dry else "waits (nothing judged)"
            return
        models = [(e.name, e.size, e.construction) for e in self.series.models]
        fp = fingerprint(self.args_fp(None, "report"), sorted(fps.items()), models)
        self.stage(SERIES_KEY, "report", fp, self.command(None, "report"))


# ---------------------------------------------------------------------- dry run

def print_plan(runner: Runner) -> None:
    from align.series.estimate import estimate_rows

    s = runner.series
    print(f"series {s.name} ({s.file}) -> {s.output_dir}")
    stages = ["base", "sft", "dpo", "answer", "judge"]
    width = max(len(n) for n in runner.names + ["entry"]) + 2
    print("".join(h.ljust(w) for h, w in [("entry", width)] + [(st, 22) for st in stages]))
    for name in runner.names:
        cells = [runner.status.get((name, st), "pending") for st in stages]
        print(name.ljust(width) + "".join(c[:21].ljust(22) for c in cells))
    for step in s.prepare:
        print(f"prepare {step['name']}: {runner.status.get((SERIES_KEY, 'prepare:' + step['name']), 'pending')}")
    print(f"report: {runner.status.get((SERIES_KEY, 'report'), 'pending')}")
    print()
    print("compute estimates (6·N·D for training; DPO adds 2·N·D for the reference model; "
          "D = the series' `tokens`, else max_steps x global batch x max_length as an upper bound):")
    for row in estimate_rows(s, runner.names):
        print("  " + row)
