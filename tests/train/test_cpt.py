"""`align cpt`: plain text packed into blocks with eos between documents, every token trained, a token
budget, run card, refusals, resume; and the metric-free SFTTrainer both SFT and CPT use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import align_in_process, write_jsonl

DOCS = [f"Document {i} is about {topic}. " * (1 + i % 4)
        for i, topic in enumerate(["rivers", "owls", "glass", "maps", "salt", "kites", "tides", "ink"] * 3)]
CPU = ["--bf16", "false", "--gradient_checkpointing", "false", "--report_to", "none", "--logging_steps", "1",
       "--dataloader_num_workers", "0", "--dataloader_pin_memory", "false"]


def text_file(path: Path, column: str = "text") -> Path:
    return write_jsonl(path, [{column: d, "id": i} for i, d in enumerate(DOCS)])


def run_cpt(argv: list[str], capsys) -> tuple[int | None, str, str]:
    return align_in_process(["cpt", *argv], capsys)


def base_argv(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["--model_name_or_path", str(model), "--dataset_name", str(data), "--output_dir", str(out),
            "--max_length", "32", "--per_device_train_batch_size", "2", "--save_strategy", "no", *CPU, *extra]


@pytest.fixture
def captured_trainer(monkeypatch):
    """The trainer `align cpt` builds, kept for inspection (training itself runs as usual)."""
    from align.train.lean import LeanSFTTrainer

    seen = {}
    original = LeanSFTTrainer.train

    def train(self, *args, **kwargs):
        seen["trainer"] = self
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LeanSFTTrainer, "train", train)
    return seen


def test_documents_are_packed_with_eos_between_them_and_every_token_is_trained(
        tiny_base_llama_dir, tmp_path, capsys, captured_trainer):
    from transformers import AutoTokenizer

    data = text_file(tmp_path / "docs.jsonl")
    code, _, err = run_cpt(base_argv(tiny_base_llama_dir, data, tmp_path / "out", "--max_steps", "2"), capsys)
    assert code == 0, err[-2000:]
    trainer = captured_trainer["trainer"]
    tok = AutoTokenizer.from_pretrained(tiny_base_llama_dir)
    blocks = [row["input_ids"] for row in trainer.train_dataset]
    assert all(len(b) == 32 for b in blocks[:-1]) and 0 < len(blocks[-1]) <= 32
    expected = [t for d in DOCS for t in tok(d, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]]
    assert [t for b in blocks for t in b] == expected  # the whole stream, eos after each document, nothing cut
    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    assert batch["labels"].tolist() == batch["input_ids"].tolist()  # loss on every token
    assert batch["attention_mask"].all()
    assert tok.chat_template is None and AutoTokenizer.from_pretrained(tmp_path / "out").chat_template is None


def test_run_card_counts_tokens_and_6nd_flops_of_a_token_budget(tiny_base_llama_dir, tmp_path, capsys):
    data = text_file(tmp_path / "docs.jsonl")
    out = tmp_path / "out"
    code, _, err = run_cpt(base_argv(tiny_base_llama_dir, data, out, "--max_tokens", "150"), capsys)
    assert code == 0, err[-2000:]
    card = json.loads((out / "run_card.json").read_text())
    assert card["stage"] == "cpt" and card["global_step"] == 3  # ceil(150 / (2 x 32))
    # 6 blocks of 32 tokens, one of which may be the stream's short last block (its padding is not counted)
    assert 3 * 2 * 32 - 32 < card["tokens_trained"] <= 3 * 2 * 32
    assert card["flops_6nd"] == 6 * card["parameters"] * card["tokens_trained"]
    assert card["cpt"]["max_tokens"] == 150 and card["cpt"]["tokens_per_step"] == 64
    assert any(n.startswith("max_tokens: 150 -> max_steps: 3") for n in card["recipe_translations"])


def test_max_tokens_becomes_max_steps_from_global_batch_and_block_length():
    from align.train.cpt_config import CPTConfig
    from align.train.recipe import parse_recipe

    _, args, _, _, resolved = parse_recipe(CPTConfig, [
        "--model_name_or_path", "m", "--dataset_name", "d", "--max_tokens", "10000", "--max_length", "128",
        "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "3", "--bf16", "false"])
    assert args.max_steps == 7  # ceil(10000 / (4 x 3 x 1 x 128) = 6.5)
    assert args.packing and args.packing_strategy == "wrapped" and args.completion_only_loss is False
    assert "max_tokens: 10000 -> max_steps: 7" in resolved["translated_keys"][-1]


def test_text_column_names_the_column_to_train_on(tiny_base_llama_dir, tmp_path, capsys, captured_trainer):
    data = text_file(tmp_path / "body.jsonl", column="body")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"text_column": "body", "max_steps": 1}))
    code, _, err = run_cpt(["--config", str(recipe), *base_argv(tiny_base_llama_dir, data, tmp_path / "out")], capsys)
    assert code == 0, err[-2000:]
    card = json.loads((tmp_path / "out" / "run_card.json").read_text())
    assert card["cpt"]["text_column"] == "body" and card["data"]["train"]["rows_kept"] == len(DOCS)
    code, _, err = run_cpt(base_argv(tiny_base_llama_dir, data, tmp_path / "out2", "--max_steps", "1"), capsys)
    assert code == 2 and "Traceback" not in err
    assert f"{data}:1: missing key(s) ['text'] (a text row needs ['text'])" in err


@pytest.mark.parametrize(("recipe", "message"), [
    ({"max_tokens": 1000, "max_steps": 5}, "max_tokens (1000) and max_steps (5) both set the length of training"),
    ({"max_tokens": 0}, "max_tokens must be at least 1, got 0"),
    ({"assistant_only_loss": True}, "continued pretraining trains every token"),
    ({"text_colum": "body"}, "unknown key 'text_colum' (did you mean 'text_column'?)"),
])
def test_a_bad_recipe_is_refused_in_one_line_before_anything_loads(recipe, message, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"model_name_or_path": str(tmp_path / "no-model"), "dataset_name": "d.jsonl",
                                    "bf16": False, **recipe}))
    code, _, err = run_cpt(["--config", str(path), "--output_dir", str(tmp_path / "out")], capsys)
    assert code == 2 and "Traceback" not in err
    assert message in err.strip().splitlines()[-1] and str(path) in err.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_text_column_stays_refused_for_sft(tmp_path, capsys):
    from align.train.sft import main

    path = tmp_path / "sft.yaml"
    path.write_text(yaml.safe_dump({"model_name_or_path": "m", "dataset_name": "d", "text_column": "text"}))
    with pytest.raises(SystemExit) as exited:
        main(["--config", str(path), "--dry_run", "true"])
    assert exited.value.code == 2 and "text_column is for align cpt" in capsys.readouterr().err


def test_a_killed_run_resumes_from_its_last_checkpoint(tiny_base_llama_dir, tmp_path, capsys):
    data = text_file(tmp_path / "docs.jsonl")
    out = tmp_path / "out"
    argv = base_argv(tiny_base_llama_dir, data, out)
    argv[argv.index("--save_strategy") + 1] = "steps"
    code, _, err = run_cpt([*argv, "--save_steps", "1", "--max_steps", "2"], capsys)
    assert code == 0, err[-2000:]
    (out / "run_card.json").unlink()  # as if killed after checkpoint-2, before the end
    code, _, err = run_cpt([*argv, "--save_steps", "1", "--max_steps", "3", "--resume_from_checkpoint", "true"],
                           capsys)
    assert code == 0, err[-2000:]
    card = json.loads((out / "run_card.json").read_text())
    assert card["resumed_from"].endswith("checkpoint-2") and card["global_step"] == 3
    assert 3 * 2 * 32 - 32 < card["tokens_trained"] <= 3 * 2 * 32  # includes the steps before the kill


def test_skipping_unused_metrics_changes_no_weight(tiny_llama_dir, tmp_path):
    """LeanSFTTrainer asks the fused LM head for log-probabilities only: after 3 steps every weight is
    bit-identical to TRL's own SFTTrainer's, and the skipped metrics are not logged."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from align.train.lean import LeanSFTTrainer

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    data = Dataset.from_list([{"text": d} for d in DOCS])
    weights, logs = [], []
    for cls in (SFTTrainer, LeanSFTTrainer):
        args = SFTConfig(output_dir=str(tmp_path / cls.__name__), max_steps=3, per_device_train_batch_size=2,
                         max_length=32, packing=True, packing_strategy="wrapped", learning_rate=1.0e-3, bf16=False,
                         gradient_checkpointing=False, report_to="none", save_strategy="no", logging_steps=1,
                         seed=0, dataloader_pin_memory=False, model_init_kwargs={"dtype": "float32"})
        trainer = cls(model=str(tiny_llama_dir), args=args, train_dataset=data, processing_class=tok)
        trainer.train()
        weights.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})
        logs.append(trainer.state.log_history[0])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert "mean_token_accuracy" in logs[0] and "entropy" in logs[0]
    assert "mean_token_accuracy" not in logs[1] and "entropy" not in logs[1] and logs[1]["loss"] == logs[0]["loss"]


STUDY_RECIPES = {"scratch-1b": 3.0e-4, "scratch-2b": 3.0e-4, "scratch-4b": 3.0e-4, "scratch-8b": 3.0e-4,
                 "staged-1b": 1.5e-3, "staged-2b": 1.1e-3, "staged-4b": 7.0e-4, "staged-8b": 3.0e-4}


def test_study_recipes_follow_the_study_learning_rates_and_compute_arithmetic():
    """Scratch: D = 40 N. Staged: X(i+1) trains on (C(X(i+1) from scratch) - C(chain so far)) / 6 N(i+1),
    so the staged chain spends C(8B from scratch) = 15.4 ZFLOPs against 20.4 for the four scratch runs."""
    from align.train.cpt_config import CPTConfig
    from align.train.recipe import DataArguments, ModelArguments, RunArguments, _field_types, load_recipe_file

    known = _field_types((DataArguments, CPTConfig, ModelArguments, RunArguments))
    recipes = {name: load_recipe_file(Path(f"recipes/cpt/{name}.yaml"), known, stage="cpt") for name in STUDY_RECIPES}
    sizes = {"1b": 1e9, "2b": 2e9, "4b": 4e9, "8b": 8e9}
    chain = 0.0
    for size, n in sizes.items():
        scratch, staged = recipes[f"scratch-{size}"], recipes[f"staged-{size}"]
        assert scratch["max_tokens"] == 40 * n
        assert staged["max_tokens"] == round((6 * n * 40 * n - chain) / (6 * n))
        chain += 6 * n * staged["max_tokens"]
    assert round(chain / 1e21, 1) == 15.4
    assert round(sum(6 * n * 40 * n for n in sizes.values()) / 1e21, 1) == 20.4
    for name, lr in STUDY_RECIPES.items():
        r = recipes[name]
        # FineWeb-Edu as token shards, tokenized once (the series' prepare step runs align tokenize)
        assert (r["learning_rate"], r["max_length"], r["dataset_name"]) == (lr, 1024, "data/tokens/fineweb-edu-gpt2")


@pytest.mark.parametrize("name", [*STUDY_RECIPES, "cpu-demo"])
def test_every_cpt_recipe_passes_the_checks_with_local_data(name, tiny_base_llama_dir, tmp_path, capsys):
    data = text_file(tmp_path / "docs.jsonl")
    code, out, err = run_cpt(["--config", f"recipes/cpt/{name}.yaml", "--model_name_or_path", str(tiny_base_llama_dir),
                              "--dataset_name", str(data), "--dataset_config", "null", "--bf16", "false",
                              "--output_dir", str(tmp_path / "out"), "--dry_run", "true"], capsys)
    assert code == 0, err[-2000:]
    assert "recipe ok" in out and not (tmp_path / "out").exists()


def test_demo_text_is_written_offline_from_packaged_data(tmp_path):
    from align.train.data import load_rows
    from align.train.demo_data import write_demo_text

    path = write_demo_text(tmp_path, limit=20)
    texts = load_rows(str(path), kind="text")
    assert texts.rows_kept == 20 + 2 * 30 and texts.rows_skipped == 0  # 20 conversations + MT-Bench's 30 x 2 turns
    assert texts.dataset[0]["text"].startswith("Who are you?\n\n")


def test_sft_and_cpt_train_with_the_metric_free_trainer_dpo_with_trls():
    from trl import DPOTrainer

    from align.train.cpt_config import CPTConfig
    from align.train.kinds import KINDS, kind_of
    from align.train.lean import LeanSFTTrainer

    assert KINDS["sft"].trainer_class is LeanSFTTrainer and KINDS["cpt"].trainer_class is LeanSFTTrainer
    assert KINDS["dpo"].trainer_class is DPOTrainer
    assert (kind_of(CPTConfig).name, kind_of(KINDS["sft"].config_class).name, KINDS["cpt"].rows) == (
        "cpt", "sft", "text")


@pytest.mark.slow
@pytest.mark.xdist_group("two-processes")  # accelerate's port 29500 admits one launch at a time
def test_two_processes_share_the_token_budget(tiny_base_llama_dir, tmp_path):
    """`align cpt --accelerate_config ddp --num_processes 2`: the recipe is checked here, then each process
    turns max_tokens into steps with the world size (2 x 2 rows x 32 tokens = 128 tokens a step)."""
    from conftest import run_cli

    data = text_file(tmp_path / "docs.jsonl")
    out = tmp_path / "out"
    proc = run_cli("-m", "align.cli", "cpt", "--accelerate_config", "ddp", "--num_processes", "2",
                   *base_argv(tiny_base_llama_dir, data, out, "--max_tokens", "300"), timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]
    card = json.loads((out / "run_card.json").read_text())
    assert card["world_size"] == 2 and card["global_step"] == 3 and card["cpt"]["tokens_per_step"] == 128
    assert 3 * 128 - 32 < card["tokens_trained"] <= 3 * 128


def test_dataset_name_on_the_command_line_replaces_a_mixer_with_its_splits_and_configs(tmp_path):
    """The handbook's CPT recipe with `--dataset_name FILE`: dataset_splits and dataset_configs go with the
    mixer they belong to (they were left behind and refused as 'goes with dataset_mixer')."""
    from align.train.cpt_config import CPTConfig
    from align.train.mixture_spec import mixture_from_args
    from align.train.recipe import parse_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"model_name_or_path": "m", "dataset_mixer": {"some/corpus": 1.0},
                                      "dataset_splits": ["train"], "dataset_configs": ["tiny"], "bf16": False}))
    data_args, *_ = parse_recipe(CPTConfig, ["--config", str(recipe), "--dataset_name", "local.jsonl"])
    assert mixture_from_args(data_args, str(recipe), seed=0) is None and data_args.dataset_name == "local.jsonl"
    data_args, *_ = parse_recipe(CPTConfig, ["--config", str(recipe)])
    assert [(s.path, s.name, s.split) for s in mixture_from_args(data_args, str(recipe), seed=0).sources] == [
        ("some/corpus", "tiny", "train")]


@pytest.mark.parametrize("strategy", ["bfd", "wrapped"])
def test_tokens_trained_is_every_token_of_the_packed_dataset_eos_included(
        strategy, tiny_base_llama_dir, tmp_path, capsys, captured_trainer):
    """pad = eos here: padding-free (bfd) batches have no attention mask, so counting `!= pad` left out
    every eos; one epoch must count each token of the packed dataset exactly once."""
    data = text_file(tmp_path / "docs.jsonl")
    out = tmp_path / "out"
    code, _, err = run_cpt(base_argv(tiny_base_llama_dir, data, out, "--packing_strategy", strategy,
                                     "--num_train_epochs", "1"), capsys)
    assert code == 0, err[-2000:]
    trainer = captured_trainer["trainer"]
    assert trainer.processing_class.pad_token_id == trainer.processing_class.eos_token_id
    packed = sum(len(row["input_ids"]) for row in trainer.train_dataset)
    card = json.loads((out / "run_card.json").read_text())
    assert card["tokens_trained"] == packed
    assert card["flops_6nd"] == 6 * card["parameters"] * packed


def test_a_padding_free_batch_padded_to_a_multiple_counts_only_its_sequences():
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from align.train.lean import trained_token_count

    eos = 2
    rows = [{"input_ids": [5, 6, eos], "seq_lengths": [3]}, {"input_ids": [7, eos, 8, 9, eos], "seq_lengths": [2, 3]}]
    batch = DataCollatorForLanguageModeling(pad_token_id=eos, padding_free=True, pad_to_multiple_of=16)(rows)
    assert batch["input_ids"].numel() == 16 and "attention_mask" not in batch
    assert trained_token_count(batch, padded_to_multiple=True) == 8
    assert trained_token_count(dict(batch, input_ids=batch["input_ids"][:, :8]), padded_to_multiple=False) == 8


def test_an_eos_token_outside_the_vocabulary_is_one_line_before_anything_loads(tiny_base_llama_dir, tmp_path,
                                                                                capsys):
    """TRL raised a ValueError (a traceback) after the data was read; now the pre-run checks say it, dry run too."""
    data = text_file(tmp_path / "docs.jsonl")
    for extra in ([], ["--dry_run", "true"]):
        code, _, err = run_cpt(base_argv(tiny_base_llama_dir, data, tmp_path / "out", "--max_steps", "1",
                                         "--eos_token", "<|no-such-token|>", *extra), capsys)
        assert code == 2 and "Traceback" not in err
        assert err.strip().splitlines()[-1] == (
            f"error: command line: --eos_token '<|no-such-token|>' is not in the vocabulary of {tiny_base_llama_dir}'s "
            "tokenizer: name one of its tokens, or leave eos_token unset for the tokenizer's own")
        assert not (tmp_path / "out").exists()
