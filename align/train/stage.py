"""One training run, the same for every kind (SFT, CPT, DPO: align/train/kinds.py holds what differs):
checks, data, trainer, saving, run card, loss plot, and applying the output-dir policy and resume that
output_plan.py decides."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from align.plumbing.accounting import count_parameters, training_flops
from align.plumbing.locks import output_lock
from align.plumbing.runcard import write_run_card
from align.train.output_plan import plan_output_dir, run_inputs

log = logging.getLogger("align")


def setup_logging(training_args) -> None:
    import datasets
    import transformers

    level = training_args.get_process_log_level()
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    log.setLevel(logging.INFO if training_args.process_index == 0 else logging.WARNING)
    transformers.utils.logging.set_verbosity(level)
    datasets.utils.logging.set_verbosity(min(level, logging.WARNING))


def cpu_distributed_argv(argv: list[str]) -> list[str]:
    """Several processes and no GPU (CI): make accelerate form a real CPU process group.

    accelerate 1.15 picks no process-group backend when there is no GPU unless told to use the
    CPU, and then each process trains alone (plain DDP) or, under DeepSpeed, accelerate counts
    1 process while DeepSpeed counts them all, and DeepSpeed's batch check fails
    (train_batch_size 4 != 4 * 1 * 2). Plain DDP: ACCELERATE_USE_CPU=true gives a gloo group.
    DeepSpeed (where use_cpu would switch DeepSpeed off): an explicit `--ddp_backend gloo` gives
    accelerate the backend, so it reads the true world size. Must run before the recipe is parsed:
    TrainingArguments sets up devices when it is constructed.
    """
    import os
    import sys

    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch.cuda.is_available():
        return argv
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        has_backend = any(a == "--ddp_backend" or a.startswith("--ddp_backend=") for a in argv)
        return argv if has_backend else [*argv, "--ddp_backend", "gloo"]
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and os.environ.get("RANK", "0") == "0":
        # accelerate implements FSDP for accelerators only; on CPU it would train unsharded anyway.
        print("align: no GPU: accelerate has no FSDP on CPU, running as plain CPU data parallel",
              file=sys.stderr, flush=True)
    os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    return argv


def replace_previous_output(training_args, replace: bool) -> None:
    """The last step before training: delete the previous run's output (rank 0), everyone waits."""
    from align.plumbing.outputs import remove_previous_output

    if replace and training_args.process_index == 0:
        log.info("replacing the previous run in %s (--overwrite_output_dir)", training_args.output_dir)
        remove_previous_output(training_args.output_dir, flag="output_dir")
    if training_args.world_size > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()
    Path(training_args.output_dir).mkdir(parents=True, exist_ok=True)


def prepare_run(training_args, run_args, inputs: dict[str, str | None]) -> tuple[str | None, bool]:
    """Output-dir policy checks (nothing deleted yet); returns (resume checkpoint, replace previous output)."""
    resume, replace = plan_output_dir(training_args, run_args, inputs)
    training_args.resume_from_checkpoint = resume
    if training_args.include_num_input_tokens_seen in ("no", False):
        training_args.include_num_input_tokens_seen = "non_padding"  # tokens trained, for the run card
    return resume, replace


def hub_token_to_environment(training_args) -> None:
    """Take `hub_token` out of the arguments: the Trainer pickles them into training_args.bin (in
    output_dir and every checkpoint), where it would sit in clear text. The hub client gets it from
    HF_TOKEN instead, which huggingface_hub reads on every call the Trainer makes with token=None
    (create_repo, upload_folder); environment variables are never written to a file."""
    if training_args.hub_token:
        os.environ["HF_TOKEN"] = training_args.hub_token
        training_args.hub_token = None


def model_init_kwargs(training_args, model_args) -> None:
    """Model loading options from the recipe's model keys, as TRL's own scripts pass them."""
    kwargs = dict(revision=model_args.model_revision, trust_remote_code=training_args.trust_remote_code,
                  attn_implementation=model_args.attn_implementation, dtype=model_args.dtype)
    kwargs.update(training_args.model_init_kwargs or {})
    training_args.model_init_kwargs = kwargs


def peft_and_quantization(model_args):
    from trl import get_peft_config, get_quantization_config

    from align.train.values import check_environment

    check_environment(model_args)
    return get_peft_config(model_args), get_quantization_config(model_args)


def save_outputs(trainer, tokenizer, model_args, training_args) -> None:
    """Final model (merged if asked), tokenizer with its chat template, generation config with the right eos."""
    from align.train.chat import fix_generation_config

    out = Path(training_args.output_dir)
    if model_args.use_peft and model_args.merge_adapter:
        adapter_dir = out / "adapter"
        trainer.save_model(str(adapter_dir))
        trainer.accelerator.wait_for_everyone()
        if trainer.accelerator.is_main_process:
            merge_adapter(adapter_dir, out, model_args, training_args)
    else:
        trainer.save_model(str(out))
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(out)
        fix_generation_config(out, tokenizer)


def merge_adapter(adapter_dir: Path, out: Path, model_args, training_args) -> None:
    """Load base + adapter on CPU, merge LoRA into the weights, save an ordinary checkpoint."""
    import torch
    from peft import AutoPeftModelForCausalLM

    dtype = model_args.dtype if model_args.dtype not in (None, "auto") else "float32"
    model = AutoPeftModelForCausalLM.from_pretrained(adapter_dir, dtype=getattr(torch, dtype),
                                                     trust_remote_code=training_args.trust_remote_code)
    merged = model.merge_and_unload()
    merged.save_pretrained(out)
    log.info("merged LoRA adapter from %s into %s", adapter_dir, out)


def plot_loss(log_history: list[dict], path: Path, title: str) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    if not points:
        return None
    evals = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(*zip(*points), marker="." if len(points) < 50 else None, label="train loss")
    if evals:
        ax.plot(*zip(*evals), marker="o", label="eval loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def parameter_counts(model) -> dict[str, int]:
    """The model's own parameters, the trainable ones, and a LoRA adapter's (0 without one), separately."""
    total = count_parameters(model)
    adapter = sum(getattr(p, "ds_numel", None) or p.numel() for name, p in model.named_parameters()
                  if "lora_" in name)
    return {"parameters": total - adapter, "trainable_parameters": count_parameters(model, trainable_only=True),
            "adapter_parameters": adapter}


def finish_run(trainer, *, stage: str, started: float, resolved: dict, data_cards: dict, model_args,
               training_args, extra: dict[str, Any] | None = None) -> None:
    """Loss plot and run card (written last: its presence marks the stage as done)."""
    if not trainer.accelerator.is_main_process:
        return
    out = Path(training_args.output_dir)
    state = trainer.state
    counts = parameter_counts(trainer.model)
    tokens = int(state.num_input_tokens_seen or 0)
    plot = plot_loss(state.log_history, out / "loss.png", f"{stage}: {Path(out).name}")
    trainer.save_state()  # trainer_state.json: the whole log (the series report's pretraining plot reads it)
    card = {
        "stage": stage,
        "recipe": resolved,
        "training_args": training_args.to_dict(),
        "model_args": vars(model_args),
        "data": data_cards,
        "global_step": state.global_step,
        "tokens_trained": tokens,
        "tokens_trained_note": "input ids (tokens) the model was fed, padding excluded and eos included, all "
                                  "processes, resumed runs included; DPO counts chosen + rejected",
        **counts,
        "flops_6nd": training_flops(counts["parameters"], tokens),
        "flops_6nd_note": "6·N·D with N = `parameters` (the model's own, a LoRA adapter not included: forward "
                          "and backward pass through the whole model) and D = tokens_trained",
        "train_metrics": {k: v for k, v in (state.log_history[-1] if state.log_history else {}).items()},
        "loss_plot": plot.name if plot else None,
        "world_size": training_args.world_size,
        "distributed_type": str(trainer.accelerator.distributed_type).split(".")[-1],
        **(extra or {}),
    }
    write_run_card(out, card, started=started)
    log.info("%s done: %d steps, %d tokens, run card %s", stage, state.global_step, tokens, out / "run_card.json")


@contextlib.contextmanager
def _refusal_leaves_no_output(output_dir: str, new: bool):
    """A check refusing the run after the Trainer created output_dir: the folder goes again when it is empty
    and this run created it (nothing half-written)."""
    from align.plumbing.errors import UserError

    try:
        yield
    except UserError:
        if new:
            with contextlib.suppress(OSError):  # not empty, or another process removed it first
                Path(output_dir).rmdir()
        raise


def run_training(stage: str, argv: list[str]) -> int:
    """One training stage end to end: recipe -> checks -> checked rows -> tokenizer -> TRL trainer ->
    (only now) replace a previous output -> train -> outputs.

    `stage` names a training kind (align.train.kinds: sft, cpt, dpo), whose hooks do what the kinds do
    their own way. Every check (recipe, values, environment, data, TRL's own dataset preparation) passes
    before a previous output_dir is deleted: a refused run deletes nothing.
    """
    with contextlib.ExitStack() as held:  # the output_dir lock (align.plumbing.locks), held until the run ends
        return _run_training(stage, argv, held)


def _run_training(stage: str, argv: list[str], held: contextlib.ExitStack) -> int:
    from align.train.checkpoints import train_without_overshoot
    from align.train.checks import preflight
    from align.train.compat import env_card, recipe_env
    from align.train.kinds import KINDS
    from align.train.mixture import load_training_data
    from align.train.preemption import PREEMPTED_EXIT, watch_for_preemption
    from align.train.recipe import cli_keys, recipe_command_line
    from align.train.values import check_trainable_rows, follow_recipe_precision

    kind = KINDS[stage]
    argv = cpu_distributed_argv(argv)
    follow_recipe_precision(*recipe_command_line(argv))  # before TrainingArguments read accelerate's setting
    parsed = preflight(stage, argv)  # recipe, data sources, environment: before anything is touched or loaded
    if parsed is None:
        return 0  # --dry_run true: checked, nothing loaded
    data_args, training_args, model_args, run_args, resolved = parsed
    started = time.time()
    setup_logging(training_args)
    if training_args.process_index == 0:  # one run per output_dir; checked before it is read or deleted
        held.enter_context(output_lock(training_args.output_dir, "output_dir"))
    for note in resolved.get("translated_keys", []):
        log.info("recipe: %s", note)
    hub_token_to_environment(training_args)
    resume, replace = prepare_run(training_args, run_args, run_inputs(model_args, data_args, training_args))
    peft_config, quantization_config = peft_and_quantization(model_args)

    # Data first: a bad row fails the run before the model is loaded.
    where = resolved.get("recipe_file") or "command line"
    train, evaluation, cards = load_training_data(data_args, training_args, kind.rows, where)
    eval_dataset = evaluation.dataset if evaluation is not None else None
    tokenizer = kind.load_tokenizer(model_args, training_args, data_args)
    trainer_cls = kind.prepare_trainer(train, tokenizer, model_args, training_args)  # CPT: token shards
    kind.check_rows(train.dataset, tokenizer, training_args)  # SFT, DPO: max_length keeps an answer
    model_init_kwargs(training_args, model_args)
    extra = kind.prepare_rows(train, model_args, training_args)  # the run card's extras (DPO: its reference)

    new_output = not Path(training_args.output_dir).exists()  # the Trainer creates it; a refusal below removes it
    trainer = trainer_cls(model=model_args.model_name_or_path, args=training_args, train_dataset=train.dataset,
                          eval_dataset=eval_dataset, processing_class=tokenizer, peft_config=peft_config,
                          quantization_config=quantization_config)
    with _refusal_leaves_no_output(training_args.output_dir, new_output):
        check_trainable_rows(trainer, training_args, kind.trained)
        kind.check_data_use(trainer, train, tokenizer, training_args, resolved, cli_keys(argv), extra)
    replace_previous_output(training_args, replace)
    log.info("%s: %s rows (%s skipped as invalid), %s", stage.upper(), train.rows_kept, train.rows_skipped,
             "resuming " + resume if resume else "fresh start")
    preemption = watch_for_preemption(trainer)  # SIGTERM / SIGUSR1: checkpoint at the step's end, then stop
    train_without_overshoot(trainer, resume)  # a checkpoint already at max_steps takes no further step
    if preemption.stopped_at is not None:  # not done: no final save, no run card
        trainer.accelerator.wait_for_everyone()
        log.info("%s stopped on a signal after step %d with checkpoint-%d in %s: run again with "
                 "--resume_from_checkpoint true to continue", stage, preemption.stopped_at, preemption.stopped_at,
                 training_args.output_dir)
        if preemption.requested == signal.SIGTERM:  # as Ctrl-C (align.plumbing.interrupt): one line, exit 130
            raise KeyboardInterrupt
        return PREEMPTED_EXIT  # the scheduler's warning (SIGUSR1): "not done, resume me"
    save_outputs(trainer, tokenizer, model_args, training_args)
    finish_run(trainer, stage=stage, started=started, resolved=resolved, data_cards=cards,
               model_args=model_args, training_args=training_args,
               extra={"resumed_from": resume, "chat_template": tokenizer.chat_template,
                      "recipe_translations": resolved.get("translated_keys", []), "env": env_card(recipe_env(argv)),
                      **extra})
    trainer.accelerator.wait_for_everyone()
    return 0
