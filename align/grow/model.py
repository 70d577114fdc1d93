"""bert2BERT growth of a Llama-family model: shapes, the grown state dict, `grow_model`.

The method itself lives in width.py (FPI/AKI, the RMSNorm fix, noise) and depth.py.
"""

from __future__ import annotations

import logging
import math
import os

from align.plumbing.errors import UserError
from align.plumbing.files import read_yaml_mapping

log = logging.getLogger("align.grow")

GROW_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")
FIXED_KEYS = ("head_dim", "vocab_size")  # allowed in a SPEC only with the source's value
# model_type -> (per-layer rules name, norms multiply by 1 + w and embeddings by sqrt(hidden))
FAMILIES = {"llama": ("plain", False), "mistral": ("plain", False), "qwen2": ("plain", False),
            "gemma": ("plain", True), "gemma2": ("sandwich", True)}


# ---------------------------------------------------------------- specs and shapes

def load_spec(path: str | os.PathLike) -> dict:
    spec = read_yaml_mapping(path, "growth spec")
    if not spec:
        raise UserError(f"{path}: expected a mapping of config fields, e.g. `hidden_size: 768`")
    return spec


def source_shape(config) -> dict:
    heads = config.num_attention_heads
    return {"hidden_size": config.hidden_size, "intermediate_size": config.intermediate_size,
            "num_hidden_layers": config.num_hidden_layers, "num_attention_heads": heads,
            "num_key_value_heads": getattr(config, "num_key_value_heads", None) or heads,
            "head_dim": getattr(config, "head_dim", None) or config.hidden_size // heads,
            "vocab_size": config.vocab_size}


def target_shape(src: dict, changes: dict, where: str) -> dict:
    """Validate SPEC `changes` against the source shape; return the full target shape."""
    for key, value in changes.items():
        if key not in GROW_KEYS + FIXED_KEYS:
            raise UserError(f"{where}: unknown key {key!r}; expected some of {', '.join(GROW_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise UserError(f"{where}: {key} must be a positive integer, got {value!r}")
    for key in FIXED_KEYS:
        if key in changes and changes[key] != src[key]:
            why = "heads are copied whole" if key == "head_dim" else "the tokenizer is kept"
            raise UserError(f"{where}: {key} {changes[key]} differs from the source's {src[key]}; {why}, "
                            f"so {key} cannot change")
    tgt = dict(src, **changes)
    for key in GROW_KEYS:
        if tgt[key] < src[key]:
            raise UserError(f"{where}: {key} {tgt[key]} is smaller than the source's {src[key]}; "
                            f"growth only widens and deepens")
    for shape, name in ((src, "source"), (tgt, "target")):
        if shape["num_attention_heads"] % shape["num_key_value_heads"]:
            raise UserError(f"{where}: {name} num_attention_heads {shape['num_attention_heads']} is not divisible "
                            f"by num_key_value_heads {shape['num_key_value_heads']}")
    if src["num_attention_heads"] * src["head_dim"] == src["hidden_size"] and \
            tgt["num_attention_heads"] * tgt["head_dim"] != tgt["hidden_size"]:
        raise UserError(f"{where}: hidden_size {tgt['hidden_size']} / num_attention_heads "
                        f"{tgt['num_attention_heads']} does not give the source's head_dim {src['head_dim']}; "
                        f"heads are copied whole, so use num_attention_heads "
                        f"{tgt['hidden_size'] / src['head_dim']:g}")
    group_s = src["num_attention_heads"] // src["num_key_value_heads"]
    group_t = tgt["num_attention_heads"] // tgt["num_key_value_heads"]
    need = src["num_key_value_heads"] * math.ceil(group_s / group_t)
    if tgt["num_key_value_heads"] < need:
        raise UserError(f"{where}: num_key_value_heads {tgt['num_key_value_heads']} cannot hold the source's "
                        f"{src['num_key_value_heads']} kv groups of {group_s} heads; need at least {need}")
    return tgt


def family_of(config) -> tuple[str, bool]:
    model_type = getattr(config, "model_type", None)
    if model_type not in FAMILIES:
        raise UserError(f"model_type {model_type!r} is not supported by align grow; "
                        f"supported: {', '.join(FAMILIES)}")
    return FAMILIES[model_type]


def target_config(config, tgt: dict, order: list[int]):
    """The source config with the new shape; per-layer settings follow the layer each copies."""
    d = config.to_dict()
    d.update({k: tgt[k] for k in GROW_KEYS + ("head_dim",)})
    if isinstance(d.get("layer_types"), list):
        d["layer_types"] = [d["layer_types"][i] for i in order]
    return type(config).from_dict(d)


# ---------------------------------------------------------------- the growth

def grow_state_dict(state: dict, src: dict, tgt: dict, *, family: tuple[str, bool], tied: bool,
                    method: str, depth: str, noise: float, seed: int, dtype=None) -> dict:
    """Grown tensors for every key of the target's state dict.

    Arithmetic is float64; each tensor is cast to `dtype` (default: keep float64) as soon as it is
    done, so peak memory stays near one float64 layer plus the target in its own dtype.
    """
    import torch
    from tqdm.auto import tqdm

    from align.grow.depth import deepen
    from align.grow.width import LAYER_RULES, SANDWICH_RULES, WidthExpander, plan_width

    dtype = dtype or torch.float64
    rules = SANDWICH_RULES if family[0] == "sandwich" else LAYER_RULES
    offset_norm = family[1]
    plan = plan_width(src, tgt, seed)
    widen = WidthExpander(plan, offset_norm=offset_norm, noise=noise,
                          gen=torch.Generator().manual_seed(seed + 1))
    layers: list[dict] = [{} for _ in range(src["num_hidden_layers"])]
    top: dict = {}
    for key, value in state.items():
        parts = key.split(".")
        if key.startswith("model.layers.") and parts[2].isdigit():
            name = ".".join(parts[3:])
            if name not in rules:
                raise UserError(f"tensor {key} has no growth rule (unsupported variant of this model family)")
            layers[int(parts[2])][name] = value
        elif key in ("model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"):
            top[key] = value
        else:
            raise UserError(f"tensor {key} has no growth rule (unsupported variant of this model family)")
    ds, dt = src["hidden_size"], tgt["hidden_size"]
    # Gemma multiplies embeddings by sqrt(hidden_size): undo the target's larger factor.
    embed_factor = math.sqrt(ds / dt) if offset_norm else 1.0
    # The embedding writes the residual stream: columns copied and scaled like any writer's rows.
    embed = top["model.embed_tokens.weight"].index_select(1, plan.hidden.index).double()
    out = {"model.embed_tokens.weight": embed * (plan.scale * embed_factor)}
    if tied:
        # The output head is the scaled embedding: the final norm gain absorbs sum_copies a^2 = Dt/Ds
        # (and Gemma's embedding factor).
        out["model.norm.weight"] = widen.norm(top["model.norm.weight"], ds / dt / embed_factor)
        out["lm_head.weight"] = out["model.embed_tokens.weight"]
    else:
        out["model.norm.weight"] = widen.tensor(top["model.norm.weight"], "norm", None)
        out["lm_head.weight"] = widen.fan_out(top["lm_head.weight"], plan.hidden)
    wide = []
    for i in tqdm(range(len(layers)), desc="widen layers", disable=len(layers) < 8):
        upper = layers[i + 1] if method == "aki" and i + 1 < len(layers) else None
        wide.append({k: v.to(dtype) for k, v in widen.layer(layers[i], upper, rules).items()})
    out = {k: v.to(dtype) for k, v in out.items()}
    for i, layer in enumerate(deepen(wide, tgt["num_hidden_layers"], depth)):
        out.update({f"model.layers.{i}.{name}": t for name, t in layer.items()})
    return out


def grow_model(source_model, changes: dict, method: str = "aki", depth: str = "stack", noise: float = 0.0,
               seed: int = 0, where: str = "spec"):
    """A new, larger model grown from `source_model` (same dtype, attention implementation, tokenizer ids).

    `changes` holds the config fields that change (GROW_KEYS). FPI with depth `zero` preserves the
    source's function exactly; AKI and stacking do not (they break symmetry / add computation).
    """
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    from align.grow.depth import DEPTH_MODES, layer_order

    if method not in ("fpi", "aki"):
        raise UserError(f"--method must be fpi or aki, got {method!r}")
    if depth not in DEPTH_MODES:
        raise UserError(f"--depth must be one of {', '.join(DEPTH_MODES)}, got {depth!r}")
    if not noise >= 0:
        raise UserError(f"--noise must be >= 0, got {noise!r}")
    config = source_model.config
    family = family_of(config)
    src = source_shape(config)
    tgt = target_shape(src, changes, where)
    tied = source_model.get_output_embeddings().weight is source_model.get_input_embeddings().weight
    order = layer_order(src["num_hidden_layers"], tgt["num_hidden_layers"], depth)
    dtype = source_model.dtype
    log.info("growing %s: hidden %d->%d, ffn %d->%d, heads %d/%d->%d/%d, layers %d->%d (%s, depth %s)",
             config.model_type, src["hidden_size"], tgt["hidden_size"], src["intermediate_size"],
             tgt["intermediate_size"], src["num_attention_heads"], src["num_key_value_heads"],
             tgt["num_attention_heads"], tgt["num_key_value_heads"], src["num_hidden_layers"],
             tgt["num_hidden_layers"], method, depth)
    with torch.no_grad():
        state = grow_state_dict(source_model.state_dict(), src, tgt, family=family, tied=tied, method=method,
                                depth=depth, noise=noise, seed=seed, dtype=dtype)
        new_config = target_config(config, tgt, order)
        with no_init_weights():  # every parameter is loaded below; random init is wasted time
            model = AutoModelForCausalLM.from_config(new_config, dtype=dtype,
                                                     attn_implementation=config._attn_implementation)
        expected = set(model.state_dict())
        # Stacked copies share tensors in `state`; the model's parameters must not.
        loaded, seen = {}, set()
        for key, value in state.items():
            if key in expected:
                if id(value) in seen or not value.is_contiguous():
                    value = value.clone(memory_format=torch.contiguous_format)
                seen.add(id(value))
                loaded[key] = value
        model.load_state_dict(loaded, strict=True, assign=True)
        if tied:
            model.tie_weights()
    model.generation_config = source_model.generation_config
    model.growth_layer_order = order  # for run cards and tests
    return model.eval()
