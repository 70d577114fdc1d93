"""Linear layers with their weights packed once for oneDNN, for float32 answering on a CPU.

Every decoding step multiplies a few dozen rows by every weight of the model: SmolLM2-135M's 540 MB
of float32 weights stream from memory each step. A plain `nn.functional.linear` hands the weight to
the matrix library, which re-packs it into its blocked layout on every call; at decoding's row counts
that repacking of a weight fresh from memory costs a quarter to nearly half of the product's time
(bench/bench_linear.py, SmolLM2's 211 layers in the model's order, one thread: 73 GFLOPS plain vs 96
packed at 74 rows, 45 vs 66 at 20, 26 vs 45 at 8). Packing once, when the model is loaded for
answering, removes it. The packed copy takes as much memory as the weights themselves.

The products are the same dot products summed in another order, so the last bit of a logit can differ
from the plain layer's (as it already does between one row and many): tested within 1e-5, and the
MT-Bench greedy answers were identical to FastChat's batch-1 text on all 40 greedy questions, both turns
(bench/bench_answer.py; BENCHMARKS.md). Other dtypes and devices keep the plain layer.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from judges.answers.backends.hf_internals import packed_linear, reorder_linear_weight

log = logging.getLogger(__name__)

# Weights smaller than this stay plain: a packed call costs about 15 us more to set up, which a small
# weight's product does not win back (measured, one thread, 5-20 rows: 64 x 64 takes 5 us plain and 20
# packed; 256 x 256 19 vs 27; 576 x 576 91 vs 58; a 49,152 x 64 head 2,333 vs 557).
PACK_MIN_WEIGHTS = 1 << 16


class PackedLinear(nn.Module):
    """Stands in for an nn.Linear: same weight (still reachable, tied or not), same bias, packed product."""

    def __init__(self, linear: nn.Linear, rows_hint: int):
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias  # the same parameters: a tied head stays tied
        with torch.no_grad():
            self.packed = reorder_linear_weight(linear.weight.detach(), rows_hint)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dtype != torch.float32:
            return nn.functional.linear(x, self.weight, self.bias)
        flat = x.reshape(-1, x.shape[-1])
        out = packed_linear(flat, self.packed, self.bias)
        return out.reshape(*x.shape[:-1], out.shape[-1])


def packable(model) -> bool:
    """A float32 model on a CPU whose torch was built with oneDNN."""
    return (model.device.type == "cpu" and model.dtype == torch.float32
            and torch.backends.mkldnn.is_available())


def packed_ops_problem() -> str | None:
    """Why the packed product cannot be used here, or None. The two oneDNN ops are torch internals
    (hf_internals.py): a torch that renamed, removed or changed one fails this probe (any error: what a
    change raises is not documented) and answering keeps the plain layers instead of failing mid-generation."""
    try:
        plain = nn.Linear(8, 4)
        x = torch.randn(2, 8)
        with torch.no_grad():
            agrees = torch.allclose(PackedLinear(plain, rows_hint=2)(x), plain(x), atol=1e-5)
    except Exception as err:  # noqa: BLE001 (see the docstring)
        return f"torch's oneDNN linear ops are not usable ({type(err).__name__}: {err})"
    return None if agrees else "torch's oneDNN linear ops disagree with the plain product"


def pack_linear_layers(model, rows_hint: int) -> int:
    """Swap every nn.Linear of a CPU float32 model with at least PACK_MIN_WEIGHTS weights (output head
    included) for a PackedLinear, once. Returns how many layers are packed (0 when the model does not
    qualify)."""
    if not packable(model):
        return 0
    targets = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
               if type(child) is nn.Linear and child.weight.numel() >= PACK_MIN_WEIGHTS]
    why_not = packed_ops_problem()
    try:  # all or nothing: a build whose oneDNN refuses a shape keeps every plain layer
        packed = [] if why_not else [PackedLinear(child, rows_hint) for _, _, child in targets]
    except RuntimeError as err:
        why_not = str(err)
    if why_not:
        log.info("linear layers left unpacked: %s", why_not)
        return 0
    for (parent, name, _), layer in zip(targets, packed):
        setattr(parent, name, layer)
    if packed:
        log.info("%d linear layers packed for oneDNN (float32 on CPU; the packed copies take as much memory as "
                 "the weights)", len(packed))
    return sum(isinstance(m, PackedLinear) for m in model.modules())
