"""Keys the alignment-handbook / older TRL used: translated with one line each, or refused with the reason;
TRL CLI's env: block; the inline chat_template."""

from __future__ import annotations

import os
import warnings

import pytest
from trl import DPOConfig, SFTConfig

from align.plumbing.errors import UserError
from align.train.compat import apply_recipe_env, env_card, translate_argv, translate_keys
from align.train.recipe import parse_recipe


def test_renamed_keys_become_todays_with_a_note():
    raw, notes = translate_keys({"max_seq_length": 2048, "hub_model_revision": "v1", "warmup_ratio": 0.1,
                                 "packing_strategy": "ffd"}, "r.yaml", "sft")
    assert raw == {"max_length": 2048, "hub_revision": "v1", "warmup_steps": 0.1, "packing_strategy": "bfd"}
    assert len(notes) == 4
    assert notes[0].startswith("max_seq_length: 2048 -> max_length: 2048")
    assert any(n.startswith("warmup_ratio: 0.1 -> warmup_steps: 0.1") and "fraction" in n for n in notes)


def test_warmup_fraction_is_what_transformers_reads_as_a_ratio():
    # the translation's claim, checked against the installed transformers
    args = SFTConfig(output_dir="/tmp/unused", warmup_steps=0.1, bf16=False, report_to="none")
    assert args.get_warmup_steps(100) == 10 and args.get_warmup_steps(7) == 1


def test_max_prompt_length_says_what_truncation_applies():
    raw, notes = translate_keys({"max_prompt_length": 512, "max_length": 1024}, "r.yaml", "dpo")
    assert raw == {"max_length": 1024}
    assert "max_prompt_length: 512 -> dropped" in notes[0] and "max_length 1024 keeping the start" in notes[0]
    with pytest.raises(UserError, match="r.yaml: key 'max_prompt_length' has no meaning for SFT"):
        translate_keys({"max_prompt_length": 512}, "r.yaml", "sft")


@pytest.mark.parametrize("raw, message", [
    ({"warmup_ratio": 1.5}, "key 'warmup_ratio' must be in [0, 1)"),
    ({"warmup_ratio": 0.1, "warmup_steps": 5}, "both warmup_ratio (0.1) and warmup_steps (5) are set"),
    ({"max_seq_length": 512, "max_length": 1024}, "both 'max_seq_length' (512) and 'max_length' (1024) are set"),
    ({"dataset_kwargs": {"append_concat_token": True}}, "'dataset_kwargs.append_concat_token: True' cannot be"),
    ({"auto_insert_empty_system_msg": True}, "key 'auto_insert_empty_system_msg' has no meaning today"),
])
def test_untranslatable_keys_are_refused_with_the_reason(raw, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        translate_keys(raw, "r.yaml", "sft")


def test_dataset_kwargs_that_match_today_are_dropped_with_a_note():
    raw, notes = translate_keys({"dataset_kwargs": {"add_special_tokens": False, "append_concat_token": False}},
                                "r.yaml", "sft")
    assert "dataset_kwargs" not in raw and len(notes) == 2


def test_recipe_and_command_line_are_translated(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model_name_or_path: m\ndataset_name: d\nbf16: false\nmax_seq_length: 512\n"
                      "warmup_ratio: 0.05\nmax_prompt_length: 128\n")
    _, args, _, _, resolved = parse_recipe(DPOConfig, ["--config", str(recipe), "--output_dir", str(tmp_path / "o")])
    assert args.max_length == 512 and args.warmup_steps == 0.05
    assert len(resolved["translated_keys"]) == 3
    cli, notes = translate_argv(["--max_seq_length", "64", "--learning_rate", "1e-5", "--warmup_ratio=0.2"],
                                "command line", "sft")
    assert cli == ["--max_length", "64", "--learning_rate", "1e-5", "--warmup_steps", "0.2"] and len(notes) == 2


def test_env_block_is_set_and_recorded_with_secrets_blanked(tmp_path, monkeypatch):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("env:\n  ALIGN_TEST_THREADS: 3\n  HF_TOKEN: hf_abc\n  WANDB_API_KEY: k\n  ALIGN_FLAG: true\n")
    for name in ("ALIGN_TEST_THREADS", "HF_TOKEN", "WANDB_API_KEY", "ALIGN_FLAG"):
        monkeypatch.delenv(name, raising=False)
    env = apply_recipe_env(["--config", str(recipe)])
    assert os.environ["ALIGN_TEST_THREADS"] == "3" and os.environ["HF_TOKEN"] == "hf_abc"
    assert os.environ["ALIGN_FLAG"] == "true"
    card = env_card(env)
    assert card["ALIGN_TEST_THREADS"] == "3" and card["HF_TOKEN"] == "<redacted>"
    assert card["WANDB_API_KEY"] == "<redacted>"


def test_env_block_must_be_a_mapping(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("env: [A, B]\n")
    with pytest.raises(UserError, match="key 'env' must be a mapping"):
        apply_recipe_env(["--config", str(recipe)])


def test_inline_chat_template_is_the_tokenizers_template(tiny_llama_dir, tmp_path):
    from transformers import AutoTokenizer

    from align.train.chat import prepare_tokenizer

    template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{{ eos_token }}{% endfor %}"
    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(tiny_llama_dir), chat_template=template)
    assert tok.chat_template == template
    tok.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path).chat_template == template  # saved with the checkpoint
    path = tmp_path / "t.jinja"
    path.write_text(template)
    with pytest.raises(UserError, match="chat_template and chat_template_path are both set"):
        prepare_tokenizer(AutoTokenizer.from_pretrained(tiny_llama_dir), chat_template=template,
                          chat_template_path=str(path))


V6_WARNING = "`gradient_checkpointing` is deprecated and will be removed in v6"


@pytest.mark.parametrize("config_cls", [SFTConfig, DPOConfig])
@pytest.mark.parametrize("lines, cli, on, kwargs", [
    ("gradient_checkpointing: false\n", [], False, None),
    ("gradient_checkpointing: true\ngradient_checkpointing_kwargs: {use_reentrant: false}\n", [], True,
     {"use_reentrant": False}),
    ("", [], True, None),  # neither set: TRL's default (true), under today's name
    ("gradient_checkpointing: true\n", ["--gradient_checkpointing", "false",
                                        "--gradient_checkpointing_kwargs", '{"use_reentrant": true}'], False,
     {"use_reentrant": True}),
])
def test_gradient_checkpointing_is_activation_checkpointing_without_the_v6_warning(tmp_path, config_cls, lines, cli,
                                                                                    on, kwargs):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model_name_or_path: m\ndataset_name: d\nbf16: false\n{lines}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, args, _, _, resolved = parse_recipe(config_cls, ["--config", str(recipe), "--output_dir",
                                                            str(tmp_path / "o"), *cli])
    assert not [w for w in caught if "will be removed in v6" in str(w.message)]
    assert args.activation_checkpointing is on and args.gradient_checkpointing is on  # transformers mirrors the alias
    assert args.activation_checkpointing_kwargs == kwargs
    if lines:
        assert any(n.startswith("gradient_checkpointing: ") and "-> activation_checkpointing: " in n
                   for n in resolved["translated_keys"])


def test_trl_still_defaults_gradient_checkpointing_under_the_old_name():
    # why a recipe that sets neither key gets activation_checkpointing: TRL's default, else the v6 warning
    with pytest.warns(FutureWarning, match=V6_WARNING):
        assert SFTConfig(output_dir="/tmp/unused", bf16=False, report_to="none").activation_checkpointing is True
