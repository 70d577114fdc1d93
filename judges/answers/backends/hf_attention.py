"""Decoding attention by groups of rows, each over the columns its own rows use.

The batch cache lines every row up to end at the same column, so a row with a short conversation sits
right of a long one and the columns left of its start are padding that the mask hides. Attention
still reads them: on a CPU, reading keys and values is most of a decoding step's attention time, and
with answers of every length a quarter to a half of those columns are padding (measured on MT-Bench).
The batch therefore hands the attention a few groups of neighbouring rows (`row_groups`); each group
runs the model's own attention function over the columns from its leftmost row's start onward only.
Columns a group skips are masked for every row in it, so no row loses anything it attends to.

The model's attention is wrapped, not replaced: sdpa or the model's own eager function (softcapping,
sliding windows and scaling stay the model's business) runs per group; prefill and any call without
groups go straight through. Other implementations (flash, flex, paged) are left as they are.
"""

from __future__ import annotations

import torch

from judges.answers.backends.hf_internals import (
    attention_implementation,
    model_eager_attention,
    register_attention,
    sdpa_attention_forward,
)

WRAPPED = {"sdpa": "align_rows_sdpa", "eager": "align_rows_eager"}


def grouped(inner_name: str):
    def attention(module, query, key, value, attention_mask, row_groups=None, **kwargs):
        inner = sdpa_attention_forward if inner_name == "sdpa" else model_eager_attention(module)
        if not row_groups or len(row_groups) == 1 or query.shape[2] != 1 or attention_mask is None:
            return inner(module, query, key, value, attention_mask, **kwargs)
        outputs = []
        for first, last, context in row_groups:  # rows [first, last) need the last `context` columns
            skip = max(key.shape[-2] - context, 0)
            out, _ = inner(module, query[first:last], key[first:last, :, skip:], value[first:last, :, skip:],
                           attention_mask[first:last, ..., skip:], **kwargs)
            outputs.append(out)
        return torch.cat(outputs), None

    return attention


for _plain, _name in WRAPPED.items():
    register_attention(_name, grouped(_plain), like=_plain)


def use_row_groups(model) -> bool:
    """Switch the model to the grouped wrapper of its sdpa or eager attention; False if it uses another."""
    current = attention_implementation(model)
    if current in WRAPPED.values():
        return True
    if current not in WRAPPED:
        return False
    model.set_attn_implementation(WRAPPED[current])
    return True


def plan_groups(starts: list[int], end: int, call_cost: int) -> list[tuple[int, int, int]]:
    """Split rows (in batch order) into runs of neighbours: (first row, last row + 1, the run's leftmost
    start). Minimises the columns read, sum over runs of rows x (end - leftmost start), plus `call_cost`
    for each run (one attention call per layer). Exact: dynamic programming over the split points."""
    n = len(starts)
    best, cut = [0] + [0] * n, [0] * (n + 1)
    for j in range(1, n + 1):
        lowest, best[j] = end, None
        for i in range(j - 1, -1, -1):
            lowest = min(lowest, starts[i])
            cost = best[i] + (j - i) * (end - lowest) + call_cost
            if best[j] is None or cost < best[j]:
                best[j], cut[j] = cost, i
    runs, j = [], n
    while j:
        runs.append((cut[j], j, min(starts[cut[j]:j])))
        j = cut[j]
    return runs[::-1]
