"""Recipe parsing: keys, types, CLI overrides, and the one-line errors (exit 2, nothing loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, run_cli
from trl import DPOConfig, SFTConfig

from align.plumbing.errors import UserError
from align.train.recipe import parse_recipe


def write_recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text("model_name_or_path: some/model\ndataset_name: some/data\nbf16: false\n" + text)
    return path


def parse(tmp_path, text, *cli, config_class=SFTConfig):
    recipe = write_recipe(tmp_path, text)
    return parse_recipe(config_class, ["--config", str(recipe), "--output_dir", str(tmp_path / "out"), *cli])


def test_yaml_string_numbers_are_converted(tmp_path):
    data, train, model, run, resolved = parse(tmp_path, "learning_rate: 3e-5\nmax_steps: 1e2\nbeta: 1e-2\n",
                                              config_class=DPOConfig)
    assert train.learning_rate == pytest.approx(3e-5) and isinstance(train.learning_rate, float)
    assert train.max_steps == 100 and isinstance(train.max_steps, int)
    assert train.beta == pytest.approx(0.01)
    assert resolved["learning_rate"] == pytest.approx(3e-5)


def test_command_line_overrides_recipe(tmp_path):
    _, train, model, _, resolved = parse(tmp_path, "learning_rate: 3.0e-5\nlora_r: 8\n",
                                         "--learning_rate", "1.0e-5", "--lora_r", "4")
    assert train.learning_rate == pytest.approx(1e-5)
    assert model.lora_r == 4
    assert resolved["learning_rate"] == "1.0e-5" and resolved["recipe_file"].endswith("r.yaml")


def test_model_and_data_keys(tmp_path):
    data, train, model, run, _ = parse(
        tmp_path, "torch_dtype: bfloat16\nattn_implementation: eager\ndataset_train_split: train_sft\n"
                  "max_train_rows: 10\ninvalid_rows: skip\n")
    assert model.dtype == "bfloat16" and model.attn_implementation == "eager"
    assert data.dataset_train_split == "train_sft" and data.max_train_rows == 10 and data.invalid_rows == "skip"
    assert train.trust_remote_code is False  # house default
    assert run.overwrite_output_dir is False


@pytest.mark.parametrize("text, message", [
    ("learnin_rate: 1.0e-5\n", "unknown key 'learnin_rate' (did you mean 'learning_rate'?)"),
    ("max_prompt_length: 512\n", "key 'max_prompt_length' has no meaning for SFT"),
    ("learning_rate: fast\n", "key 'learning_rate' expects a number, got 'fast'"),
    ("max_steps: 2.5\n", "key 'max_steps' expects an integer"),
    ("packing: maybe\n", "key 'packing' expects a boolean"),
    ("invalid_rows: ignore\n", "key 'invalid_rows' must be one of ['error', 'skip']"),
    ("torch_dtype: fp8\n", "key 'torch_dtype' must be one of"),
])
def test_bad_recipe_values_name_key_and_file(tmp_path, text, message):
    with pytest.raises(UserError) as err:
        parse(tmp_path, text)
    assert message in str(err.value)
    if "key" in message:
        assert str(tmp_path / "r.yaml") in str(err.value)


def test_recipe_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(UserError, match="must be a YAML mapping"):
        parse_recipe(SFTConfig, ["--config", str(path)])


def test_unknown_command_line_flag(tmp_path):
    with pytest.raises(UserError, match="--no_such_flag"):
        parse(tmp_path, "", "--no_such_flag", "1")


def test_study_recipes_hold_the_study_settings():
    _, sft, _, _, _ = parse_recipe(SFTConfig, ["--config", str(REPO / "recipes/sft/ultrachat.yaml"),
                                               "--model_name_or_path", "m", "--bf16", "false"])
    data, dpo, model, _, _ = parse_recipe(DPOConfig, ["--config", str(REPO / "recipes/dpo/ultrafeedback.yaml"),
                                                      "--model_name_or_path", "m", "--bf16", "false"])
    assert sft.learning_rate == pytest.approx(3.0e-5) and dpo.learning_rate == pytest.approx(5.0e-7)
    assert dpo.beta == pytest.approx(0.01) and dpo.precompute_ref_log_probs
    for cfg in (sft, dpo):
        assert cfg.lr_scheduler_type.value == "cosine" and cfg.warmup_steps == pytest.approx(0.1)
        assert cfg.num_train_epochs == 1 and cfg.max_length == 2048 and cfg.gradient_checkpointing
        assert cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * 8 == 128
    assert sft.assistant_only_loss
    assert data.dataset_name == "HuggingFaceH4/ultrafeedback_binarized" and data.dataset_train_split == "train_prefs"
    assert model.dtype == "bfloat16"


@pytest.mark.slow
def test_entry_point_exits_2_without_traceback_before_loading(tmp_path):
    # The model path does not exist: the unknown key must be reported first, and nothing written.
    recipe = write_recipe(tmp_path, "learning_rte: 1.0e-5\n")
    out = tmp_path / "out"
    proc = run_cli("-m", "align.sft", "--config", str(recipe), "--output_dir", str(out), timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"error: {recipe}: unknown key 'learning_rte'" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("kind", ["sft", "dpo", "cpt"])
def test_make_parser_is_the_parser_the_command_reads(kind, capsys):
    """`align KIND --help` (the command module's main) prints the help of its make_parser(), as TRL's scripts
    keep one parser for the command and the script."""
    import importlib

    module = importlib.import_module(f"align.train.{kind}")
    with pytest.raises(SystemExit) as exited:
        module.main(["--help"])
    assert exited.value.code == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"usage: align {kind} [-h]") and printed == module.make_parser().format_help()


@pytest.mark.parametrize("stage", ["sft", "dpo", "cpt"])
@pytest.mark.parametrize(("text", "expected"), [
    ("per_device_train_batch_size: true\n", "an integer"),
    ("learning_rate: false\n", "a number"),
    ("max_length: yes\n", "an integer"),  # YAML 1.1: yes is a boolean
])
def test_a_boolean_for_a_number_key_is_refused_naming_key_and_file(stage, text, expected, tmp_path):
    """`per_device_train_batch_size: true` was taken as 1 (Python's True == 1), in every recipe kind (issue 29.11)."""
    from align.train.kinds import KINDS

    with pytest.raises(UserError) as err:
        parse(tmp_path, text, config_class=KINDS[stage].config_class)
    key = text.split(":")[0]
    assert str(err.value) == (f"{tmp_path / 'r.yaml'}: key '{key}' expects {expected}, "
                              f"got {'False' if 'false' in text else 'True'} (a boolean)")


def test_max_tokens_true_is_refused_not_read_as_one_token(tmp_path):
    from align.train.cpt_config import CPTConfig

    with pytest.raises(UserError) as err:
        parse(tmp_path, "max_tokens: true\nmax_length: 32\n", config_class=CPTConfig)
    assert str(err.value) == f"{tmp_path / 'r.yaml'}: key 'max_tokens' expects an integer, got True (a boolean)"


@pytest.mark.parametrize("flag", ["--per_device_train_batch_size", "--max_tokens", "--learning_rate"])
def test_a_boolean_for_a_number_flag_is_refused_on_the_command_line_too(flag, tmp_path):
    from align.train.cpt_config import CPTConfig

    with pytest.raises(UserError) as err:
        parse(tmp_path, "max_length: 32\n", flag, "true", config_class=CPTConfig)
    assert str(err.value).startswith(f"command line: argument {flag}/") and "value: 'true'" in str(err.value)
