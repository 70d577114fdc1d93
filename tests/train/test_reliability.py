"""Nothing lost, nothing silently wrong: the output-dir guard, refused runs that delete nothing, flags
never abbreviated, nonsense values refused, empty recipes, errors naming file and key, and resume past
a checkpoint cut short."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO, chat_rows, preference_rows, run_cli, write_jsonl
from test_train import DPO_RECIPE, SFT_RECIPE, in_process, sft_args


def previous_run(path: Path) -> Path:
    """A directory shaped like a finished earlier run (what overwrite may replace)."""
    path.mkdir(parents=True)
    (path / "run_card.json").write_text('{"stage": "sft"}\n')
    (path / "config.json").write_text("{}\n")
    return path


@pytest.fixture
def model_copy(tiny_llama_dir, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_llama_dir, tmp_path / "models" / "tiny"))


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["model itself", "parent of model", "inside model", "data file's folder"])
def test_overwrite_never_touches_an_input(where, model_copy, tmp_path, capsys):
    data = write_jsonl(tmp_path / "data" / "chat.jsonl", chat_rows(8))
    out = {"model itself": model_copy, "parent of model": model_copy.parent,
           "inside model": model_copy / "sft", "data file's folder": data.parent}[where]
    before = tree(tmp_path)
    code, err = in_process("align.sft", sft_args(model_copy, data, out, "--overwrite_output_dir", "true")[2:], capsys)
    assert code == 2 and "Traceback" not in err, err
    assert "the input" in err and ("model_name_or_path" in err or "dataset_name" in err), err
    assert tree(tmp_path) == before  # nothing deleted, nothing written


def test_output_dir_that_is_a_file_is_one_line(tiny_llama_dir, chat_jsonl, tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("not a directory")
    code, err = in_process("align.sft", sft_args(tiny_llama_dir, chat_jsonl, out)[2:], capsys)
    assert code == 2 and f"output_dir {out} is an existing file" in err and err.count("\n") == 1


def test_overwrite_refuses_a_directory_that_is_not_a_previous_run(tiny_llama_dir, chat_jsonl, tmp_path, capsys):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.tex").write_text("precious")
    code, err = in_process("align.sft", sft_args(tiny_llama_dir, chat_jsonl, out, "--overwrite_output_dir",
                                                 "true")[2:], capsys)
    assert code == 2 and "not a previous run's output" in err and "chapter1.tex" in err
    assert (out / "chapter1.tex").read_text() == "precious"


@pytest.mark.parametrize("extra, message", [
    (["--merge_adapter", "true"], "merge_adapter needs use_peft"),
    (["--use_peft", "true", "--load_in_4bit", "true"], "needs a CUDA GPU"),
    (["--dataset_name", "/nonexistent/rows.jsonl"], "/nonexistent/rows.jsonl not found"),
    (["--max_length", "4"], "keeps no assistant token"),  # needs the tokenizer: checked after data and tokenizer load
])
def test_refused_run_deletes_nothing(extra, message, tiny_llama_dir, chat_jsonl, tmp_path, capsys):
    out = previous_run(tmp_path / "previous")
    before = tree(out)
    code, err = in_process("align.sft", sft_args(tiny_llama_dir, chat_jsonl, out, "--overwrite_output_dir", "true",
                                                 *extra)[2:], capsys)
    assert code == 2 and message in err and "Traceback" not in err, err
    assert tree(out) == before


def test_overwrite_replaces_a_previous_run(tiny_llama_dir, chat_jsonl, tmp_path):
    from align.sft import main

    out = previous_run(tmp_path / "previous")
    (out / "checkpoint-7").mkdir()
    argv = sft_args(tiny_llama_dir, chat_jsonl, out, "--overwrite_output_dir", "true", "--max_steps", "1")[2:]
    assert main(argv) == 0
    assert not (out / "checkpoint-7").exists()
    card = json.loads((out / "run_card.json").read_text())
    assert card["global_step"] == 1
    assert card["parameters"] == card["trainable_parameters"] and card["adapter_parameters"] == 0


@pytest.mark.parametrize("flag", ["--max_step", "--learning_rat", "--output_d"])
def test_abbreviated_flags_are_refused(flag, tiny_llama_dir, chat_jsonl, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = in_process("align.sft", [*sft_args(tiny_llama_dir, chat_jsonl, out)[2:], flag, "3"], capsys)
    assert code == 2 and f"unknown argument(s) {flag} 3" in err, err
    assert not out.exists()


@pytest.mark.parametrize("flag, value, expected", [
    ("--max_steps", "-3", "a positive number of steps, or -1"),
    ("--max_steps", "0", "a positive number of steps, or -1"),
    ("--learning_rate", "0", "> 0"),
    ("--learning_rate", "-0.00001", "> 0"),
    ("--per_device_train_batch_size", "0", "at least 1"),
    ("--gradient_accumulation_steps", "0", "at least 1"),
    ("--max_train_rows", "0", "at least 1"),
])
def test_nonsense_values_are_refused(flag, value, expected, tiny_llama_dir, chat_jsonl, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = in_process("align.sft", [*sft_args(tiny_llama_dir, chat_jsonl, out)[2:], flag, value], capsys)
    assert code == 2 and f"command line: {flag} must be {expected}" in err, err
    assert not out.exists()


def sft_with_edited_recipe(old: str, new: str, tiny_llama_dir, chat_jsonl, tmp_path, capsys):
    """(recipe path, exit code, stderr) of `align sft` on the test SFT recipe with `old` replaced by `new`."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(Path(SFT_RECIPE).read_text().replace(old, new))
    code, err = in_process("align.sft", ["--config", str(recipe), "--model_name_or_path", str(tiny_llama_dir),
                                         "--dataset_name", str(chat_jsonl), "--output_dir", str(tmp_path / "o")],
                           capsys)
    return recipe, code, err


def test_nonsense_value_in_a_recipe_names_file_and_key(tiny_llama_dir, chat_jsonl, tmp_path, capsys):
    recipe, code, err = sft_with_edited_recipe("max_steps: 4", "max_steps: -3", tiny_llama_dir, chat_jsonl,
                                               tmp_path, capsys)
    assert code == 2 and f"{recipe}: key 'max_steps' must be" in err, err


def test_library_refusal_of_a_recipe_value_names_file_and_key(tiny_llama_dir, chat_jsonl, tmp_path, capsys):
    recipe, code, err = sft_with_edited_recipe("lr_scheduler_type: cosine", "lr_scheduler_type: cosin",
                                               tiny_llama_dir, chat_jsonl, tmp_path, capsys)
    assert code == 2 and f"{recipe}: key 'lr_scheduler_type'" in err and "command line" not in err, err


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_empty_recipe_says_so(text, tmp_path, capsys):
    recipe = tmp_path / "empty.yaml"
    recipe.write_text(text)
    code, err = in_process("align.sft", ["--config", str(recipe)], capsys)
    assert code == 2 and "the recipe is empty" in err and "bf16" not in err, err


def test_value_checks_run_in_the_recipe_check_without_a_model(tmp_path):
    from align.train.checks import check_recipe

    argv = ["--config", SFT_RECIPE, "--model_name_or_path", "no/such-model", "--output_dir", str(tmp_path / "o"),
            "--dataset_name", str(write_jsonl(tmp_path / "chat.jsonl", chat_rows(4)))]
    assert check_recipe("sft", argv, check_model=False) == []
    problems = check_recipe("sft", [*argv, "--learning_rate", "0"], check_model=False)
    assert problems == ["command line: --learning_rate must be > 0, got 0.0"]


def test_resume_skips_a_checkpoint_cut_short(tiny_llama_dir, tmp_path, caplog):
    """In this process (the process boundary is not what is tested): the warning is the logged record, which a
    command run prints on stderr (align's log lines on stderr: test_readme_commands)."""
    from align.sft import main

    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(24))
    out = tmp_path / "run"
    args = sft_args(tiny_llama_dir, data, out, "--save_strategy", "steps", "--save_steps", "2")[2:]
    args[args.index("--max_steps") + 1] = "4"
    assert main(args) == 0
    (out / "run_card.json").unlink()  # as if killed while saving checkpoint-4:
    torn = out / "checkpoint-4"
    (torn / "trainer_state.json").unlink()
    weights = torn / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    args[args.index("--max_steps") + 1] = "6"
    caplog.clear()
    assert main([*args, "--resume_from_checkpoint", "true"]) == 0
    assert f"skipping {torn}: no trainer_state.json" in caplog.text
    card = json.loads((out / "run_card.json").read_text())
    assert Path(card["resumed_from"]).name == "checkpoint-2" and card["global_step"] == 6


def test_newest_complete_checkpoint(tmp_path):
    import torch
    from safetensors.torch import save_file

    from align.train.checkpoints import newest_complete_checkpoint

    for step in (2, 4, 6, 8):
        ckpt = tmp_path / f"checkpoint-{step}"
        ckpt.mkdir()
        save_file({"w": torch.zeros(64)}, str(ckpt / "model.safetensors"))
        (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-8" / "trainer_state.json").unlink()                     # killed before the state
    weights = tmp_path / "checkpoint-6" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])                                 # weights cut short
    (tmp_path / "checkpoint-4" / "optimizer.pt").write_bytes(b"PK\x03\x04 torn")     # optimizer cut short
    last, skipped = newest_complete_checkpoint(tmp_path)
    assert Path(last).name == "checkpoint-2"
    assert [(Path(p).name, why.split(" ")[0]) for p, why in skipped] == [
        ("checkpoint-8", "no"), ("checkpoint-6", "model.safetensors"), ("checkpoint-4", "optimizer.pt")]


def test_launcher_flags_go_to_accelerate():
    from trl import SFTConfig

    from align.train.launch import split_launch_args
    from align.train.recipe import known_recipe_keys

    launch, recipe = split_launch_args(
        ["--accelerate_config", "zero3", "--num_processes", "2", "--config", "r.yaml", "--main_process_port=1234",
         "--gradient_accumulation_steps", "4", "--cpu", "--max_steps", "3"], known_recipe_keys(SFTConfig))
    assert launch == ["--config_file", str(REPO / "align/data/accelerate/zero3.yaml"), "--num_processes", "2",
                      "--main_process_port=1234", "--cpu"]
    assert recipe == ["--config", "r.yaml", "--gradient_accumulation_steps", "4", "--max_steps", "3"]


def test_launcher_refuses_a_mixed_precision_the_recipe_contradicts(tiny_llama_dir, chat_jsonl, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = in_process("align.sft", ["--accelerate_config", "ddp", "--mixed_precision", "bf16",
                                         *sft_args(tiny_llama_dir, chat_jsonl, out)[2:]], capsys)
    assert code == 2 and "--mixed_precision bf16 disagrees with the recipe" in err and SFT_RECIPE in err, err
    assert not out.exists()


def test_unknown_accelerate_config_name(capsys):
    code, err = in_process("align.sft", ["--accelerate_config", "zero9", "--config", SFT_RECIPE], capsys)
    assert code == 2 and "zero9: neither a file nor one of" in err and "zero3" in err


@pytest.mark.slow
@pytest.mark.xdist_group("two-processes")  # accelerate's port 29500 admits one launch at a time
def test_align_sft_launches_two_processes_like_trl(tiny_base_llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(16))
    out = tmp_path / "sft"
    proc = run_cli("-m", "align.cli", "sft", "--accelerate_config", "ddp", "--num_processes", "2",
                   "--config", SFT_RECIPE, "--model_name_or_path", str(tiny_base_llama_dir),
                   "--dataset_name", str(data), "--output_dir", str(out), "--max_steps", "2", "--max_length", "64",
                   "--per_device_train_batch_size", "2", timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]
    card = json.loads((out / "run_card.json").read_text())
    assert card["world_size"] == 2


@pytest.mark.slow
@pytest.mark.xdist_group("two-processes")  # accelerate's port 29500 admits one launch at a time
def test_readme_zero3_command_runs_with_the_cpu_recipe(tiny_llama_dir, tmp_path):
    """README's `accelerate launch --config_file zero3.yaml ... -m align.sft --config cpu-demo.yaml` as written
    (no --mixed_precision): the config says bf16, the recipe bf16: false, and the recipe decides."""
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(16))
    out = tmp_path / "sft"
    proc = run_cli("-m", "accelerate.commands.launch", "--config_file", str(REPO / "recipes/accelerate/zero3.yaml"),
                   "--num_processes", "2", "-m", "align.sft", "--config", SFT_RECIPE,
                   "--model_name_or_path", str(tiny_llama_dir), "--dataset_name", str(data), "--output_dir", str(out),
                   "--max_steps", "1", "--max_length", "64", "--per_device_train_batch_size", "2", timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "says mixed_precision bf16" in proc.stderr and "using the recipe's no" in proc.stderr
    assert json.loads((out / "run_card.json").read_text())["distributed_type"] == "DEEPSPEED"


def test_dpo_lora_run_card_tells_the_reference_and_the_parameter_counts(tiny_llama_dir, tmp_path, caplog):
    """In this process, as test_resume_skips_a_checkpoint_cut_short: the log line is the logged record."""
    from transformers import AutoModelForCausalLM

    from align.dpo import main

    data = write_jsonl(tmp_path / "prefs.jsonl", preference_rows(16))
    out = tmp_path / "dpo"
    assert main(["--config", DPO_RECIPE, "--model_name_or_path", str(tiny_llama_dir),
                 "--dataset_name", str(data), "--output_dir", str(out), "--max_steps", "1", "--max_length", "96",
                 "--use_peft", "true", "--lora_r", "4", "--lora_target_modules", "q_proj", "v_proj"]) == 0
    card = json.loads((out / "run_card.json").read_text())
    assert card["reference"]["kind"] == "precomputed" and "adapter switched off" in card["reference"]["description"]
    assert "DPO reference: reference log-probs precomputed" in caplog.text
    # max_steps 1 x batch 2 trains 2 rows; 4 (two scoring batches, the least) are scored, not all 16
    assert "kept and scored the first 4 of 16 rows (1 steps train 2" in card["precompute_note"]
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).num_parameters()
    assert card["parameters"] == base
    assert 0 < card["adapter_parameters"] == card["trainable_parameters"] < base
    assert card["flops_6nd"] == pytest.approx(6 * base * card["tokens_trained"])


def test_dpo_max_length_shorter_than_every_prompt_is_one_line(tiny_llama_dir, pref_jsonl, tmp_path, capsys):
    out = previous_run(tmp_path / "previous")
    before = tree(out)
    code, err = in_process("align.dpo", ["--config", DPO_RECIPE, "--model_name_or_path", str(tiny_llama_dir),
                                         "--dataset_name", str(pref_jsonl), "--output_dir", str(out),
                                         "--overwrite_output_dir", "true", "--max_length", "8"], capsys)
    assert code == 2 and "max_length 8 keeps no answer token of any row" in err and "Traceback" not in err, err
    assert tree(out) == before


def test_an_explicit_checkpoint_cut_short_is_refused(tiny_llama_dir, chat_jsonl, tmp_path, capsys):
    out = tmp_path / "run"
    torn = out / "checkpoint-3"
    torn.mkdir(parents=True)
    (torn / "model.safetensors").write_bytes(b"\x10\x00")
    code, err = in_process("align.sft", sft_args(tiny_llama_dir, chat_jsonl, out, "--resume_from_checkpoint",
                                                 str(torn))[2:], capsys)
    assert code == 2 and f"resume_from_checkpoint {torn} is incomplete (no trainer_state.json" in err, err
