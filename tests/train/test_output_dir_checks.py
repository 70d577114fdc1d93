"""`--dry_run true` runs the output_dir checks the real run refuses on, and a recipe's `output_dir: ~`
(or none at all) is refused instead of training into ./trainer_output (issue 26.11)."""

from __future__ import annotations

import pytest
from test_train import SFT_RECIPE, in_process


def _argv(model, data, *extra):
    return ["--config", SFT_RECIPE, "--model_name_or_path", str(model), "--dataset_name", str(data), *extra]


def test_dry_run_refuses_a_non_empty_output_dir(tiny_llama_dir, chat_jsonl, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("someone's work")
    code, err = in_process("align.sft", _argv(tiny_llama_dir, chat_jsonl, "--output_dir", str(out),
                                              "--dry_run", "true"), capsys)
    assert code == 2 and f"output_dir {out} is not empty" in err, err
    assert (out / "notes.txt").read_text() == "someone's work"


def test_dry_run_refuses_an_output_dir_inside_an_input(tiny_llama_dir, chat_jsonl, capsys):
    code, err = in_process("align.sft", _argv(tiny_llama_dir, chat_jsonl, "--output_dir",
                                              str(tiny_llama_dir / "sft"), "--dry_run", "true"), capsys)
    assert code == 2 and "output_dir" in err and "model_name_or_path" in err, err
    assert not (tiny_llama_dir / "sft").exists()


def test_dry_run_passes_a_fresh_output_dir(tiny_llama_dir, chat_jsonl, tmp_path):
    from align.sft import main

    assert main(_argv(tiny_llama_dir, chat_jsonl, "--output_dir", str(tmp_path / "new"), "--dry_run", "true")) == 0
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("line", ["output_dir: ~\n", "output_dir: null\n", "output_dir: ''\n", ""])
def test_recipe_without_an_output_dir_is_refused(tiny_llama_dir, chat_jsonl, tmp_path, monkeypatch, capsys,
                                                 line):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(open(SFT_RECIPE).read() + line)
    monkeypatch.chdir(tmp_path)
    code, err = in_process("align.sft", ["--config", str(recipe), "--model_name_or_path", str(tiny_llama_dir),
                                         "--dataset_name", str(chat_jsonl), "--dry_run", "true"], capsys)
    assert code == 2 and "output_dir" in err and "trainer_output" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "trainer_output").exists()
