"""Width growth (bert2BERT FPI / AKI) of a Llama-family state dict.

Notation: the source has hidden size Ds, the target Dt. One global map g sends every target
hidden unit to a source unit (the first Ds are the identity, the rest copy random units);
c(i) counts the target units that copy g(i), itself included.

Why the residual writers get a scale a(i) = sqrt(Dt / (Ds * c(i))): RMSNorm divides by the
root-mean-square over the whole hidden vector. Plain copies change that mean whenever the copy
counts are uneven (any non-integer width ratio). With h'(i) = a(i) * h(g(i)) the target's mean
square is (1/Dt) * sum_j c(j) * Dt/(Ds*c(j)) * h(j)^2 = the source's, exactly. The readers then
undo a(i): norm weights become w(g(i)) / a(i), and the input columns of a copied unit are
divided by c(i) so the copies sum back to the original column.

Attention heads are copied whole (head_dim and RoPE untouched) and the FFN has its own map
shared by gate and up. AKI: the rows of *new* units (later copies) come from the next layer up
instead of the same layer; the last layer uses itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from align.plumbing.errors import UserError


@dataclass
class UnitMap:
    """Target unit -> source unit, with copy counts and which target units are later copies."""

    index: torch.Tensor  # long [n_target]
    counts: torch.Tensor  # float64 [n_target]: how many target units share this unit's source
    new: torch.Tensor  # bool [n_target]: not the first occurrence of its source unit

    @classmethod
    def from_index(cls, index: torch.Tensor, n_source: int) -> UnitMap:
        index = index.long()
        missing = set(range(n_source)) - set(index.tolist())
        assert not missing, f"source units {sorted(missing)} not copied"
        counts = torch.bincount(index, minlength=n_source).double()[index]
        seen: set[int] = set()
        new = []
        for j in index.tolist():
            new.append(j in seen)
            seen.add(j)
        return cls(index, counts, torch.tensor(new, dtype=torch.bool))

    def rows(self, block: int) -> UnitMap:
        """Expand a map over heads to a map over their `block` rows (head_dim each)."""
        offsets = torch.arange(block)
        index = (self.index[:, None] * block + offsets).reshape(-1)
        return UnitMap(index, self.counts.repeat_interleave(block), self.new.repeat_interleave(block))


def random_map(n_source: int, n_target: int, gen: torch.Generator) -> UnitMap:
    """bert2BERT's map: identity for the first n_source units, random source units for the rest."""
    extra = torch.randint(0, n_source, (n_target - n_source,), generator=gen)
    return UnitMap.from_index(torch.cat([torch.arange(n_source), extra]), n_source)


def head_maps(heads_s: int, kv_s: int, heads_t: int, kv_t: int, gen: torch.Generator) -> tuple[UnitMap, UnitMap]:
    """Maps over query heads and kv heads that respect grouped-query attention.

    Each target kv group copies one source kv group, and every query head in it copies a query
    head of that same source group, so a copied query head still attends with its own keys.
    Every source group gets ceil(Gs/Gt) target groups so that all its query heads are covered.
    """
    group_s, group_t = heads_s // kv_s, heads_t // kv_t
    per_source = math.ceil(group_s / group_t)
    if kv_s * per_source > kv_t:
        raise UserError(f"cannot copy {heads_s} heads in {kv_s} kv groups into {heads_t} heads in {kv_t} kv groups: "
                        f"need at least {kv_s * per_source} target kv heads")
    extra = torch.randint(0, kv_s, (kv_t - kv_s * per_source,), generator=gen).tolist()
    kv_index = [j for j in range(kv_s) for _ in range(per_source)] + extra
    q_index = [0] * heads_t
    for j in range(kv_s):
        slots = [t * group_t + s for t, src in enumerate(kv_index) if src == j for s in range(group_t)]
        for n, slot in enumerate(slots):
            within = n if n < group_s else int(torch.randint(0, group_s, (1,), generator=gen))
            q_index[slot] = j * group_s + within
    return (UnitMap.from_index(torch.tensor(q_index), heads_s),
            UnitMap.from_index(torch.tensor(kv_index), kv_s))


@dataclass
class WidthPlan:
    hidden: UnitMap
    ffn: UnitMap
    q_heads: UnitMap
    kv_heads: UnitMap
    head_dim: int
    hidden_source: int
    hidden_target: int

    @property
    def scale(self) -> torch.Tensor:
        """a(i) = sqrt(Dt / (Ds * c(i))): the residual stream's scale on each target unit."""
        return torch.sqrt(self.hidden_target / (self.hidden_source * self.hidden.counts))


def plan_width(src: dict, tgt: dict, seed: int) -> WidthPlan:
    """All unit maps for one growth, drawn from `seed` in a fixed order (tests re-draw them)."""
    gen = torch.Generator().manual_seed(seed)
    hidden = random_map(src["hidden_size"], tgt["hidden_size"], gen)
    ffn = random_map(src["intermediate_size"], tgt["intermediate_size"], gen)
    q_heads, kv_heads = head_maps(src["num_attention_heads"], src["num_key_value_heads"],
                                  tgt["num_attention_heads"], tgt["num_key_value_heads"], gen)
    return WidthPlan(hidden, ffn, q_heads, kv_heads, src["head_dim"], src["hidden_size"], tgt["hidden_size"])


# What each per-layer tensor's output rows and input columns are, by name suffix.
# Output kinds: q / kv / ffn (plain row copies), writer (residual writer: rows scaled by a),
# norm (w / a), post_norm (Gemma2's norm on a residual writer's output: plain copy).
# Input kinds: hidden / q / ffn (columns copied and divided by the copy count).
LAYER_RULES = {
    "self_attn.q_proj.weight": ("q", "hidden"), "self_attn.q_proj.bias": ("q", None),
    "self_attn.k_proj.weight": ("kv", "hidden"), "self_attn.k_proj.bias": ("kv", None),
    "self_attn.v_proj.weight": ("kv", "hidden"), "self_attn.v_proj.bias": ("kv", None),
    "self_attn.o_proj.weight": ("writer", "q"), "self_attn.o_proj.bias": ("writer", None),
    "mlp.gate_proj.weight": ("ffn", "hidden"), "mlp.gate_proj.bias": ("ffn", None),
    "mlp.up_proj.weight": ("ffn", "hidden"), "mlp.up_proj.bias": ("ffn", None),
    "mlp.down_proj.weight": ("writer", "ffn"), "mlp.down_proj.bias": ("writer", None),
    "input_layernorm.weight": ("norm", None),
    "post_attention_layernorm.weight": ("norm", None),
}
# Gemma2 normalises the attention and MLP outputs before they reach the residual stream.
SANDWICH_RULES = dict(LAYER_RULES, **{
    "post_attention_layernorm.weight": ("post_norm", None),
    "pre_feedforward_layernorm.weight": ("norm", None),
    "post_feedforward_layernorm.weight": ("post_norm", None),
})


class WidthExpander:
    """Applies a WidthPlan to tensors; all arithmetic in float64."""

    def __init__(self, plan: WidthPlan, *, offset_norm: bool = False, noise: float = 0.0,
                 gen: torch.Generator | None = None):
        self.plan = plan
        self.offset_norm = offset_norm  # Gemma: norms multiply by (1 + w)
        self.noise = noise
        self.gen = gen
        hd = plan.head_dim
        self.out_maps = {"q": plan.q_heads.rows(hd), "kv": plan.kv_heads.rows(hd), "ffn": plan.ffn,
                         "writer": plan.hidden, "norm": plan.hidden, "post_norm": plan.hidden}
        self.in_maps = {"hidden": plan.hidden, "q": plan.q_heads.rows(hd), "ffn": plan.ffn}

    def norm(self, w: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
        """A norm weight whose effective gain is the source gain (of unit g(i)) times factor."""
        w = w[self.plan.hidden.index].double()
        return (1 + w) * factor - 1 if self.offset_norm else w * factor

    def tensor(self, t: torch.Tensor, out_kind: str, in_kind: str | None,
               upper: torch.Tensor | None = None) -> torch.Tensor:
        """Widen one tensor; with `upper` (AKI) the rows of new units come from that tensor instead."""
        out_map = self.out_maps[out_kind]
        rows = t.index_select(0, out_map.index)
        if upper is not None:
            new = out_map.new.reshape(-1, *([1] * (t.dim() - 1)))
            rows = torch.where(new, upper.index_select(0, out_map.index), rows)
        rows = rows.double()  # gathers are exact; the arithmetic below is float64
        if out_kind == "norm":
            rows = (1 + rows) / self.plan.scale - 1 if self.offset_norm else rows / self.plan.scale
        elif out_kind == "writer":
            rows = rows * self.plan.scale.reshape(-1, *([1] * (rows.dim() - 1)))
        if in_kind is not None:
            rows = self.fan_out(rows, self.in_maps[in_kind])
        return rows

    def fan_out(self, w: torch.Tensor, unit_map: UnitMap) -> torch.Tensor:
        """Copy input columns, divide by copy counts; add zero-sum noise across the copies.

        The copies see identical inputs, so only the sum of their columns matters: noise whose
        sum over the copies of one source unit is zero keeps the function exact.
        """
        std = float(w.std()) if self.noise > 0 and w.numel() > 1 else 0.0
        w = w.index_select(1, unit_map.index).double().div_(unit_map.counts)
        if std > 0:
            eps = torch.randn(w.shape, generator=self.gen, dtype=torch.float64) * (self.noise * std)
            n_source = int(unit_map.index.max()) + 1
            sums = torch.zeros(w.shape[0], n_source, dtype=torch.float64).index_add_(1, unit_map.index, eps)
            counts = torch.bincount(unit_map.index, minlength=n_source).double()
            eps = eps - (sums / counts)[:, unit_map.index]
            w = w + eps
        return w

    def layer(self, tensors: dict[str, torch.Tensor], upper: dict[str, torch.Tensor] | None,
              rules: dict[str, tuple[str, str | None]]) -> dict[str, torch.Tensor]:
        """Widen one layer. With `upper` (AKI), new units' rows come from the layer above."""
        return {name: self.tensor(t, *rules[name], upper=None if upper is None else upper[name])
                for name, t in tensors.items()}
