"""`align init`: a checkpoint of another's shape with fresh random weights."""

from __future__ import annotations

import json

import torch
from transformers import AutoModelForCausalLM

from align.cli import main
from align.plumbing.accounting import count_parameters


def init(*argv: str) -> int:
    """`align init ARGV` in this process (what the command does is the subject, not its process)."""
    return main(["init", *argv])


def test_init_scratch_makes_a_random_model_of_the_same_shape(tiny_llama_dir, tmp_path):
    out = tmp_path / "scratch"
    assert init("--like", str(tiny_llama_dir), "--seed", "1", "--out", str(out)) == 0
    a = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    b = AutoModelForCausalLM.from_pretrained(out)
    assert a.config.to_dict()["hidden_size"] == b.config.hidden_size
    assert count_parameters(a) == count_parameters(b)
    assert not torch.equal(a.model.layers[0].mlp.up_proj.weight, b.model.layers[0].mlp.up_proj.weight)
    card = json.loads((out / "run_card.json").read_text())
    assert card["seed"] == 1 and card["parameters"] == count_parameters(b)
    assert (out / "tokenizer_config.json").is_file()


def test_init_with_a_shape_takes_its_fields_and_keeps_the_tokenizer(tiny_llama_dir, tmp_path):
    """`--shape`: the staged demo's tiny scratch model; another model_type starts from that architecture."""
    from transformers import AutoConfig, AutoTokenizer

    shape = tmp_path / "shape.yaml"
    shape.write_text("hidden_size: 48\nnum_hidden_layers: 1\nnum_attention_heads: 3\nnum_key_value_heads: 1\n"
                     "head_dim: 16\nintermediate_size: 64\n")
    out = tmp_path / "shaped"
    assert init("--like", str(tiny_llama_dir), "--shape", str(shape), "--out", str(out)) == 0
    config = AutoConfig.from_pretrained(out)
    assert (config.hidden_size, config.num_hidden_layers, config.num_key_value_heads, config.head_dim) == (48, 1, 1, 16)
    assert AutoModelForCausalLM.from_pretrained(out).model.layers[0].self_attn.k_proj.weight.shape == (16, 48)
    assert AutoTokenizer.from_pretrained(out).get_vocab() == AutoTokenizer.from_pretrained(tiny_llama_dir).get_vocab()
    shape.write_text("model_type: mistral\nhidden_size: 32\nnum_attention_heads: 2\nnum_hidden_layers: 1\n")
    assert init("--like", str(tiny_llama_dir), "--shape", str(shape), "--out", str(tmp_path / "other")) == 0
    other = AutoConfig.from_pretrained(tmp_path / "other")
    assert other.model_type == "mistral" and other.vocab_size == AutoConfig.from_pretrained(tiny_llama_dir).vocab_size
