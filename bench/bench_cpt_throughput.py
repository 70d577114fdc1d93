"""`align cpt` (and `align sft`) training throughput against a plain PyTorch loop, side by side, on CPU.

    python bench/bench_cpt_throughput.py [--steps 4] [--rounds 2] [--max-length 1024] [--stage cpt|sft|both]
                                         [--stock] [--out outputs/bench/cpt_throughput]

Model: SmolLM2-135M (Llama architecture, 49k vocabulary), exported offline from the packaged GGUF.
Data: the demo text (`align cpt`) and demo chat rows (`align sft`, packed), blocks of --max-length tokens,
batch 1. Each round runs, alternately in this one process (same threads, same machine state):

- align: the real command in-process (`align.train.cpt.main` / `align.train.sft.main` with the CPU demo recipe,
  max_length and steps overridden), timed by a trainer callback from the end of step 1 to the end of the
  last step (start-up, data preparation and the first, warming-up step excluded);
- plain: the same model freshly loaded, the same collated batches the trainer drew (captured from its
  dataloader), `model(**batch).loss`, backward, gradient clipping at the trainer's max_grad_norm 1.0,
  AdamW step at the same learning rate, timed over the same steps;
- stock (--stock): align's trainer with TRL's per-step entropy and top-1 computation put back (what
  TRL's own SFTTrainer does every step).

Tokens/s = non-padding tokens of the timed steps / their wall time. The ratio is align / plain per round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

COMMON = ["--bf16", "false", "--gradient_checkpointing", "false", "--report_to", "none", "--save_strategy", "no",
          "--logging_steps", "1000", "--dataloader_num_workers", "0", "--dataloader_pin_memory", "false",
          "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "1", "--learning_rate", "3.0e-4"]


def recipe_argv(stage: str, data: Path, model: Path, out: Path, steps: int, max_length: int) -> list[str]:
    argv = ["--config", f"{REPO}/recipes/{stage}/cpu-demo.yaml", "--model_name_or_path", str(model),
            "--dataset_name", str(data), "--output_dir", str(out), "--max_length", str(max_length), *COMMON]
    if stage == "cpt":  # the demo recipe gives a token budget: one that makes `steps` steps
        return [*argv, "--max_tokens", str(steps * max_length), "--max_train_rows", "100000"]
    return [*argv, "--max_steps", str(steps), "--packing", "true", "--max_train_rows", "100000"]


class StepClock:
    """Trainer callback: wall time and tokens seen at the end of every optimizer step."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _Clock(TrainerCallback):
            def __init__(self):
                self.marks = []

            def on_step_end(self, args, state, control, **kwargs):
                self.marks.append((time.perf_counter(), time.process_time(), int(state.num_input_tokens_seen or 0)))

        return _Clock()


def rate(marks: list[tuple[float, float, int]]) -> dict:
    """Tokens per wall second and per CPU second of this process, from the end of the first step to the end
    of the last. On a shared machine the CPU-time rate is the steadier one (time spent waiting for a core
    while others run is not counted)."""
    (w0, c0, n0), (w1, c1, n1) = marks[0], marks[-1]
    return {"tokens": n1 - n0, "wall_s": w1 - w0, "cpu_s": c1 - c0, "tokens_per_s": (n1 - n0) / (w1 - w0),
            "tokens_per_cpu_s": (n1 - n0) / (c1 - c0)}


def align_side(stage: str, argv: list[str], steps: int, stock: bool = False) -> dict:
    """Run `align <stage>` in this process; return its rate and the batches its trainer drew."""
    import importlib

    from align.train.lean import LeanSFTTrainer

    seen = {}
    original_train = LeanSFTTrainer.train

    def train(self, *args, **kwargs):
        if stock:  # TRL's own per-step work: the fused head computes entropy and top-1 again, as TRL asks
            from trl.trainer.utils import add_fused_lm_head

            add_fused_lm_head(self.model, outputs=("log_probs", "entropy", "is_top1"))
        clock = StepClock()
        self.add_callback(clock)
        seen["trainer"], seen["clock"] = self, clock
        return original_train(self, *args, **kwargs)

    LeanSFTTrainer.train = train
    try:
        code = importlib.import_module(f"align.train.{stage}").main(argv)
    finally:
        LeanSFTTrainer.train = original_train
    assert code == 0, f"align {stage} exited {code}"
    trainer = seen["trainer"]
    loader = trainer.get_train_dataloader()
    batches = [batch for _, batch in zip(range(steps), loader, strict=False)]
    return {**rate(seen["clock"].marks), "batches": batches, "pad_id": trainer.processing_class.pad_token_id}


def plain_side(model_dir: Path, batches: list[dict], lr: float, pad_id: int | None) -> dict:
    """The same batches through a hand-written loop: forward, loss, backward, clip, AdamW step."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    keys = ("input_ids", "attention_mask", "position_ids", "labels")
    marks = []
    for batch in batches:
        inputs = {k: batch[k] for k in keys if k in batch}
        loss = model(**inputs, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens = count_tokens(batch, pad_id)
        marks.append((time.perf_counter(), time.process_time(), (marks[-1][2] if marks else 0) + tokens))
    return rate(marks)


def count_tokens(batch: dict, pad_id: int | None) -> int:
    """Non-padding tokens, counted as the trainer counts them (`include_num_input_tokens_seen: non_padding`):
    the attention mask, else the ids that are not the pad id (a packed batch has no mask)."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    ids = batch["input_ids"]
    return int((ids != pad_id).sum()) if pad_id is not None else ids.numel()


def prepare(workdir: Path) -> tuple[Path, Path, Path]:
    from align.plumbing.packaged import export_smollm2
    from align.train.demo_data import write_demo_data, write_demo_text

    model = export_smollm2()
    chat, _ = write_demo_data(workdir)
    return model, write_demo_text(workdir), chat


def bench_stage(stage: str, model: Path, data: Path, workdir: Path, args) -> dict:
    rounds = []
    for r in range(args.rounds):
        argv = recipe_argv(stage, data, model, workdir / f"{stage}-{r}", args.steps, args.max_length)
        align = align_side(stage, argv, args.steps)
        plain = plain_side(model, align.pop("batches"), 3.0e-4, align.pop("pad_id"))
        row = {"round": r, "timed_tokens": align["tokens"], **side_numbers("align", align),
               **side_numbers("plain", plain), "ratio_wall": round(align["tokens_per_s"] / plain["tokens_per_s"], 3),
               "ratio_cpu": round(align["tokens_per_cpu_s"] / plain["tokens_per_cpu_s"], 3)}
        if args.stock:
            argv = recipe_argv(stage, data, model, workdir / f"{stage}-stock-{r}", args.steps, args.max_length)
            stock = align_side(stage, argv, args.steps, stock=True)
            row.update(side_numbers("stock", stock))
            row["stock_ratio_wall"] = round(stock["tokens_per_s"] / plain["tokens_per_s"], 3)
            row["stock_ratio_cpu"] = round(stock["tokens_per_cpu_s"] / plain["tokens_per_cpu_s"], 3)
        print(json.dumps({stage: row}), flush=True)
        rounds.append(row)
    summary = {"rounds": rounds}
    for key in ("ratio_wall", "ratio_cpu", *(("stock_ratio_wall", "stock_ratio_cpu") if args.stock else ())):
        summary[f"{key}_median"] = statistics.median(r[key] for r in rounds)
    return summary


def side_numbers(name: str, side: dict) -> dict:
    return {f"{name}_tokens_per_s": round(side["tokens_per_s"], 1),
            f"{name}_tokens_per_cpu_s": round(side["tokens_per_cpu_s"], 1), f"{name}_wall_s": round(side["wall_s"], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per side per round (>= 2)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--stage", choices=["cpt", "sft", "both"], default="both")
    parser.add_argument("--stock", action="store_true", help="also time TRL's stock SFTTrainer")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--out", default=str(REPO / "outputs/bench/cpt_throughput"))
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first step is not timed)")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    workdir = Path(tempfile.mkdtemp(prefix="bench-cpt-"))
    model, text, chat = prepare(workdir)
    results = {"machine": {"nproc": os.cpu_count(), "torch_threads": torch.get_num_threads()},
               "model": "SmolLM2-135M (packaged GGUF, dequantized float32)", "max_length": args.max_length,
               "steps_per_side": args.steps, "batch": 1}
    stages = ["cpt", "sft"] if args.stage == "both" else [args.stage]
    for stage in stages:
        results[stage] = bench_stage(stage, model, text if stage == "cpt" else chat, workdir, args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
