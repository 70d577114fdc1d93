"""Tiny random checkpoints that say varied things, for answer tests and benchmarks (no model hub)."""

from __future__ import annotations

from pathlib import Path


def save_random_model(config, tok, out_dir: Path, seed: int = 0) -> Path:
    """A random model of `config` saved with `tok`. Weight matrices are drawn larger than the default
    init, so greedy answers vary and stop like a model's would: the default small init repeats the last
    prompt token, which would make text comparisons vacuous."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 2 and "embed" not in name:
                param.normal_(0.0, 0.3)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


WINDOW = 16  # a sliding window well below every test prompt (the shortest renders to about 30 tokens)
FAMILIES = ("llama", "gemma", "gemma2", "qwen2")


def tiny_config(family: str, tok):
    """A random config of `family` at test size; sliding windows shorter than the prompts."""
    from transformers import Gemma2Config, GemmaConfig, LlamaConfig, Qwen2Config

    shape = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                 bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    if family == "llama":
        return LlamaConfig(**shape, tie_word_embeddings=True)
    if family == "gemma":
        return GemmaConfig(**shape, head_dim=8)
    if family == "gemma2":  # one sliding, one full layer; Gemma 2's softcapping on attention and logits
        return Gemma2Config(**shape, head_dim=8, sliding_window=WINDOW, query_pre_attn_scalar=8,
                            attn_logit_softcapping=50.0, final_logit_softcapping=30.0)
    if family == "qwen2":  # Qwen2 with its sliding window switched on for every layer
        return Qwen2Config(**shape, use_sliding_window=True, sliding_window=WINDOW, max_window_layers=0)
    raise ValueError(family)


def make_tiny(family: str, out_dir: Path, tokenizer_dir: Path) -> Path:
    """Like conftest's make_tiny_llama, for any family (weights large enough to say varied things)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    return save_random_model(tiny_config(family, tok), tok, out_dir)
