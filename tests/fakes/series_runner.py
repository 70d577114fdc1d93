"""`align series` with every stage's command replaced by tests/fakes/stage.py (same arguments).

    python tests/fakes/series_runner.py SERIES_FILE [--only ...] [--models ...] [--dry-run]
    run_in_process([SERIES_FILE, ...], env) -> CompletedProcess     (from a test: no interpreter started)

The runner's own logic runs unchanged; only its command factory differs (and `--submit slurm`'s jobs run
this program). As a program, each stage is a subprocess (the runner's own executor: process group, log,
signals); in-process, the runner's stage executor is swapped for one that calls the stand-in stage's main
and appends its output to the same log, so a whole stand-in series costs no Python start. The tests of the
process boundary (a kill, SIGTERM, the lock held by a process, Slurm jobs) run the program.
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import signal
import subprocess
import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from align.plumbing.errors import exit_on_user_error
from align.plumbing.redact import redact_argv
from align.plumbing.runcard import utc_timestamp
from align.series import runner, slurm_submit
from align.series.process import run_logged
from align.series.stage_kind import Stage, StageCommand

STAGE_PROGRAM = Path(__file__).with_name("stage.py")
REPO = Path(__file__).resolve().parents[2]


def stand_in(stage: Stage, *args, **options) -> StageCommand:
    real = stage.command(*args, **options)
    return StageCommand([sys.executable, str(STAGE_PROGRAM), stage.name.split(":")[0]], real.args, real.env)


def run_stage_in_process(cmd: StageCommand, log: Path, label: str, lock_fd: int | None = None) -> int:
    """The stand-in stage of `cmd` (from `stand_in`) run in this process: its output appended to `log` under the
    same header line as process.run_logged writes; an exception is its traceback in the log and exit status 1,
    as the program's would be."""
    from fakes import stage as fake_stage

    env = {**os.environ, **cmd.env}
    if env.get("FAKE_HANG"):
        raise RuntimeError("FAKE_HANG needs the stand-in as a process (to be killed): run the series program")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"\n===== {utc_timestamp()} {shlex.join(redact_argv(cmd.argv))}\n")
        fh.flush()
        with redirect_stdout(fh), redirect_stderr(fh):
            try:
                return fake_stage.main(cmd.program[-1], cmd.args, env)
            except Exception:
                traceback.print_exc()
                return 1


@exit_on_user_error
def main(argv: list[str], execute: runner.StageExecutor = run_logged) -> int:
    parser = argparse.ArgumentParser(prog="series_runner", allow_abbrev=False)
    runner.add_arguments(parser)
    slurm_submit.JOB_RUNNER = [sys.executable, str(Path(__file__).resolve())]  # --submit slurm: jobs run me too
    return runner.run(parser.parse_args(argv), commands=stand_in, execute=execute)


def run_in_process(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The program's run, in this process: `env` added to the environment, the repository as the working
    directory, stdout and stderr captured, the exit status as a program's (SystemExit included); the
    environment, working directory and signal handlers are restored after."""
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_signals = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)}
    os.environ.update(env or {})
    os.chdir(REPO)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                rc = main(argv, execute=run_stage_in_process)
            except SystemExit as stop:
                rc = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for sig, handler in saved_signals.items():
            signal.signal(sig, handler)
    return subprocess.CompletedProcess(argv, rc, out.getvalue(), err.getvalue())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
