"""One meaning for a recipe boolean: transformers' own (HfArgumentParser's string_to_bool), read the
same by the launcher's mixed precision, the trainer's arguments and the pre-run checks (issue 24.5)."""

from __future__ import annotations

import pytest
from test_train import SFT_RECIPE

from align.train import checks, launch

# every spelling transformers' string_to_bool accepts, in a few cases
SPELLINGS = ["yes", "no", "true", "false", "t", "f", "y", "n", "1", "0", "TRUE", "No", "T", "Y", "F"]


def _recipe_argv(model, data, out, *extra):
    return ["--config", SFT_RECIPE, "--model_name_or_path", str(model), "--dataset_name", str(data),
            "--output_dir", str(out), "--max_steps", "1", "--use_cpu", "true", *extra]


def _readings(argv, monkeypatch) -> tuple[str, bool, str]:
    """(the launcher's --mixed_precision, the trainer's bf16, the launched process's mixed precision)."""
    from trl import SFTConfig

    from align.train.launch import launch_if_asked
    from align.train.recipe import parse_recipe, recipe_command_line
    from align.train.values import follow_recipe_precision

    monkeypatch.setattr(checks, "_gpu", lambda: True)  # bf16 is allowed: the readings are what is compared
    launched = []
    monkeypatch.setattr(launch, "call_in_own_group", lambda cmd: launched.append(cmd) or 0)
    assert launch_if_asked("sft", ["--accelerate_config", "ddp", *argv]) == 0
    launcher = launched[0][launched[0].index("--mixed_precision") + 1]
    trainer = parse_recipe(SFTConfig, argv)[1].bf16
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    return launcher, trainer, follow_recipe_precision(*recipe_command_line(argv))


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_launcher_and_trainer_agree_on_every_spelling(spelling, tiny_llama_dir, chat_jsonl, tmp_path, monkeypatch):
    from transformers.hf_argparser import string_to_bool

    on_command_line = _recipe_argv(tiny_llama_dir, chat_jsonl, tmp_path / "a", "--bf16", spelling)
    recipe = tmp_path / "recipe.yaml"  # the same word quoted in a recipe file: a string, not YAML's boolean
    recipe.write_text(open(SFT_RECIPE).read().replace("bf16: false", f'bf16: "{spelling}"'))
    in_file = _recipe_argv(tiny_llama_dir, chat_jsonl, tmp_path / "b")
    in_file[1] = str(recipe)
    expected = "bf16" if string_to_bool(spelling) else "no"
    for argv in (on_command_line, in_file):
        launcher, trainer, launched = _readings(argv, monkeypatch)
        assert (launcher, trainer, launched) == (expected, expected == "bf16", expected), argv


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_checks_read_booleans_as_the_trainer_does(spelling, monkeypatch):
    from transformers.hf_argparser import string_to_bool

    monkeypatch.setattr(checks, "_gpu", lambda: False)
    problems = checks.environment_problems({"bf16": spelling, "use_liger_kernel": "f"})
    assert any("bf16: true needs a GPU" in p for p in problems) == string_to_bool(spelling)


def test_a_word_transformers_refuses_is_refused_in_a_recipe(tmp_path, tiny_llama_dir, chat_jsonl):
    from trl import SFTConfig

    from align.plumbing.errors import UserError
    from align.train.recipe import parse_recipe

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(open(SFT_RECIPE).read().replace("bf16: false", 'bf16: "maybe"'))
    argv = _recipe_argv(tiny_llama_dir, chat_jsonl, tmp_path / "out")
    argv[1] = str(recipe)
    with pytest.raises(UserError, match="key 'bf16' expects a boolean"):
        parse_recipe(SFTConfig, argv)


@pytest.mark.parametrize("spelling", SPELLINGS + ["none", ""])
def test_resume_from_checkpoint_reads_booleans_by_the_same_rule(spelling, tmp_path, monkeypatch):
    """--resume_from_checkpoint is a path or a boolean word: the same words as every other boolean."""
    from types import SimpleNamespace

    from transformers.hf_argparser import string_to_bool

    from align.train import output_plan

    newest = []
    monkeypatch.setattr(output_plan, "_resume_checkpoint", lambda out, resume: newest.append(resume) or "ckpt")
    args = SimpleNamespace(output_dir=str(tmp_path / "out"), resume_from_checkpoint=spelling)
    planned = output_plan.plan_output_dir(args, SimpleNamespace(overwrite_output_dir=False), {})
    resumes = spelling not in ("none", "") and string_to_bool(spelling)
    assert planned == (("ckpt", False) if resumes else (None, False))
    if resumes:  # passed on as "resume from the newest", not as a directory named like the word
        assert newest == [True]
