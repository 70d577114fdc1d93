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
