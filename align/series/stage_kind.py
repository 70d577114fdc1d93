"""What a stage of a series is: the protocol every kind of stage implements, and the programs they run.

A stage kind says what it writes (`outputs`), how its outputs are checked (`verify`: their fingerprint once
complete, else None), its command line (`command`), how stale outputs are cleared before a fresh start
(`reset`), whether an interrupted run can continue (`resumable`), which files it reads besides its arguments
(`inputs`: their content is part of its fingerprint), whether an entry has nothing to run (`skip`: a Skip
with its reason) and the resources kind of its Slurm job (`resources`, cluster.py). `before_run` is the one
place a stage writes anything before its command runs; the runner calls it only when it really runs the
stage, so building a command (for a fingerprint, a plan, a job script) never writes a file.

The kinds: checkpoint_stages.py (base, cpt, sft, dpo), eval_stages.py (the judge-free measures),
judge_stages.py (answers, every judge, every report), stages.py (prepare steps, and the table of them all).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from align.series.spec import Series


@dataclass
class StageCommand:
    program: list[str]   # what runs it (interpreter, launcher); not part of the fingerprint
    args: list[str]      # the stage's own arguments, `<verb> ...`; part of the fingerprint
    env: dict[str, str] = field(default_factory=dict)

    @property
    def argv(self) -> list[str]:
        return self.program + self.args


@dataclass(frozen=True)
class Skip:
    """An entry has nothing to run in this stage, and why.

    `label` is the reason as the plan prints it: "given" (the series file gives the output: a base
    checkpoint's path), "off" (a measurement without an `eval:` block), "not needed" (no pairwise match),
    "none" (the entry has no such stage: no `cpt:` block). `output` stands in for the outputs' fingerprint;
    None: the stage is absent and its upstream passes through to the next stage."""
    label: str
    output: str | None


class Stage:
    """The protocol, with the defaults most kinds keep. `entry` is None for a series-wide stage."""

    name: str
    resources: str = "judge"     # the cluster.py kind of its Slurm job
    per_entry: bool = True       # False: once for the whole series (manifest key SERIES_KEY)
    batched: bool = False        # one command for every entry that needs it (the judge: one server start)
    unfingerprinted: tuple[str, ...] = ()  # flags whose value does not change the outputs
    # A side stage (a measurement): its upstream is this stage's output, and no later stage reads its output,
    # so it never re-runs training, and a failure of it stops nothing else.
    reads: str | None = None
    # Series-wide stages that must be current before this one runs (a later judge's report: its judgments)
    needs: tuple[str, ...] = ()

    def outputs(self, series: Series, entry: str | None) -> list[Path]:
        raise NotImplementedError

    def verify(self, series: Series, entry: str | None) -> str | None:
        raise NotImplementedError

    def command(self, series: Series, entry: str | None, *, resume: bool = False, resolve: bool = True,
                batch: list[str] | None = None) -> StageCommand:
        """resolve=False keeps references such as packaged:NAME unexported (fingerprints, plans); batch: the
        entries of a batched run."""
        raise NotImplementedError

    def resumable(self, series: Series, entry: str | None) -> bool:
        return False

    def reset(self, series: Series, entry: str | None) -> None:
        return None

    def inputs(self, series: Series, entry: str | None) -> list[str]:
        return []

    def skip(self, series: Series, entry: str | None) -> Skip | None:
        return None

    def before_run(self, series: Series, entry: str | None) -> None:
        return None

    def __repr__(self) -> str:
        return f"<stage {self.name}>"


# ----------------------------------------------------------------------------- programs

def align_cli() -> list[str]:
    return [sys.executable, "-m", "align.cli"]


def slurm_launcher() -> list[str]:
    """`accelerate launch` once per node of the Slurm allocation, each with its node's rank.

    Run the series inside `sbatch --nodes=N` (see recipes/series/slurm.sbatch) or as `--submit slurm` jobs;
    align.series.rendezvous reads the rest from the allocation on each node: the first node's address
    (resolved, or one line), processes per node (its GPUs, or ALIGN_PROCS_PER_NODE), a port per job.
    """
    per_node = f'exec "{sys.executable}" -m align.series.rendezvous --machine_rank "$SLURM_NODEID" "$@"'
    return ["srun", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
            "bash", "-c", per_node, "accelerate-per-node"]


def training_program(series: Series) -> list[str]:
    """`python -m align.cli` under the series' launcher (the verb and recipe arguments follow)."""
    launcher = series.train["launcher"]
    if launcher == "python":
        return align_cli()
    if launcher == "accelerate":
        head = [sys.executable, "-m", "accelerate.commands.launch"]
    elif launcher == "slurm":
        head = slurm_launcher()
    else:
        head = list(launcher)
    return head + ["--config_file", series.train["accelerate_config"], "-m", "align.cli"]


def train_env(series: Series) -> dict[str, str]:
    """The series' `train.env`, as the training and measuring stages' environment."""
    return {k: str(v) for k, v in (series.train.get("env") or {}).items()}
