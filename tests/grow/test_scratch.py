"""`align init`: a checkpoint of another's shape with fresh random weights."""

from __future__ import annotations

import json

import torch
from conftest import run_cli
from transformers import AutoModelForCausalLM

from align.accounting import count_parameters


def test_init_scratch_makes_a_random_model_of_the_same_shape(tiny_llama_dir, tmp_path):
    out = tmp_path / "scratch"
    result = run_cli("-m", "align.cli", "init", "--like", str(tiny_llama_dir), "--seed", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    a = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    b = AutoModelForCausalLM.from_pretrained(out)
    assert a.config.to_dict()["hidden_size"] == b.config.hidden_size
    assert count_parameters(a) == count_parameters(b)
    assert not torch.equal(a.model.layers[0].mlp.up_proj.weight, b.model.layers[0].mlp.up_proj.weight)
    card = json.loads((out / "run_card.json").read_text())
    assert card["seed"] == 1 and card["parameters"] == count_parameters(b)
    assert (out / "tokenizer_config.json").is_file()
