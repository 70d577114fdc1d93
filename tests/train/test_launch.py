"""The same entry points under `accelerate launch`, 2 processes on CPU: DDP (gloo), DeepSpeed
ZeRO-3, and the FSDP config (which accelerate runs as CPU data parallel)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, chat_rows, preference_rows, write_jsonl

ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]


@pytest.mark.slow
@pytest.mark.xdist_group("two-processes")  # accelerate's port 29500 admits one launch at a time
@pytest.mark.parametrize("config, entry_point, model, steps, distributed_type", [
    ("ddp.yaml", ["align.sft"], "tiny_base_llama_dir", 2, "MULTI_CPU"),
    ("zero3.yaml", ["align.dpo"], "tiny_llama_dir", 1, "DEEPSPEED"),
    # accelerate has FSDP for accelerators only: on CPU the same config trains as plain data
    # parallel over both processes, and says so (a GPU run would report FSDP). Launched the way
    # the series runner launches training: `-m align.cli sft`.
    ("fsdp.yaml", ["align.cli", "sft"], "tiny_llama_dir", 2, "MULTI_CPU"),
], ids=["ddp-sft", "zero3-dpo", "fsdp-cli-sft"])
def test_two_process_launch(config, entry_point, model, steps, distributed_type, request, tmp_path):
    stage = entry_point[-1].removeprefix("align.")
    model_dir = request.getfixturevalue(model)
    data = (write_jsonl(tmp_path / "chat.jsonl", chat_rows(16)) if stage == "sft" else
            write_jsonl(tmp_path / "prefs.jsonl", preference_rows(8)))
    out = tmp_path / stage
    cmd = [*ACCELERATE, "--config_file", str(REPO / "recipes/accelerate" / config), "--num_processes", "2",
           "--mixed_precision", "no", "-m", *entry_point, "--config", str(REPO / f"recipes/{stage}/cpu-demo.yaml"),
           "--model_name_or_path", str(model_dir), "--dataset_name", str(data), "--output_dir", str(out),
           "--max_steps", str(steps), "--max_length", "64", "--per_device_train_batch_size", "2"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]
    card = json.loads((out / "run_card.json").read_text())
    assert card["world_size"] == 2 and card["distributed_type"] == distributed_type
    if stage == "sft":  # 2 steps x 2 rows x 2 processes = 8 of 16 rows: both processes took part
        assert card["train_metrics"]["epoch"] == 0.5
        assert (out / "model.safetensors").is_file()
    if config == "fsdp.yaml":
        assert "no FSDP on CPU" in proc.stderr
    if config == "zero3.yaml":
        assert card["recipe"]["ddp_backend"] == "gloo"  # what makes DeepSpeed count both CPU processes
        # ZeRO-3 gathered the shards into one ordinary checkpoint
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(out)
        assert model.num_parameters() == card["parameters"] == AutoModelForCausalLM.from_pretrained(
            model_dir).num_parameters()
