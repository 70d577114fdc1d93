"""Pinned losses: SFT, DPO and CPT train the session's tiny models for a few seeded steps, and the logged
loss of every step must equal the number pinned here; a run resumed from its mid-run checkpoint must log
the same later losses as the run that was never stopped. So a silent change in training shows (a data
order, a loss mask, a template, a schedule, a resume that skips or repeats a batch), as torchtune's
recipe tests pin theirs.

Runs are in this process (`align sft|dpo|cpt`'s own main: the process boundary is tested elsewhere).
On one machine repeated runs log bit-identical losses (in one process and in fresh ones); the pins
allow 1e-4 relative for another CPU's float kernels, the resumed run none. A library upgrade (torch,
transformers, TRL) may move the pins: find out why before re-pinning from the failure message, which
lists every step's loss.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import align_status, chat_rows, preference_rows, write_jsonl

STEPS, CHECKPOINT = 4, 2  # the resumed run starts from checkpoint-2 and trains steps 3 and 4
RELATIVE = 1e-4
CPU = ["--bf16", "false", "--dtype", "float32", "--activation_checkpointing", "false", "--report_to", "none",
       "--dataloader_num_workers", "0", "--dataloader_pin_memory", "false", "--logging_steps", "1", "--seed", "42",
       "--save_strategy", "steps", "--save_steps", str(CHECKPOINT), "--lr_scheduler_type", "cosine"]
TEXTS = [f"Note {i}: the {thing} is {colour}, and it was found near the {place}. " * (1 + i % 3)
         for i, (thing, colour, place) in enumerate(
             [("kite", "red", "river"), ("lamp", "green", "hill"), ("boat", "blue", "market"),
              ("coin", "gold", "bridge"), ("book", "grey", "school"), ("shell", "white", "shore")] * 4)]

# kind -> the loss logged at steps 1..STEPS (float32 on CPU, seed 42)
PINNED = {
    "sft": [10.775753021240234, 10.664806365966797, 10.639063835144043, 10.603361129760742],
    "dpo": [0.6931471824645996, 0.6648131608963013, 0.6452394723892212, 0.6276432275772095],
    "cpt": [10.782886505126953, 10.745706558227539, 10.689175605773926, 10.680889129638672],
}


def recipe(kind: str, tmp_path: Path, models: dict[str, Path]) -> list[str]:
    """Each kind's settings, in full on the command line (no recipe file whose edits would move the pins)."""
    if kind == "sft":  # the study's assistant-only loss, on a base model given the fallback chat template
        data = write_jsonl(tmp_path / "chat.jsonl", chat_rows())
        settings = ["--assistant_only_loss", "true", "--learning_rate", "1.0e-3", "--max_length", "96"]
        model = models["base"]
    elif kind == "dpo":  # the study's precomputed reference, only for the rows the steps train
        data = write_jsonl(tmp_path / "prefs.jsonl", preference_rows())
        settings = ["--precompute_ref_log_probs", "true", "--beta", "0.1", "--learning_rate", "1.0e-3",
                    "--max_length", "96"]
        model = models["chat"]
    else:  # a token budget: 256 tokens = 4 steps of 2 blocks of 32
        data = write_jsonl(tmp_path / "text.jsonl", [{"text": t} for t in TEXTS])
        settings = ["--max_tokens", str(STEPS * 2 * 32), "--learning_rate", "1.0e-3", "--max_length", "32"]
        model = models["base"]
    if kind != "cpt":
        settings += ["--max_steps", str(STEPS)]
    return ["--model_name_or_path", str(model), "--dataset_name", str(data), "--per_device_train_batch_size", "2",
            *settings, *CPU]


def train(kind: str, argv: list[str]) -> None:
    code = align_status([kind, *argv])
    assert code == 0, f"align {kind} exited {code}"


def logged_losses(output_dir: Path) -> dict[int, float]:
    """step -> training loss, from the trainer_state.json the run saved last."""
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return {entry["step"]: entry["loss"] for entry in history if "loss" in entry}


@pytest.fixture
def models(tiny_llama_dir, tiny_base_llama_dir) -> dict[str, Path]:
    return {"chat": tiny_llama_dir, "base": tiny_base_llama_dir}


@pytest.mark.parametrize("kind", ["sft", "dpo", "cpt"])
def test_losses_equal_the_pinned_ones_and_a_resumed_run_logs_the_same(kind, models, tmp_path):
    argv = recipe(kind, tmp_path, models)
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    train(kind, [*argv, "--output_dir", str(whole)])
    losses = logged_losses(whole)
    assert sorted(losses) == list(range(1, STEPS + 1))
    steps = [losses[step] for step in sorted(losses)]
    assert steps == pytest.approx(PINNED[kind], rel=RELATIVE), f"{kind} losses now {steps}, pinned {PINNED[kind]}"

    # as if stopped after checkpoint-2: its folder alone, then the same command resumed
    shutil.copytree(whole / f"checkpoint-{CHECKPOINT}", resumed / f"checkpoint-{CHECKPOINT}")
    train(kind, [*argv, "--output_dir", str(resumed), "--resume_from_checkpoint", "true"])
    card = json.loads((resumed / "run_card.json").read_text())
    assert card["resumed_from"].endswith(f"checkpoint-{CHECKPOINT}") and card["global_step"] == STEPS
    assert logged_losses(resumed) == losses  # steps 1-2 from the checkpoint's log, 3-4 trained again
