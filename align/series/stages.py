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

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from align.errors import UserError
from align.files import atomic_write_jsonl, file_sha256, read_jsonl
from align.locks import output_lock
from align.outputs import remove_previous_output
from align.series import eval_stages, pretraining
from align.series.manifest import fingerprint
from align.series.spec import Series, resolve_packaged
from align.train.checkpoints import newest_complete_checkpoint
from judges.judging.controls import control_of
from judges.records import failed_list_path, latest_per_slot, read_judgments


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


# ----------------------------------------------------------------------------- outputs and checks

def output_path(series: Series, entry: str | None, stage: str) -> Path:
    """Where a built-in stage writes: a checkpoint directory, an answer / judgment file, the report dir."""
    out = series.output_dir
    return {
        "base": lambda: out / entry / "base",
        "cpt": lambda: out / entry / "cpt",
        "sft": lambda: out / entry / "sft",
        "dpo": lambda: out / entry / "dpo",
        "answer": lambda: out / entry / "model_answer" / f"{entry}.jsonl",
        "judge": lambda: out / "model_judgment" / "judgments.jsonl",
        "pairwise": lambda: out / "model_judgment" / "judgments_pair.jsonl",  # FastChat's _pair beside _single
        "report": lambda: out,
        **{name: (lambda name=name: eval_stages.eval_dir(series, entry, name)) for name in eval_stages.OUTPUT_DIRS},
    }[stage]()


def _outputs(stage: str) -> Callable[[Series, str | None], list[Path]]:
    return lambda series, entry: [output_path(series, entry, stage)]


def _remove_outputs(stage: str) -> Callable[[Series, str | None], None]:
    def reset(series: Series, entry: str | None) -> None:
        path = output_path(series, entry, stage)
        with output_lock(path, "stage reset: output"):  # not while an align command is writing it
            if path.is_dir():
                remove_previous_output(path, flag="stage output")  # only what a previous run wrote
            elif path.exists():
                path.unlink()
    return reset


def _checkpoint_verified(stage: str) -> Callable[[Series, str | None], str | None]:
    """A checkpoint stage is complete once its config and its run card (written last) are there."""
    def verify(series: Series, entry: str | None) -> str | None:
        out = output_path(series, entry, stage)
        card = out / "run_card.json"
        return file_sha256(card) if card.is_file() and (out / "config.json").is_file() else None
    return verify


def _has_checkpoint(stage: str) -> Callable[[Series, str | None], bool]:
    """A trainer can resume once it saved a complete `checkpoint-N` (a save cut off by a kill is not one)."""
    def resumable(series: Series, entry: str | None) -> bool:
        out = output_path(series, entry, stage)
        return out.is_dir() and newest_complete_checkpoint(out)[0] is not None
    return resumable


def _always(series: Series, entry: str | None) -> bool:
    return True  # answer and judge skip what they already wrote


def _answers_verified(series: Series, entry: str | None) -> str | None:
    path = output_path(series, entry, "answer")
    if not path.is_file():
        return None
    latest = latest_per_slot((r.get("question_id"), r) for r in read_jsonl(path))  # as the judge will read them
    turns = {qid: len((r.get("choices") or [{}])[0].get("turns") or []) for qid, r in latest.items()}
    if any(turns.get(qid, 0) < n for qid, n in series.question_turns):
        return None
    return file_sha256(path)


def judgment_records(series: Series, path: Path, pairwise: bool = False) -> list[dict]:
    """Every record of a judgment file, each checked as the report checks it (a bad one is a UserError)."""
    if not path.is_file():
        return []
    return [rec for _, rec in read_judgments(path, series.question_set, pairwise)]


def judgment_rows(series: Series, entry: str, controls: bool = False) -> list[dict]:
    """The entry's single judgments (and, with `controls`, those of its @mismatched control)."""
    names = {entry, control_of(entry)} if controls else {entry}
    return [r for r in judgment_records(series, output_path(series, entry, "judge")) if r.get("model") in names]


def _judgments_verified(series: Series, entry: str | None) -> str | None:
    have = {(r.get("question_id"), r.get("turn")) for r in judgment_rows(series, entry)}
    if any((qid, t) not in have for qid, n in series.question_turns for t in range(1, n + 1)):
        return None
    # The control's judgments count too: the report's judge check reads them.
    return fingerprint(sorted(json.dumps(r, sort_keys=True) for r in judgment_rows(series, entry, True)))


def scratch_baseline(series: Series, entry: str) -> str | None:
    """judge.mode pairwise: the same-size scratch entry a non-scratch entry is compared with (the first one)."""
    e = series.entry(entry)
    if series.judge.get("mode") != "pairwise" or e.construction == "scratch":
        return None
    return next((m.name for m in series.models if m.construction == "scratch" and m.size == e.size), None)


def _pairwise_verified(series: Series, entry: str | None) -> str | None:
    """Every match of entry vs its scratch judged; with the entry's single judgments (the report reads both)."""
    path, baseline = output_path(series, entry, "pairwise"), scratch_baseline(series, entry)
    rows = [r for r in judgment_records(series, path, pairwise=True)
            if (r.get("model_1"), r.get("model_2")) == (entry, baseline)]
    have = {(r.get("question_id"), r.get("turn")) for r in rows}
    if any((qid, t) not in have for qid, n in series.question_turns for t in range(1, n + 1)):
        return None
    return fingerprint(_judgments_verified(series, entry), sorted(json.dumps(r, sort_keys=True) for r in rows))


def _baseline_answers(series: Series, entry: str | None) -> list[str]:
    """The scratch entry's answers are half of every match: their content is part of the fingerprint."""
    baseline = scratch_baseline(series, entry)
    path = output_path(series, baseline, "answer") if baseline else None
    return [str(path)] if path is not None and path.is_file() else []


def _no_pairwise_match(series: Series, entry: str | None) -> str | None:
    """An entry without a pairwise match (single mode, a scratch entry, no scratch of its size) has
    nothing to run; its output is its single judgments."""
    return None if scratch_baseline(series, entry) else fingerprint("no match", _judgments_verified(series, entry))


def checkpoint_fingerprint(ref: str) -> str:
    """Identity of a given checkpoint without reading weights: config + file names, sizes, mtimes."""
    path = Path(ref)
    if not path.is_dir():
        return "hub:" + ref
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    if (path / "config.json").is_file():
        h.update((path / "config.json").read_bytes())
    return h.hexdigest()[:16]


def _given_base(series: Series, entry: str | None) -> str | None:
    path = series.entry(entry).path
    return None if path is None else checkpoint_fingerprint(path)


def _remove_judgments(series: Series, entry: str | None) -> None:
    """The judgment file is shared: drop this entry's and its control's rows (and failures), keep the rest."""
    path = output_path(series, entry, "judge")
    with output_lock(path, "stage reset: judgments"):  # a judge appending meanwhile would lose its records
        for file in (path, failed_list_path(path)):
            if file.is_file():
                keep = [r for r in read_jsonl(file) if r.get("model") not in (entry, control_of(entry))]
                atomic_write_jsonl(file, keep)


def _report_verified(series: Series, entry: str | None) -> str | None:
    out = output_path(series, None, "report")
    table = out / "table.csv"
    return file_sha256(table) if table.is_file() and (out / "table.md").is_file() else None


# ----------------------------------------------------------------------------- commands

def align_cli() -> list[str]:
    return [sys.executable, "-m", "align.cli"]


def slurm_launcher() -> list[str]:
    """`accelerate launch` once per node of the Slurm allocation, each with its node's rank.

    Run the series inside `sbatch --nodes=N` (see recipes/series/slurm.sbatch); the first node
    of the allocation is the rendezvous host; ALIGN_GPUS_PER_NODE (default 8) sets the world size.
    """
    per_node = (f'exec "{sys.executable}" -m accelerate.commands.launch --num_machines "$SLURM_NNODES" '
                '--machine_rank "$SLURM_NODEID" --num_processes "$((SLURM_NNODES * ${ALIGN_GPUS_PER_NODE:-8}))" '
                '--main_process_ip "$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)" '
                '--main_process_port "${ALIGN_MASTER_PORT:-29500}" "$@"')
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


def _options(mapping: dict, flags: dict[str, str]) -> list[str]:
    """['--flag', 'value'] for each key of `flags` that `mapping` sets."""
    return [arg for key, flag in flags.items() if mapping.get(key) is not None for arg in (flag, str(mapping[key]))]


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
                                          *_options(e.init, {"shape": "--shape"})])
    g = e.grow
    return StageCommand(align_cli(), ["grow", "--from", src, "--to", str(g["spec"]), "--method", str(g["method"]),
                                      "--depth", str(g.get("depth", "stack")), "--out", out,
                                      *_options(g, {"noise": "--noise", "seed": "--seed"})])


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
    return Stage(name, outputs=_outputs(name), verify=eval_stages.verified(name), command=_eval_command(name),
                 reset=eval_stages.reset(name), inputs=eval_stages.inputs(name), given=eval_stages.off, reads=reads,
                 unfingerprinted=("--batch-size", "--device"))


def _answer_command(series: Series, entry: str | None, **_) -> StageCommand:
    a = series.answer
    args = ["mtbench", "answer", "--model-path", str(output_path(series, entry, "dpo")), "--model-id", entry,
            "--answer-file", str(output_path(series, entry, "answer")),
            *_options(a, {"question_begin": "--question-begin", "question_end": "--question-end",
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
            *_options(j, {"base_url": "--base-url", "parallel": "--parallel", "max_tokens": "--max-tokens",
                          "prefill": "--judge-prefill"}),
            *_options(series.answer, {"question_dir": "--question-dir"}), *map(str, j.get("extra_args") or [])]
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
            *_options(j, {"base_url": "--base-url", "parallel": "--parallel", "max_tokens": "--max-tokens",
                          "pair_prefill": "--judge-prefill"}),
            *_options(series.answer, {"question_dir": "--question-dir"}), *map(str, j.get("extra_args") or [])]
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
                                      *_options(series.answer, {"question_dir": "--question-dir"}),
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
    Stage("base", outputs=_outputs("base"), verify=_checkpoint_verified("base"), command=_base_command,
          reset=_remove_outputs("base"), given=_given_base,
          inputs=_base_inputs),
    # continued pretraining of the base checkpoint (entries with a `cpt:` block); SFT starts from its output
    Stage("cpt", outputs=_outputs("cpt"), verify=_checkpoint_verified("cpt"), command=_cpt_command,
          resumable=_has_checkpoint("cpt"), reset=_remove_outputs("cpt"),
          inputs=lambda series, entry: [pretraining.recipe_of(series, series.entry(entry))] + (
              [series.train["accelerate_config"]] if series.train.get("accelerate_config") else []),
          applies=lambda series, entry: series.entry(entry).cpt is not None),
    _eval_stage("base_eval", reads="cpt"),  # the study's Table 1, before SFT
    Stage("sft", outputs=_outputs("sft"), verify=_checkpoint_verified("sft"), command=_training_command("sft"),
          resumable=_has_checkpoint("sft"), reset=_remove_outputs("sft"), inputs=_training_inputs("sft")),
    Stage("dpo", outputs=_outputs("dpo"), verify=_checkpoint_verified("dpo"), command=_training_command("dpo"),
          resumable=_has_checkpoint("dpo"), reset=_remove_outputs("dpo"), inputs=_training_inputs("dpo")),
    _eval_stage("heldout_sft", reads="dpo"),  # the final model on held-out SFT rows
    _eval_stage("heldout_dpo", reads="dpo"),  # ... and on held-out preference pairs
    Stage("answer", outputs=_outputs("answer"), verify=_answers_verified, command=_answer_command,
          resumable=_always, reset=_remove_outputs("answer")),
    Stage("judge", outputs=_outputs("judge"), verify=_judgments_verified, command=_judge_command,
          resumable=_always, reset=_remove_judgments, batched=True, unfingerprinted=("--parallel",)),
    # judge.mode pairwise: each non-scratch entry against the same-size scratch entry. No reset: the
    # judge's cache is keyed on the whole prompts (both answers), so only changed matches are paid for.
    Stage("pairwise", outputs=_outputs("pairwise"), verify=_pairwise_verified, command=_pairwise_command,
          resumable=_always, given=_no_pairwise_match, batched=True, unfingerprinted=("--parallel",),
          inputs=lambda series, entry: _baseline_answers(series, entry)),
    Stage("report", outputs=_outputs("report"), verify=_report_verified, command=_report_command, per_entry=False),
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
