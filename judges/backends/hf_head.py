"""The output head in vocabulary slices on CPU: the same logits, sooner.

A decoding step's logits are [rows, hidden] x [hidden, vocabulary]; with a 49k-entry vocabulary the
weight is 113 MB (SmolLM2, float32) and one matrix product over it runs well below the CPU's
matrix-product speed, while slices of 1,024 vocabulary entries stay in cache (about 25% less time for
the head at 32-64 rows, measured on a 2-core CPU). Every logit is the same dot product over the same
hidden vector; the matrix library may round its last bit differently for a different slice shape, as
it already does for a different number of rows (tested within 1e-5; the MT-Bench greedy answers were
identical to FastChat's batch-1 text with it, bench/bench_answer.py). On GPUs one large product is
what the hardware wants, so nothing changes there.
"""

from __future__ import annotations

import torch
from torch import nn

VOCAB_SLICE = 1024


class SlicedHead(nn.Module):
    """Stands in for a model's output Linear: same weight (tied or not), same bias, logits by slices."""

    def __init__(self, head: nn.Linear):
        super().__init__()
        self.head = head
        self.weight, self.bias = head.weight, head.bias  # what code that inspects the head expects to find

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if hidden.device.type != "cpu" or hidden.shape[:-1].numel() < 2:
            return self.head(hidden)
        weights = self.head.weight.split(VOCAB_SLICE)
        biases = self.head.bias.split(VOCAB_SLICE) if self.head.bias is not None else [None] * len(weights)
        return torch.cat([nn.functional.linear(hidden, w, b) for w, b in zip(weights, biases)], dim=-1)


def slice_output_head(model) -> bool:
    """Give a CPU model the sliced head (once); False when its head is not a plain Linear."""
    head = model.get_output_embeddings()
    if isinstance(head, SlicedHead):
        return True
    if model.device.type != "cpu" or type(head) is not nn.Linear:
        return False
    model.set_output_embeddings(SlicedHead(head))
    return True
