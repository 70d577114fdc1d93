"""The same entry points under `accelerate launch`, 2 processes on CPU: DDP (gloo), DeepSpeed
ZeRO-3, and the FSDP config (which accelerate runs as CPU data parallel)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO, chat_rows, preference_rows, write_jsonl

ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]


def launch(config: str, module: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [*ACCELERATE, "--config_file", str(REPO / "recipes/accelerate" / config), "--num_processes", "2",
           "--mixed_precision", "no", "-m", module, *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=420)


def test_two_process_ddp_sft(tiny_base_llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(16))
    out = tmp_path / "sft"
    proc = launch("ddp.yaml", "align.sft", "--config", str(REPO / "recipes/sft/cpu-demo.yaml"),
                  "--model_name_or_path", str(tiny_base_llama_dir), "--dataset_name", str(data),
                  "--output_dir", str(out), "--max_steps", "2", "--max_length", "64",
                  "--per_device_train_batch_size", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    card = json.loads((out / "run_card.json").read_text())
    assert card["world_size"] == 2 and card["distributed_type"] == "MULTI_CPU"
    # 2 steps x 2 rows x 2 processes = 8 of 16 rows: both processes took part
    assert card["train_metrics"]["epoch"] == 0.5
    assert (out / "model.safetensors").is_file()


def test_two_process_deepspeed_zero3_dpo(tiny_llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "prefs.jsonl", preference_rows(8))
    out = tmp_path / "dpo"
    proc = launch("zero3.yaml", "align.dpo", "--config", str(REPO / "recipes/dpo/cpu-demo.yaml"),
                  "--model_name_or_path", str(tiny_llama_dir), "--dataset_name", str(data),
                  "--output_dir", str(out), "--max_steps", "1", "--max_length", "64",
                  "--per_device_train_batch_size", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    card = json.loads((out / "run_card.json").read_text())
    assert card["world_size"] == 2 and card["distributed_type"] == "DEEPSPEED"
    assert card["recipe"]["ddp_backend"] == "gloo"  # what makes DeepSpeed count both CPU processes

    # ZeRO-3 gathered the shards into one ordinary checkpoint
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.num_parameters() == card["parameters"] == AutoModelForCausalLM.from_pretrained(
        tiny_llama_dir).num_parameters()


def test_two_process_fsdp_sft(tiny_llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(16))
    out = tmp_path / "sft"
    proc = launch("fsdp.yaml", "align.sft", "--config", str(REPO / "recipes/sft/cpu-demo.yaml"),
                  "--model_name_or_path", str(tiny_llama_dir), "--dataset_name", str(data),
                  "--output_dir", str(out), "--max_steps", "2", "--max_length", "64",
                  "--per_device_train_batch_size", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    # accelerate has FSDP for accelerators only: on CPU the same config trains as plain data
    # parallel over both processes, and says so (a GPU run would report FSDP).
    assert "no FSDP on CPU" in proc.stderr
    card = json.loads((out / "run_card.json").read_text())
    assert card["world_size"] == 2 and card["distributed_type"] == "MULTI_CPU"
    assert card["train_metrics"]["epoch"] == 0.5  # 2 steps x 2 rows x 2 processes = 8 of 16 rows
