"""Where a training run writes: the output-dir policy (refuse a non-empty one unless resuming or
overwriting a previous run's output, never an input's folder) and which checkpoint a resume starts
from. Read by the pre-run checks, the launcher and the stage itself; deletes nothing."""

from __future__ import annotations

import logging
from pathlib import Path

from align.plumbing.errors import UserError

log = logging.getLogger("align")


def _resume_checkpoint(out: Path, resume) -> str | None:
    """`--resume_from_checkpoint true`: the newest *complete* checkpoint-N (a save cut short by a kill is
    skipped, saying why); a path: that checkpoint, if complete."""
    from align.train.checkpoints import checkpoint_problem, newest_complete_checkpoint

    if resume is True:
        last, skipped = newest_complete_checkpoint(out)
        for path, why in skipped:
            log.warning("skipping %s: %s", path, why)
        if last is None:
            if out.is_dir() and (out / "run_card.json").exists():
                raise UserError(f"{out} already holds a finished run (run_card.json); nothing to resume")
            log.warning("resume requested but %s has no complete checkpoint-N yet: starting from scratch", out)
            return None
        log.info("resuming from %s%s", last, f" (newer {len(skipped)} skipped: incomplete)" if skipped else "")
        return last
    if not Path(resume).is_dir():
        raise UserError(f"resume_from_checkpoint {resume} is not a checkpoint directory")
    problem = checkpoint_problem(resume)
    if problem:
        raise UserError(f"resume_from_checkpoint {resume} is incomplete ({problem}); "
                        "pass --resume_from_checkpoint true to use the newest complete one")
    return str(resume)


def run_inputs(model_args, data_args, training_args) -> dict[str, str | None]:
    """The local paths a run reads, which its output_dir must never be, contain or lie inside."""
    return {"model_name_or_path": model_args.model_name_or_path, "dataset_name": data_args.dataset_name,
            "chat_template_path": getattr(training_args, "chat_template_path", None),
            "ref_model": getattr(training_args, "ref_model", None)}  # a recipe's separate DPO reference, if any


def plan_output_dir(training_args, run_args, inputs: dict[str, str | None]) -> tuple[str | None, bool]:
    """Check the output-dir policy; return (checkpoint to resume from or None, whether to replace the
    previous output). Deletes nothing: `replace_previous_output` does that, last, before training.

    A non-empty output_dir is refused unless resuming or overwrite_output_dir; overwriting is refused
    when output_dir is not a previous run's output, and output_dir must never be, contain or lie inside
    an input.
    """
    from align.plumbing.outputs import check_output_target, is_previous_run_output
    from align.train.values import lenient_bool

    out = Path(training_args.output_dir)
    check_output_target(out, inputs, flag="output_dir")
    resume = training_args.resume_from_checkpoint
    word = lenient_bool(resume)  # a path, or a boolean (word) read as every recipe boolean is
    if word is not None or str(resume).lower() in ("none", ""):
        resume = True if word else None
    if resume is not None:
        return _resume_checkpoint(out, resume), False
    if out.is_dir() and any(out.iterdir()):
        if not run_args.overwrite_output_dir:
            raise UserError(f"output_dir {out} is not empty: pass --overwrite_output_dir to replace it, "
                            "or --resume_from_checkpoint true to continue its last checkpoint")
        if not is_previous_run_output(out):
            from align.plumbing.outputs import remove_previous_output

            remove_previous_output(out, flag="output_dir")  # raises: it names what is in there
        return None, True
    return None, False
