"""Depth growth: which source layer each target layer copies, and zero-initialised new layers.

- stack (bert2BERT): the source layers in order, then copies of the top ones on top
  (18 -> 22 gives 0..17 then 14..17; more than double repeats the top block again).
- interpolate: every layer stays next to its copies, spread evenly (2 -> 3 gives 0, 0, 1).
- zero: the interpolate layout, but each later copy has o_proj and down_proj zeroed, so it
  adds nothing to the residual stream and the function is unchanged.
"""

from __future__ import annotations

import torch

DEPTH_MODES = ("stack", "interpolate", "zero")
# Residual writers of a layer: zeroing these makes the layer the identity.
WRITER_SUFFIXES = ("self_attn.o_proj.weight", "self_attn.o_proj.bias", "mlp.down_proj.weight", "mlp.down_proj.bias")


def layer_order(n_source: int, n_target: int, mode: str) -> list[int]:
    """Source layer index for every target layer, bottom to top."""
    if mode == "stack":
        order = list(range(n_source))
        while len(order) < n_target:
            take = min(n_target - len(order), n_source)
            order += list(range(n_source - take, n_source))
        return order
    if mode in ("interpolate", "zero"):
        return [t * n_source // n_target for t in range(n_target)]
    raise ValueError(f"unknown depth mode {mode!r}")


def new_layers(order: list[int]) -> list[bool]:
    """True for target layers that are a later copy of a source layer already placed."""
    seen: set[int] = set()
    flags = []
    for src in order:
        flags.append(src in seen)
        seen.add(src)
    return flags


def deepen(layers: list[dict[str, torch.Tensor]], n_target: int, mode: str) -> list[dict[str, torch.Tensor]]:
    """Target layers from (already widened) source layers.

    Copies share tensors with their originals (loading into the model copies them anyway);
    zeroed writers are fresh tensors, so nothing is modified in place.
    """
    order = layer_order(len(layers), n_target, mode)
    out = []
    for src, is_new in zip(order, new_layers(order)):
        layer = dict(layers[src])
        if mode == "zero" and is_new:
            for name in WRITER_SUFFIXES:
                if name in layer:
                    layer[name] = torch.zeros_like(layer[name])
        out.append(layer)
    return out
