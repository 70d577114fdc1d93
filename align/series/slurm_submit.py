"""`align series FILE --submit slurm`: a Slurm job per stage, with its kind's resources (cluster.py), chained
so each entry's stages keep their order while entries run side by side.

Every job runs the ordinary runner on its one stage (`align series FILE --only STAGE --models ENTRY`), so it
re-checks its inputs, skips what is done, resumes what was interrupted and records the manifest as a local
run does; it exits 0 only when its stage is done, so `afterok` fires exactly then and a failed stage's
downstream jobs of that entry are cancelled (`--kill-on-invalid-dep=yes`). The judging and the report run
in one CPU job after every entry's jobs have ended, whatever their outcome (`afterany`), over the entries
whose answers are complete. Jobs are named after the series' output directory, entry and stage; submitting
again submits only what is neither done nor already queued or running (squeue by job name). Every job gets
`--requeue --open-mode=append --signal=B:USR1@LEAD` (requeue.py: checkpoint, requeue itself, resume).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field

from align.plumbing.errors import UserError
from align.plumbing.files import atomic_write_text
from align.series.cluster import describe, load_cluster, sbatch_resources
from align.series.manifest import SCOPE_ENV, SERIES_KEY
from align.series.spec import Series, ordered_entries
from align.series.stages import PIPELINE, STAGES, PrepareStage

# squeue states of a job that still runs or will: its stage must not be submitted a second time
ACTIVE_STATES = "PENDING,RUNNING,CONFIGURING,REQUEUED,REQUEUE_HOLD,REQUEUE_FED,SUSPENDED,RESIZING"
SERIES_END = "judge,pairwise,report"  # the stages of the one series-wide job at the end
# what a job runs, the series file and its --only/--models after it (tests put the stand-in runner here)
JOB_RUNNER = [sys.executable, "-m", "align.cli", "series"]


@dataclass(eq=False)  # a job is itself: hashable by identity
class Job:
    entry: str | None   # None: series-wide (prepare, the judging and report)
    only: str           # the stages it runs (--only)
    kind: str           # its resources' kind (cluster.py)
    after: list[Job] = field(default_factory=list)
    after_any: bool = False  # afterany (the series' end) instead of afterok
    id: str | None = None
    queued: bool = False     # found in the queue, not submitted again

    @property
    def stage(self) -> str:
        return "judge+report" if self.only == SERIES_END else self.only

    @property
    def label(self) -> str:
        return f"{self.entry or 'series'}/{self.stage}"


def job_name(series: Series, job: Job) -> str:
    """Unique per output directory, entry and stage (two series with one name do not collide)."""
    tag = hashlib.sha256(str(series.output_dir.resolve()).encode()).hexdigest()[:6]
    return f"align-{series.name}-{tag}-{job.entry or 'series'}-{job.stage}"


def needs_run(label: str) -> bool:
    """A stage's dry-run label -> whether it has work left ('done', 'given', 'off', 'none' have none)."""
    return label in ("pending", "stale") or label.startswith("resume")


def has_work(series: Series, entry, index: int) -> bool:
    """Whether the entry has its PIPELINE[index] stage at all (the dry run labels stages after one that is
    pending `pending` without asking): not skipped (off, absent, given), not after `post_train: false`."""
    stage = PIPELINE[index]
    if not entry.post_train and index >= [st.name for st in PIPELINE].index("sft"):
        return False
    return stage.skip(series, entry.name) is None


def job_graph(series: Series, names: list[str], status: dict[tuple[str, str], str]) -> list[Job]:
    """The jobs still to run, each after the jobs making its inputs, in an order that can be submitted.
    `status`: each stage's label as the dry run gives it ((entry or SERIES_KEY, stage) -> 'done', 'pending', ...)."""
    jobs: list[Job] = []
    prepare = None
    if any(needs_run(status.get((SERIES_KEY, f"prepare:{step['name']}"), "pending")) for step in series.prepare):
        prepare = Job(None, "prepare", PrepareStage.resources)
        jobs.append(prepare)
    makes: dict[tuple[str, str], Job] = {}  # (entry, stage) -> the job that makes its output
    for entry in [e for e in ordered_entries(series) if e.name in names]:
        last = prepare  # the entry's chain so far
        for i, stage in enumerate(PIPELINE):
            if not needs_run(status.get((entry.name, stage.name), "pending")) or not has_work(series, entry, i):
                continue
            # a measurement comes right after the stage it reads (PIPELINE order; without a cpt stage base_eval
            # reads the base): the chain's last job makes its input as well
            after = [j for j in (last or prepare,) if j is not None]  # the chain's last job waited on prepare
            if stage.name == "base" and series.is_entry(entry.source):  # grown from another entry's checkpoint
                source = entry.source
                has_cpt = STAGES["cpt"].skip(series, source) is None
                made = makes.get((source, "cpt")) if entry.grow and has_cpt else None
                after += [j for j in (made or makes.get((source, "base")),) if j is not None]
            job = Job(entry.name, stage.name, stage.resources, after=list(dict.fromkeys(after)))
            jobs.append(job)
            makes[(entry.name, stage.name)] = job
            if not stage.reads:
                last = job
    end = [label for (key, stage), label in status.items() if key == SERIES_KEY and not stage.startswith("prepare:")]
    entry_jobs = [j for j in jobs if j.entry is not None]
    if entry_jobs or any(needs_run(label) or label.startswith("waits") for label in end):
        jobs.append(Job(None, SERIES_END, STAGES["report"].resources, after=entry_jobs or [j for j in [prepare] if j],
                        after_any=True))
    return jobs


def job_script(series: Series, job: Job, cluster: dict, name: str) -> str:
    """The sbatch script of one stage job: its resources, the requeue settings, the runner on its stage."""
    log = series.output_dir / "slurm" / f"{job.entry or 'series'}-{job.stage}.log"
    flags = [f"--job-name={name}", f"--output={log}", "--open-mode=append", "--requeue",
             f"--signal=B:USR1@{cluster['signal_lead_s']}", *sbatch_resources(cluster[job.kind])]
    flags += [f"--{key}={cluster[key]}" for key in ("partition", "account") if cluster.get(key)]
    flags += cluster["extra_args"]
    argv = [*JOB_RUNNER, str(series.file.resolve()), "--only", job.only]
    argv += ["--models", job.entry] if job.entry else []
    return "\n".join(["#!/bin/bash", f"# {job.label}: written by `align series --submit slurm`",
                      *(f"#SBATCH {flag}" for flag in flags),
                      "set -euo pipefail", f"cd {shlex.quote(os.getcwd())}",
                      f"export {SCOPE_ENV}={shlex.quote(job.entry or SERIES_KEY)} "
                      f"ALIGN_MAX_REQUEUES={cluster['max_requeues']}",
                      # exec: the runner itself is the batch shell, which the USR1 warning reaches
                      f"exec {shlex.join(argv)}", ""])


def queued_jobs(names: list[str]) -> dict[str, str]:
    """job name -> id of the jobs of these names still pending or running."""
    out = _slurm(["squeue", "-h", f"--states={ACTIVE_STATES}", "-o", "%i %j", f"--name={','.join(names)}"])
    return {name: job_id for job_id, name in (line.split(maxsplit=1) for line in out.splitlines() if " " in line)}


def _slurm(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        raise UserError(f"--submit slurm: {argv[0]} not found (run this where Slurm's commands are installed)")
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise UserError(f"--submit slurm: {argv[0]} failed: {why}")
    return done.stdout.strip()


def dependency(job: Job) -> list[str]:
    ids = [j.id for j in job.after if j.id]
    if not ids:
        return []
    return [f"--dependency={'afterany' if job.after_any else 'afterok'}:{':'.join(ids)}", "--kill-on-invalid-dep=yes"]


def print_graph(series: Series, jobs: list[Job], cluster: dict) -> None:
    print(f"series {series.name}: {len(jobs)} Slurm job(s) (one per stage that is not done)")
    width = max([len(j.label) for j in jobs] + [4]) + 2
    for job in jobs:
        after = ", ".join(j.label for j in job.after) or "-"
        rule = "afterany" if job.after_any else "afterok"
        print(f"  {job.label.ljust(width)}[{job.kind}] {describe(cluster[job.kind])}; {rule}: {after}")


def submit(series: Series, names: list[str], status: dict[tuple[str, str], str], *, dry: bool) -> int:
    """Submit (or with `dry`, print) the job graph; stages done, queued or running are not submitted again."""
    cluster = load_cluster(series.file)
    jobs = job_graph(series, names, status)
    if not jobs:
        print(f"series {series.name}: every stage is done; nothing to submit")
        return 0
    if dry:
        print_graph(series, jobs, cluster)
        return 0
    started = time.time()
    names_of = {id(job): job_name(series, job) for job in jobs}
    queued = queued_jobs(list(names_of.values()))
    scripts = series.output_dir / "slurm"
    for job in jobs:
        name = names_of[id(job)]
        if name in queued:
            job.id, job.queued = queued[name], True
            print(f"{job.label}: already queued or running as job {job.id}; not submitted again", flush=True)
            continue
        script = scripts / f"{job.entry or 'series'}-{job.stage}.sbatch"
        atomic_write_text(script, job_script(series, job, cluster, name))
        job.id = _slurm(["sbatch", "--parsable", *dependency(job), str(script)]).split(";")[0]
        after = ", ".join(f"{j.label} ({j.id})" for j in job.after)
        print(f"{job.label}: job {job.id} [{job.kind}]" + (f" after {after}" if after else ""), flush=True)
    new = sum(not j.queued for j in jobs)
    print(f"series {series.name}: {new} job(s) submitted in {time.time() - started:.1f} s, "
          f"{len(jobs) - new} already queued; logs in {scripts}/; `squeue --me` shows them", flush=True)
    return 0
