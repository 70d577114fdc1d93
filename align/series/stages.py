"""What each stage of a series is: the one table the runner reads.

A stage says where it writes (`outputs`), how its outputs are checked (`verify`: their fingerprint
once complete, else None), whether an interrupted run can continue (`resumable`), how stale outputs
are cleared before a fresh start (`reset`), which files it reads besides its arguments (`inputs`,
their content is part of its fingerprint) and its command line (`command`). Every command is
`align <verb> ...` through the CLI; training verbs run under the series' launcher (python,
accelerate, slurm). Adding a stage means adding one entry to STAGES; the runner walks the table
in order. The prepare steps a series file lists are stages too (`prepare_stage`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from align.plumbing.argtypes import option_args
from align.plumbing.errors import UserError
from align.plumbing.files import file_sha256
from align.series import eval_stages, pretraining
from align.series.manifest import fingerprint
from align.series.spec import Series, resolve_packaged
from align.series.stage_outputs import (
    always,
    answers_verified,
    baseline_answers,
    checkpoint_verified,
    given_base,
    has_checkpoint,
    judgments_verified,
    no_pairwise_match,
    output_path,
    outputs_of,
    pairwise_verified,
    remove_judgments,
    remove_outputs,
    report_verified,
    scratch_baseline,
)


@dataclass
class StageCommand:
    program: list[str]   # what runs it (interpreter, launcher); not part of the fingerprint
    args: list[str]      # the stage's own arguments, `<verb> ...`; part of the fingerprint
    env: dict[str, str] = field(default_factory=dict)

    @property
    def argv(self) -> list[str]:
        return self.program + self.args


@dataclass(frozen=True)
class Stage:
    name: str
    outputs: Callable[[Series, str | None], list[Path]]   # files / directories it writes
    verify: Callable[[Series, str | None], str | None]    # output fingerprint once complete, else None
    # (series, entry, *, resume=False, resolve=True, batch=None) -> StageCommand; resolve=False keeps
    # references such as packaged:NAME unexported (fingerprints); batch: the entries of a batched run
    command: Callable[..., StageCommand]
    resumable: Callable[[Series, str | None], bool] = lambda series, entry: False
    reset: Callable[[Series, str | None], None] = lambda series, entry: None
    inputs: Callable[[Series, str | None], list[str]] = lambda series, entry: []
    # the output fingerprint when the series file gives the output instead (a base checkpoint's path)
    given: Callable[[Series, str | None], str | None] = lambda series, entry: None
    per_entry: bool = True      # False: once for the whole series (manifest key SERIES_KEY)
    batched: bool = False       # one command for every entry that needs it (the judge: one server start)
    unfingerprinted: tuple[str, ...] = ()  # flags whose value does not change the outputs
    # A side stage (a measurement): its upstream is this stage's output, and no later stage reads its output,
    # so it never re-runs training, and a failure of it stops nothing else.
    reads: str | None = None
    # False: the entry has no such stage (no `cpt:` block); its upstream passes through to the next stage
    applies: Callable[[Series, str | None], bool] = lambda series, entry: True


# ----------------------------------------------------------------------------- commands

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


def base_checkpoint(series: Series, name: str, resolve: bool = True) -> str:
    """An entry's base checkpoint (its given path / hub id, or its base stage's output)."""
    entry = series.entry(name)
    if entry.path is not None:
        return resolve_packaged(entry.path) if resolve else entry.path
    return str(output_path(series, name, "base"))


def pretrained_checkpoint(series: Series, name: str, resolve: bool = True) -> str:
    """What an entry's SFT starts from and what a `grow: from:` it is grown: its cpt output when it has
    a cpt stage, else its base checkpoint."""
    if series.entry(name).cpt is not None:
        return str(output_path(series, name, "cpt"))
    return base_checkpoint(series, name, resolve)


def _recipe_overrides(mapping: dict) -> list[str]:
    """{key: value} -> ['--key', 'value'] in the recipe command line's syntax."""
    args: list[str] = []
    for key, value in mapping.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, dict)):
            value = json.dumps(value)
        args += [f"--{key}", str(value)]
    return args


def _base_command(series: Series, entry: str | None, *, resolve: bool = True, **_) -> StageCommand:
    e = series.entry(entry)
    # an init copies a shape (the source's base will do), a grow the trained weights
    source = pretrained_checkpoint if e.grow else base_checkpoint
    src = source(series, e.source, resolve) if series.is_entry(e.source) else (
        resolve_packaged(e.source) if resolve else e.source)
    out = str(output_path(series, entry, "base"))
    if e.init:
        return StageCommand(align_cli(), ["init", "--like", src, "--seed", str(e.init.get("seed", 0)), "--out", out,
                                          *option_args(e.init, {"shape": "--shape"})])
    g = e.grow
    return StageCommand(align_cli(), ["grow", "--from", src, "--to", str(g["spec"]), "--method", str(g["method"]),
                                      "--depth", str(g.get("depth", "stack")), "--out", out,
                                      *option_args(g, {"noise": "--noise", "seed": "--seed"})])


def _training_command(stage: str) -> Callable[..., StageCommand]:
    def command(series: Series, entry: str | None, *, resume: bool = False, resolve: bool = True,
                **_) -> StageCommand:
        block, own = getattr(series, stage), getattr(series.entry(entry), stage)
        model = pretrained_checkpoint(series, entry, resolve) if stage == "sft" else str(
            output_path(series, entry, "sft"))
        args = [stage, "--config", str(block["recipe"]), "--model_name_or_path", model,
                "--output_dir", str(output_path(series, entry, stage)),
                *_recipe_overrides({**(block.get("overrides") or {}), **(own.get("overrides") or {})})]
        if resume:
            args += ["--resume_from_checkpoint", "true"]
        return StageCommand(training_program(series), args,
                            {k: str(v) for k, v in (series.train.get("env") or {}).items()})
    return command


def _training_inputs(stage: str) -> Callable[[Series, str | None], list[str]]:
    def inputs(series: Series, entry: str | None) -> list[str]:
        accelerate = series.train.get("accelerate_config")
        return [getattr(series, stage)["recipe"]] + ([accelerate] if accelerate else [])
    return inputs


def _cpt_command(series: Series, entry: str | None, *, resume: bool = False, resolve: bool = True,
                 **_) -> StageCommand:
    """`align cpt` on the entry's base checkpoint, with the token budget the series gives or derives."""
    args, overrides = pretraining.cpt_args(series, entry, base_checkpoint(series, entry, resolve),
                                           str(output_path(series, entry, "cpt")))
    args += _recipe_overrides(overrides) + (["--resume_from_checkpoint", "true"] if resume else [])
    return StageCommand(training_program(series), args, {k: str(v) for k, v in (series.train.get("env") or {}).items()})


def _eval_command(stage: str) -> Callable[..., StageCommand]:
    """`align eval` on the entry's base checkpoint; `align heldout` on its DPO model (reference: its SFT model)."""
    def command(series: Series, entry: str | None, *, resolve: bool = True, **_) -> StageCommand:
        args = eval_stages.base_eval_args(series, entry, pretrained_checkpoint(series, entry, resolve)) \
            if stage == "base_eval" else eval_stages.heldout_args(series, entry, stage.split("_")[1], *(
                str(output_path(series, entry, s)) for s in ("dpo", "sft")))
        return StageCommand(align_cli(), args, {k: str(v) for k, v in (series.train.get("env") or {}).items()})
    return command


def _eval_stage(name: str, reads: str) -> Stage:
    return Stage(name, outputs=outputs_of(name), verify=eval_stages.verified(name), command=_eval_command(name),
                 reset=eval_stages.reset(name), inputs=eval_stages.inputs(name), given=eval_stages.off, reads=reads,
                 unfingerprinted=("--batch-size", "--device"))


def _answer_command(series: Series, entry: str | None, **_) -> StageCommand:
    a = series.answer
    args = ["mtbench", "answer", "--model-path", str(output_path(series, entry, "dpo")), "--model-id", entry,
            "--answer-file", str(output_path(series, entry, "answer")),
            *option_args(a, {"question_begin": "--question-begin", "question_end": "--question-end",
                          "max_new_token": "--max-new-token", "backend": "--backend", "batch_size": "--batch-size",
                          "question_dir": "--question-dir"}),
            *map(str, (a.get("extra_args") or []) + (series.entry(entry).answer.get("extra_args") or []))]
    return StageCommand(align_cli(), args)


def _judge_command(series: Series, entry: str | None, *, resolve: bool = True, batch: list[str] | None = None,
                   judge: dict | None = None, output: Path | None = None, **_) -> StageCommand:
    """Single scores, with the judge check's @mismatched controls unless `controls: false`
    (`judge`, `output`: another judge of a `judge:` list and its own file; default the first judge's)."""
    j = judge or series.judge
    model = resolve_packaged(str(j["model"])) if resolve else str(j["model"])
    answers = [str(output_path(series, name, "answer")) for name in batch or [entry]]
    args = ["mtbench", "judge", "--answer-file", *answers, "--judge-model", model,
            "--output-file", str(output or output_path(series, None, "judge")),
            *(["--controls"] if j.get("controls", True) else []),
            *option_args(j, {"base_url": "--base-url", "parallel": "--parallel", "max_tokens": "--max-tokens",
                          "prefill": "--judge-prefill"}),
            *option_args(series.answer, {"question_dir": "--question-dir"}), *map(str, j.get("extra_args") or [])]
    return StageCommand(align_cli(), args)


def _pairwise_command(series: Series, entry: str | None, *, resolve: bool = True, batch: list[str] | None = None,
                      judge: dict | None = None, output: Path | None = None, **_) -> StageCommand:
    """Each entry against its same-size scratch entry, both orders (FastChat's pairwise-baseline, a baseline
    per entry). `pair_prefill`, not `prefill`: a score prefill ("Rating: [[") fits no [[A]]/[[B]] verdict."""
    j = judge or series.judge
    model = resolve_packaged(str(j["model"])) if resolve else str(j["model"])
    pairs = [(name, scratch_baseline(series, name)) for name in batch or [entry]]
    answers = dict.fromkeys(str(output_path(series, name, "answer")) for pair in pairs for name in pair)
    args = ["mtbench", "judge", "--mode", "pairwise-baseline", "--answer-file", *answers, "--judge-model", model,
            "--output-file", str(output or output_path(series, None, "pairwise")),
            *[arg for pair in pairs for arg in ("--pair", *pair)],
            *option_args(j, {"base_url": "--base-url", "parallel": "--parallel", "max_tokens": "--max-tokens",
                          "pair_prefill": "--judge-prefill"}),
            *option_args(series.answer, {"question_dir": "--question-dir"}), *map(str, j.get("extra_args") or [])]
    return StageCommand(align_cli(), args)


def _report_command(series: Series, entry: str | None, *, resolve: bool = True, **_) -> StageCommand:
    """The table from both judgment files (the pairwise one when there is one) and every entry's answers;
    with cpt stages, the pretraining curves' sources (written now, when the command is to run)."""
    curves = (pretraining.write_curve_sources(series, lambda name: output_path(series, name, "cpt")) if resolve
              else pretraining.curve_sources_path(series))
    inputs = [output_path(series, None, stage) for stage in ("judge", "pairwise")]
    answers = [output_path(series, e.name, "answer") for e in series.models]
    return StageCommand(align_cli(), ["mtbench", "report", "--input-file", *[str(p) for p in inputs if p.is_file()],
                                      "--answer-file", *[str(p) for p in answers if p.is_file()],
                                      "--out-dir", str(series.output_dir), "--series", str(series.file),
                                      *option_args(series.answer, {"question_dir": "--question-dir"}),
                                      *eval_stages.report_args(series),
                                      *(["--pretraining", str(curves)] if curves else []),
                                      *map(str, series.report.get("extra_args") or [])])


def _base_inputs(series: Series, entry: str | None) -> list[str]:
    """The growth spec or the init shape: their content is part of the base's fingerprint."""
    e = series.entry(entry)
    return [e.grow["spec"]] if e.grow else [e.init["shape"]] if e.init and e.init.get("shape") else []


# ----------------------------------------------------------------------------- the table

STAGES: dict[str, Stage] = {stage.name: stage for stage in [
    # grow / init: built from another entry or a path; an entry with `path:` has it given
    Stage("base", outputs=outputs_of("base"), verify=checkpoint_verified("base"), command=_base_command,
          reset=remove_outputs("base"), given=given_base,
          inputs=_base_inputs),
    # continued pretraining of the base checkpoint (entries with a `cpt:` block); SFT starts from its output
    Stage("cpt", outputs=outputs_of("cpt"), verify=checkpoint_verified("cpt"), command=_cpt_command,
          resumable=has_checkpoint("cpt"), reset=remove_outputs("cpt"),
          inputs=lambda series, entry: [pretraining.recipe_of(series, series.entry(entry))] + (
              [series.train["accelerate_config"]] if series.train.get("accelerate_config") else []),
          applies=lambda series, entry: series.entry(entry).cpt is not None),
    _eval_stage("base_eval", reads="cpt"),  # the study's Table 1, before SFT
    Stage("sft", outputs=outputs_of("sft"), verify=checkpoint_verified("sft"), command=_training_command("sft"),
          resumable=has_checkpoint("sft"), reset=remove_outputs("sft"), inputs=_training_inputs("sft")),
    Stage("dpo", outputs=outputs_of("dpo"), verify=checkpoint_verified("dpo"), command=_training_command("dpo"),
          resumable=has_checkpoint("dpo"), reset=remove_outputs("dpo"), inputs=_training_inputs("dpo")),
    _eval_stage("heldout_sft", reads="dpo"),  # the final model on held-out SFT rows
    _eval_stage("heldout_dpo", reads="dpo"),  # ... and on held-out preference pairs
    Stage("answer", outputs=outputs_of("answer"), verify=answers_verified, command=_answer_command,
          resumable=always, reset=remove_outputs("answer")),
    Stage("judge", outputs=outputs_of("judge"), verify=judgments_verified, command=_judge_command,
          resumable=always, reset=remove_judgments, batched=True, unfingerprinted=("--parallel",)),
    # judge.mode pairwise: each non-scratch entry against the same-size scratch entry. No reset: the
    # judge's cache is keyed on the whole prompts (both answers), so only changed matches are paid for.
    Stage("pairwise", outputs=outputs_of("pairwise"), verify=pairwise_verified, command=_pairwise_command,
          resumable=always, given=no_pairwise_match, batched=True, unfingerprinted=("--parallel",),
          inputs=lambda series, entry: baseline_answers(series, entry)),
    Stage("report", outputs=outputs_of("report"), verify=report_verified, command=_report_command, per_entry=False),
]}


def prepare_stage(step: dict) -> Stage:
    """A series file's `prepare:` step (data, question subsets) as a stage run once before the entries.

    Its command's first word `python` or `align` runs this interpreter / the align CLI.
    """
    files = [Path(f) for f in step["outputs"]]

    def verify(series: Series, entry: str | None) -> str | None:
        return fingerprint([file_sha256(f) for f in files]) if all(f.is_file() for f in files) else None

    def command(series: Series, entry: str | None, **_) -> StageCommand:
        raw = [str(a) for a in step["command"]]
        if raw[0] == "align":
            return StageCommand(align_cli(), raw[1:])
        return StageCommand([sys.executable] if raw[0] == "python" else raw[:1], raw[1:])

    return Stage(f"prepare:{step['name']}", outputs=lambda series, entry: files, verify=verify, command=command,
                 per_entry=False)


def build_command(stage: Stage, series: Series, entry: str | None, **options) -> StageCommand:
    """The runner's default command factory: the stage's own command line."""
    return stage.command(series, entry, **options)


STAGE_ALIASES = {"grow": "base", "init": "base"}


def selected_stages(only: str | None) -> set[str]:
    """`--only prepare,grow,sft` -> the stage names it selects (all when not given)."""
    names = ["prepare", *STAGES]
    if not only:
        return set(names)
    chosen = set()
    for word in only.split(","):
        word = STAGE_ALIASES.get(word.strip(), word.strip())
        if word not in names:
            raise UserError(f"--only: unknown stage {word!r} (stages: {', '.join(names)}; grow = base)")
        chosen.add(word)
    return chosen
