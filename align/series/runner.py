"""`align series FILE`: every entry through base -> sft -> dpo -> answer, one judge call (and one pairwise
call with judge.mode pairwise), one report; each later judge of a `judge:` list and its report.

What a stage is comes from the stage table (stages.py); walk.py walks it (stage_run.py runs and records one
stage), finish.py says how the run ended, plan.py prints a dry run's plan, slurm_submit.py turns the table into
jobs. This module is the command.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from align.plumbing.errors import UserError
from align.series.eval_preflight import eval_problems
from align.series.finish import report_problems
from align.series.manifest import RunLock
from align.series.plan import print_plan
from align.series.process import run_logged
from align.series.requeue import Preempted, raise_preempted, requeue_this_job
from align.series.spec import PACKAGED_PREFIX, Series, load_series, parse_models
from align.series.stages import selected_stages
from align.series.walk import CommandFactory, Runner, StageExecutor, own_command
from judges.api.client import resolve_api_key

__all__ = ["Runner", "add_arguments", "run"]


def add_arguments(parser) -> None:
    parser.add_argument("series_file", help="series YAML (see recipes/series/)")
    parser.add_argument("--only", help="comma-separated stages to run: "
                                       "prepare,base (grow),cpt,base_eval,sft,dpo,heldout_sft,heldout_dpo,answer,judge,"
                                       "pairwise,report")
    parser.add_argument("--models", help="comma-separated entry names (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and compute estimates; run nothing")
    parser.add_argument("--submit", choices=["slurm"], help="slurm: a job per stage with the `cluster:` block's "
                                                           "resources (with --dry-run: print the job graph)")


def run(args, commands: CommandFactory = own_command, execute: StageExecutor = run_logged) -> int:
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


def check_judge_key(series: Series) -> None:
    """A served judge's key is checked before days of training, not when the judge stage starts."""
    for judge in [series.judge, *series.more_judges]:
        model = str(judge.model)
        if model.startswith(PACKAGED_PREFIX) or Path(model).expanduser().is_dir():
            continue  # a local judge: served on loopback, no key
        resolve_api_key("OPENAI_API_KEY", judge.base_url, flag=f"{series.file}: judge:")


def _interrupt(signum, frame):
    raise KeyboardInterrupt
