"""The alignment-handbook's SFT and DPO recipes, as written, with only model, data and machine
keys overridden on the command line: every one passes the checks, and some train for real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import align_in_process, chat_rows, preference_rows, run_cli, write_jsonl
from handbook_recipes import DATA_KEYS, HARDWARE_KEYS, MODEL_KEYS, RECIPES, ZEPHYR_TEMPLATE

CPU = {"bf16": "false", "torch_dtype": "float32", "attn_implementation": "sdpa", "load_in_4bit": "false",
       "use_liger_kernel": "false", "padding_free": "false", "per_device_train_batch_size": "2",
       "per_device_eval_batch_size": "2", "gradient_accumulation_steps": "1", "dataset_num_proc": "1",
       "max_steps": "1", "push_to_hub": "false", "report_to": "none"}


def explicit_prompt_rows(n: int) -> list[dict]:
    """SmolLM3-preference shaped: the prompt apart, answer-only chosen/rejected, per-row template kwargs."""
    return [{"prompt": r["chosen"][:-1], "chosen": r["chosen"][-1:], "rejected": r["rejected"][-1:],
             "chat_template_kwargs": {"enable_thinking": i % 2 == 0}} for i, r in enumerate(preference_rows(n))]


def data_dir_for(root: Path, columns: tuple[str, ...]) -> Path:
    """A local directory standing in for a hub dataset: one <split>.jsonl per split name asked for."""
    return root / "-".join(columns)


def write_split(root: Path, columns: tuple[str, ...], split: str, n: int = 12) -> None:
    if "prompt" in columns:
        rows = explicit_prompt_rows(n)
    elif "chosen" in columns:
        rows = preference_rows(n)
    else:
        rows = chat_rows(n)
        if "chat_template_kwargs" in columns:
            rows = [{**r, "chat_template_kwargs": {"enable_thinking": i % 2 == 0}} for i, r in enumerate(rows)]
    path = data_dir_for(root, columns) / f"{split}.jsonl"
    if not path.exists():
        write_jsonl(path, rows)


def data_overrides(stage: str, recipe: dict, root: Path) -> dict[str, str]:
    """Local data in the recipe's own shape: same sources (ids -> local dirs), splits, weights, columns."""
    if "dataset_mixture" in recipe:
        spec = json.loads(json.dumps(recipe["dataset_mixture"]))
        for item in spec["datasets"]:
            columns = tuple(item["columns"])
            write_split(root, columns, item["split"])
            item["id"] = str(data_dir_for(root, columns))
        if isinstance(spec.get("test_split_size"), int):
            spec["test_split_size"] = 4  # 1000-3000 rows does not fit a test file
        return {"dataset_mixture": json.dumps(spec)}
    if stage == "cpt":  # plain text, in the folder of the recipe's dataset_configs name
        folder = root / "text" / (recipe.get("dataset_configs") or [""])[0]
        for split in recipe["dataset_splits"]:  # 96 rows: 3 blocks of 1024 tokens, 2 steps without repeating
            write_jsonl(folder / f"{split}.jsonl", [{"text": " ".join(m["content"] for m in r["messages"])}
                                                   for r in chat_rows(96)])
        return {"dataset_mixer": json.dumps({str(root / "text"): 1.0})}
    if "dataset_mixer" in recipe:
        for split in recipe["dataset_splits"]:
            write_split(root, ("chosen", "rejected"), split)
        return {"dataset_mixer": json.dumps({str(data_dir_for(root, ("chosen", "rejected"))): 1.0})}
    path = root / ("chat.jsonl" if stage == "sft" else "prefs.jsonl")
    write_jsonl(path, chat_rows(16) if stage == "sft" else preference_rows(12))
    return {"dataset_name": str(path)}


def command_line(name: str, model: Path, root: Path, out: Path, **extra: str) -> tuple[str, list[str]]:
    stage, recipe = RECIPES[name]
    path = root / (name.replace("/", "_") + ".yaml")
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    overrides = {"model_name_or_path": str(model), "output_dir": str(out),
                 **({"model_revision": "main"} if "model_revision" in recipe else {}),
                 **data_overrides(stage, recipe, root),
                 **{k: v for k, v in CPU.items() if k in recipe or k in ("max_steps", "output_dir", "report_to",
                                                                         "push_to_hub", "dataset_num_proc")},
                 **({"optim": "adamw_torch"} if "paged" in str(recipe.get("optim")) else {}), **extra}
    assert set(overrides) - set(extra) <= MODEL_KEYS | DATA_KEYS | HARDWARE_KEYS
    return stage, ["--config", str(path), *[a for k, v in overrides.items() for a in (f"--{k}", v)]]


def in_process(stage: str, argv: list[str], capsys) -> tuple[int | None, str, str]:
    return align_in_process([stage, *argv], capsys)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_handbook_recipe_passes_the_checks(name, tiny_llama_dir, tmp_path, capsys):
    stage, argv = command_line(name, tiny_llama_dir, tmp_path, tmp_path / "out", dry_run="true")
    code, out, err = in_process(stage, argv, capsys)
    assert code == 0, err[-2000:]
    assert "recipe ok" in out and "not loaded (dry run)" in out
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_handbook_recipe_as_written_stops_with_one_line_per_problem(tmp_path, capsys, monkeypatch):
    from align.train import checks

    monkeypatch.setattr(checks, "_gpu", lambda: False)
    monkeypatch.setattr(checks, "_installed", lambda *modules: "deepspeed" in modules)
    stage, recipe = RECIPES["zephyr-7b-beta/sft/config_full"]
    path = tmp_path / "config_full.yaml"
    path.write_text(yaml.safe_dump(recipe))
    code, out, err = in_process(stage, ["--config", str(path), "--dry_run", "true"], capsys)
    assert code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    for expected in ("error: bf16: true needs a GPU",
                     "error: attn_implementation: flash_attention_2 needs the flash_attn package",
                     "error: report_to: wandb is not installed",
                     "error: push_to_hub: true needs hub access, and HF_HUB_OFFLINE=1",
                     "error: model_name_or_path mistralai/Mistral-7B-v0.1: a hub model that needs hub access",
                     "error: dataset HuggingFaceH4/ultrachat_200k[train_sft]: a hub dataset that needs hub access"):
        assert sum(line.startswith(expected) for line in lines) == 1, (expected, lines)
    assert len(lines) == 7 and lines[-1].endswith("(7 problems; nothing was loaded)")


def train(name: str, model: Path, root: Path, out: Path) -> dict:
    """`python -m align.STAGE` on the recipe as written, in this process (these recipes set no env: block, the
    one part of a run that must come before torch is imported): its run card."""
    import importlib

    stage, argv = command_line(name, model, root, out, max_steps="2")
    assert "env" not in RECIPES[name][1]
    assert importlib.import_module(f"align.{stage}").main(argv) == 0
    return json.loads((out / "run_card.json").read_text())


@pytest.mark.slow
def test_zephyr_7b_beta_sft_then_dpo_train_as_written(tiny_base_llama_dir, tmp_path):
    from transformers import AutoTokenizer

    card = train("zephyr-7b-beta/sft/config_full", tiny_base_llama_dir, tmp_path, tmp_path / "sft")
    assert card["global_step"] == 2
    assert AutoTokenizer.from_pretrained(tmp_path / "sft").chat_template == ZEPHYR_TEMPLATE  # saved, so answers use it
    assert card["chat_template"] == ZEPHYR_TEMPLATE
    assert card["training_args"]["max_length"] == 2048 and card["training_args"]["warmup_steps"] == 0.1
    assert [n.split(":")[0] for n in card["recipe_translations"]] == [
        "max_seq_length", "gradient_checkpointing", "gradient_checkpointing_kwargs", "warmup_ratio"]
    sources = card["data"]["mixture"]["sources"]
    assert [s["split"] for s in sources] == ["train_sft", "test_sft"] and all(s["rows_taken"] == 12 for s in sources)
    assert all(s["fingerprint"].startswith("sha256:") for s in sources)
    assert card["data"]["train"]["rows_kept"] == 20 and card["data"]["eval"]["rows_kept"] == 4  # 24 - test split 4

    card = train("zephyr-7b-beta/dpo/config_full", tmp_path / "sft", tmp_path, tmp_path / "dpo")
    assert card["global_step"] == 2 and card["training_args"]["beta"] == 0.01
    assert any(n.startswith("max_prompt_length: 512 -> dropped") for n in card["recipe_translations"])


@pytest.mark.slow
def test_gpt2_nl_cpt_trains_as_written(tiny_base_llama_dir, tmp_path):
    card = train("gpt2-nl/cpt/config_full", tiny_base_llama_dir, tmp_path, tmp_path / "cpt")
    assert card["stage"] == "cpt" and card["global_step"] == 2
    assert card["training_args"]["max_length"] == 1024 and card["training_args"]["learning_rate"] == 2.0e-4
    assert card["cpt"]["text_column"] == "text" and card["cpt"]["packing_strategy"] == "wrapped"
    source = card["data"]["mixture"]["sources"][0]
    assert (source["config"], source["split"], source["weight"]) == ("tiny", "train", 1.0)
    assert [n.split(":")[0] for n in card["recipe_translations"]] == [
        "max_seq_length", "preprocessing_num_workers", "gradient_checkpointing", "gradient_checkpointing_kwargs",
        "warmup_ratio"]


@pytest.mark.slow
def test_smollm2_sft_then_dpo_train_as_written(tiny_base_llama_dir, tmp_path):
    card = train("smollm2/sft/config", tiny_base_llama_dir, tmp_path, tmp_path / "sft")
    assert card["global_step"] == 2 and card["chat_template"].startswith("{% for message in messages %}")
    assert card["training_args"]["max_length"] == 8192
    card = train("smollm2/dpo/config", tmp_path / "sft", tmp_path, tmp_path / "dpo")
    assert card["global_step"] == 2 and card["training_args"]["beta"] == 0.5
    assert card["data"]["mixture"]["test_split_size"] == 4 and card["data"]["eval"]["rows_kept"] == 4


@pytest.mark.slow
def test_trl_cli_recipe_with_datasets_and_env_trains(tiny_llama_dir, tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", chat_rows(12))
    b = write_jsonl(tmp_path / "b.jsonl", chat_rows(6))
    recipe = tmp_path / "trl.yaml"
    recipe.write_text(yaml.safe_dump({
        "env": {"ALIGN_RECIPE_PROBE": "from-recipe", "HF_TOKEN": "hf_not_a_real_token"},
        "datasets": [{"path": "json", "data_files": str(a), "fraction": 0.75},
                     {"path": str(b), "columns": ["messages"], "fraction": 0.25}],
        "test_split_size": 0.25, "streaming": False,
        "model_name_or_path": str(tiny_llama_dir), "bf16": False, "max_steps": 2, "per_device_train_batch_size": 2,
        "max_length": 96, "report_to": "none", "gradient_checkpointing": False, "save_strategy": "no"}))
    proc = run_cli("-m", "align.cli", "sft", "--config", str(recipe), "--output_dir", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    card_text = (tmp_path / "out" / "run_card.json").read_text()
    assert "hf_not_a_real_token" not in card_text
    card = json.loads(card_text)
    assert card["env"] == {"ALIGN_RECIPE_PROBE": "from-recipe", "HF_TOKEN": "<redacted>"}
    mixture = card["data"]["mixture"]
    assert mixture["style"] == "trl" and [s["fraction"] for s in mixture["sources"]] == [0.75, 0.25]
    # normalised shares, no oversampling: total = min(12 / 0.75, 6 / 0.25) = 16 -> 12 + 4 rows, 4 cut for test
    assert [s["rows_taken"] for s in mixture["sources"]] == [12, 4]
    assert card["data"]["train"]["rows_kept"] == 12 and card["global_step"] == 2
