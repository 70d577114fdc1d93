"""SFT then DPO end to end on CPU (tiny random Llama), outputs, output-dir policy, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, align_status, chat_rows, run_cli, write_jsonl

SFT_RECIPE = str(REPO / "recipes/sft/cpu-demo.yaml")
DPO_RECIPE = str(REPO / "recipes/dpo/cpu-demo.yaml")
SMALL = ["--max_length", "96", "--per_device_train_batch_size", "2"]


def sft_args(model, data, out, *extra):
    return ["-m", "align.sft", "--config", SFT_RECIPE, "--model_name_or_path", str(model),
            "--dataset_name", str(data), "--output_dir", str(out), "--max_steps", "2", *SMALL, *extra]


@pytest.mark.slow
def test_sft_then_dpo_end_to_end(tiny_base_llama_dir, chat_jsonl, pref_jsonl, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from align.dpo import main as dpo
    from align.sft import main as sft
    from align.train.chat import DEFAULT_TEMPLATE

    sft_dir, dpo_dir = tmp_path / "sft", tmp_path / "dpo"
    assert sft(sft_args(tiny_base_llama_dir, chat_jsonl, sft_dir)[2:]) == 0  # in this process: no interpreter start
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
                 "chat_template.jinja", "run_card.json", "loss.png"):
        assert (sft_dir / name).is_file(), name
    card = json.loads((sft_dir / "run_card.json").read_text())
    assert card["stage"] == "sft" and card["global_step"] == 2
    assert card["data"]["train"]["rows_kept"] == 24 and card["data"]["train"]["fingerprint"].startswith("sha256:")
    assert card["recipe"]["learning_rate"] == pytest.approx(3.0e-5) and card["recipe"]["max_steps"] == "2"
    assert card["tokens_trained"] > 0
    assert card["flops_6nd"] == pytest.approx(6 * card["parameters"] * card["tokens_trained"])
    assert card["wall_time_s"] > 0 and card["versions"]["trl"] and "git_revision" in card
    assert card["chat_template"] == DEFAULT_TEMPLATE

    # DPO on top, as LoRA merged back into a full checkpoint (TRL's peft options)
    assert dpo(["--config", DPO_RECIPE, "--model_name_or_path", str(sft_dir),
                "--dataset_name", str(pref_jsonl), "--output_dir", str(dpo_dir), "--max_steps", "2", *SMALL,
                "--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8",
                "--lora_target_modules", "q_proj", "v_proj", "--merge_adapter", "true"]) == 0
    assert (dpo_dir / "adapter" / "adapter_config.json").is_file()
    assert not (dpo_dir / "adapter_config.json").exists()  # the top level is an ordinary checkpoint
    card = json.loads((dpo_dir / "run_card.json").read_text())
    assert card["stage"] == "dpo" and card["global_step"] == 2 and card["data"]["train"]["rows_kept"] == 16
    assert card["model_args"]["use_peft"] and card["training_args"]["beta"] == pytest.approx(0.01)

    # the final checkpoint reloads and chats with the template training used
    tok = AutoTokenizer.from_pretrained(dpo_dir)
    assert tok.chat_template == DEFAULT_TEMPLATE and tok.pad_token == tok.eos_token
    assert GenerationConfig.from_pretrained(dpo_dir).eos_token_id == tok.eos_token_id
    model = AutoModelForCausalLM.from_pretrained(dpo_dir)
    sft_model = AutoModelForCausalLM.from_pretrained(sft_dir)
    changed = [n for n, p in model.state_dict().items() if not torch.equal(p, sft_model.state_dict()[n])]
    assert changed and all("q_proj" in n or "v_proj" in n for n in changed)  # merged LoRA moved only those
    prompt = tok.apply_chat_template([{"role": "user", "content": "Say hi."}], add_generation_prompt=True,
                                     return_tensors="pt", return_dict=True)
    assert tok.decode(prompt["input_ids"][0]).endswith("<|assistant|>\n")
    out = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > prompt["input_ids"].shape[1]


def in_process(module, argv, capsys):
    """Run an entry point in this process; returns (exit status, stderr)."""
    import importlib

    with pytest.raises(SystemExit) as exited:
        importlib.import_module(module).main(argv)
    return exited.value.code, capsys.readouterr().err


def test_non_empty_output_dir_is_refused(tiny_llama_dir, chat_jsonl, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code, err = in_process("align.sft", sft_args(tiny_llama_dir, chat_jsonl, out)[2:], capsys)
    assert code == 2 and f"output_dir {out} is not empty" in err and "Traceback" not in err
    assert (out / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize("module, rows, problem", [
    ("align.sft", [{"messages": [{"role": "user", "content": "hi"}]}], ":1: the last message must be the assistant's"),
    ("align.dpo", [{"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                    "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}],
     ":1: chosen and rejected have the same final answer"),
])
def test_bad_row_stops_the_entry_point_before_anything_is_written(module, rows, problem, tiny_llama_dir,
                                                                   tmp_path, capsys):
    data = write_jsonl(tmp_path / "bad.jsonl", rows)
    recipe = SFT_RECIPE if module == "align.sft" else DPO_RECIPE
    out = tmp_path / "out"
    code, err = in_process(module, ["--config", recipe, "--model_name_or_path", str(tiny_llama_dir),
                                    "--dataset_name", str(data), "--output_dir", str(out),
                                    "--invalid_rows", "error"], capsys)
    assert code == 2 and f"error: {data}{problem}" in err
    assert not out.exists()


def signalled_at_checkpoint_2(model, tmp_path, sig: int) -> tuple[int, list[str], Path, str]:
    """An SFT run of 60 steps (a checkpoint every 2) sent `sig` once checkpoint-2 is whole: (its exit status,
    its arguments, its output folder, its stderr). The shared start of the SIGTERM and SIGKILL tests."""
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(48))
    out = tmp_path / "run"
    args = sft_args(model, data, out, "--save_strategy", "steps", "--save_steps", "2")
    args[args.index("--max_steps") + 1] = "60"
    err_log = tmp_path / "stderr.txt"
    with open(err_log, "w") as err_fh:
        proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                                stdout=subprocess.DEVNULL, stderr=err_fh)
        state = out / "checkpoint-2" / "trainer_state.json"
        deadline = time.time() + 300
        while not state.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        proc.send_signal(sig)
        code = proc.wait(timeout=120)
    return code, args, out, err_log.read_text()


def resume_to_step_4(args: list[str], out: Path) -> dict:
    """Resume the run with max_steps 4: it ends at step 4 with every step trained (and logged) once; its card."""
    resumed = [a if a != "60" else "4" for a in args]
    proc = run_cli(*resumed, "--resume_from_checkpoint", "true", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert sorted(h["step"] for h in history if "loss" in h) == [1, 2, 3, 4]
    card = json.loads((out / "run_card.json").read_text())
    assert card["global_step"] == 4
    return card


@pytest.mark.slow
def test_sigterm_mid_training_exits_130_and_resumes(tiny_llama_dir, tmp_path):
    """SIGTERM (a scheduler's preemption) unwinds like Ctrl-C: one line, exit 130, a resumable directory."""
    code, args, out, err = signalled_at_checkpoint_2(tiny_llama_dir, tmp_path, signal.SIGTERM)
    assert code == 130
    assert "interrupted:" in err and "Traceback" not in err, err[-2000:]
    resume_to_step_4(args, out)


@pytest.mark.slow
def test_resume_after_kill(tiny_llama_dir, tmp_path, capsys):
    _, args, out, _ = signalled_at_checkpoint_2(tiny_llama_dir, tmp_path, signal.SIGKILL)  # as a preempted job
    assert (out / "checkpoint-2" / "trainer_state.json").exists(), "no checkpoint-2 before the kill"
    assert not (out / "run_card.json").exists()

    # a plain re-run refuses the half-done directory; --resume_from_checkpoint true continues it
    code, err = in_process("align.sft", args[2:], capsys)
    assert code == 2 and "is not empty" in err
    card = resume_to_step_4(args, out)
    assert Path(card["resumed_from"]).name in ("checkpoint-2", "checkpoint-4")  # the kill may land after step 4


def test_sft_packed_bfd_counts_every_packed_token_eos_included(tiny_llama_dir, chat_jsonl, tmp_path, capsys,
                                                               monkeypatch):
    from align.train.lean import LeanSFTTrainer

    seen, original = {}, LeanSFTTrainer.train
    monkeypatch.setattr(LeanSFTTrainer, "train", lambda self, *a, **k: (seen.setdefault("t", self),
                                                                         original(self, *a, **k))[1])
    out = tmp_path / "out"
    argv = sft_args(tiny_llama_dir, chat_jsonl, out, "--packing", "true", "--packing_strategy", "bfd",
                    "--max_steps", "-1", "--num_train_epochs", "1", "--save_strategy", "no")[2:]
    code = align_status(["sft", *argv])
    assert code in (0, None), capsys.readouterr().err[-2000:]
    trainer = seen["t"]
    assert trainer.processing_class.pad_token_id == trainer.processing_class.eos_token_id
    card = json.loads((out / "run_card.json").read_text())
    assert card["tokens_trained"] == sum(len(row["input_ids"]) for row in trainer.train_dataset)
