"""`align series` with every stage's command replaced by tests/fakes/stage.py (same arguments).

    python tests/fakes/series_runner.py SERIES_FILE [--only ...] [--models ...] [--dry-run]

The runner's own logic runs unchanged; only its command factory differs (and `--submit slurm`'s jobs run
this program).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from align.plumbing.errors import exit_on_user_error
from align.series import runner, slurm_submit
from align.series.stages import Stage, StageCommand, build_command

STAGE_PROGRAM = Path(__file__).with_name("stage.py")


def stand_in(stage: Stage, *args, **options) -> StageCommand:
    real = build_command(stage, *args, **options)
    return StageCommand([sys.executable, str(STAGE_PROGRAM), stage.name.split(":")[0]], real.args, real.env)


@exit_on_user_error
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="series_runner", allow_abbrev=False)
    runner.add_arguments(parser)
    slurm_submit.JOB_RUNNER = [sys.executable, str(Path(__file__).resolve())]  # --submit slurm: jobs run me too
    return runner.run(parser.parse_args(argv), commands=stand_in)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
