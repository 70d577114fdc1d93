"""Parameter counts and training compute (6·N·D), one definition each."""

from __future__ import annotations

from typing import Any

# The study's budget: twice Chinchilla's 20 tokens per parameter.
TOKENS_PER_PARAMETER = 40.0


def count_parameters(model: Any, trainable_only: bool = False) -> int:
    """Parameters of a model; counts the full size of ZeRO-3-partitioned tensors (`ds_numel`)."""
    total = 0
    for p in model.parameters():
        if trainable_only and not p.requires_grad:
            continue
        total += getattr(p, "ds_numel", None) or p.numel()
    return int(total)


def count_config_parameters(config: Any) -> dict[str, int]:
    """Total and non-embedding parameters of `config`'s model, built on the meta device (no memory).

    `config` is a transformers config or a config dict with `model_type` (default llama).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if isinstance(config, dict):
        fields = dict(config)
        config = AutoConfig.for_model(fields.pop("model_type", "llama"), **fields)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = count_parameters(model)
    embeddings = {id(m.weight): m.weight.numel()
                  for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None}
    return {"total": total, "non_embedding": total - sum(embeddings.values())}


def training_flops(params: float, tokens: float) -> float:
    """6·N·D: forward + backward FLOPs of training N parameters on D tokens."""
    return 6.0 * params * tokens
