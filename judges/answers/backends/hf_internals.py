"""Every transformers and torch internal the `align` answer engine touches, and the probe that says whether
they are still the ones it was written and tested against.

The engine (hf_rows.py, hf_attention.py, hf_linear.py) stands in for transformers' cache layers, registers
wrappers in its attention and mask registries, calls a model file's `eager_attention_forward`, reads
`config._attn_implementation`, applies the logits warpers `generate` applies, and packs weights with two
private oneDNN ops of torch. None of that is a stable API, so it is all reached through this module.

`version_problem()`, `library_problem()` and `model_problem(model)` say, in one line, why the engine should
not run here: transformers outside TESTED_TRANSFORMERS, or an internal missing or with another signature than
expected. hf.py's `auto` then runs the plain path (`model.generate`) and logs that line. The oneDNN ops have
their own probe (hf_linear.packed_ops_problem): without them the engine keeps plain linear layers.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from importlib.metadata import PackageNotFoundError, version

import torch
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

# The transformers versions the engine's tests (tests/judges/test_answer*.py) passed on: 5.23.0, where it was
# written, to 5.25.0, installed now (README "Versions", requirements.lock). Widen it after they pass on another.
TESTED_TRANSFORMERS = SpecifierSet(">=5.23.0,<5.26")

try:  # a transformers without one of these fails the probe below instead of failing the import
    from transformers import AttentionInterface, DynamicCache
    from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        MinPLogitsWarper,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask, sdpa_mask
except ImportError:
    pass

# Used by the engine's modules; every one of them is in USED too.
__all__ = ["AttentionInterface", "DynamicCache", "DynamicLayer", "DynamicSlidingWindowLayer", "LogitsProcessorList",
           "MinPLogitsWarper", "TemperatureLogitsWarper", "TopKLogitsWarper", "TopPLogitsWarper",
           "sdpa_attention_forward", "ALL_MASK_ATTENTION_FUNCTIONS", "eager_mask", "sdpa_mask",
           "version_problem", "library_problem", "model_problem",
           "attention_implementation", "model_eager_attention", "register_attention", "reorder_linear_weight",
           "packed_linear"]

# (module, name) of every internal imported above, looked up again by the probe.
USED = [("transformers", "AttentionInterface"), ("transformers.cache_utils", "DynamicCache"),
        ("transformers.cache_utils", "DynamicLayer"), ("transformers.cache_utils", "DynamicSlidingWindowLayer"),
        *(("transformers.generation.logits_process", name) for name in (
            "LogitsProcessorList", "MinPLogitsWarper", "TemperatureLogitsWarper", "TopKLogitsWarper",
            "TopPLogitsWarper")),
        ("transformers.integrations.sdpa_attention", "sdpa_attention_forward"),
        *(("transformers.masking_utils", name) for name in ("ALL_MASK_ATTENTION_FUNCTIONS", "eager_mask",
                                                              "sdpa_mask"))]

# Parameters each function must start with (the engine calls them, or is called in their place, this way).
ATTENTION_PARAMETERS = ["module", "query", "key", "value", "attention_mask"]
# What the engine hands a model's forward (the cache as `cache`: transformers 5.25's name for it).
FORWARD_PARAMETERS = {"input_ids", "attention_mask", "position_ids", "cache", "use_cache", "logits_to_keep"}


def installed_transformers() -> str:
    try:
        return version("transformers")
    except PackageNotFoundError:
        return "unknown"


def version_problem() -> str | None:
    installed = installed_transformers()
    try:
        tested = Version(installed) in TESTED_TRANSFORMERS
    except InvalidVersion:
        tested = False
    return None if tested else (f"transformers {installed} is outside the versions the align engine was tested "
                                f"on ({TESTED_TRANSFORMERS})")


def starts_with(function, names: list[str]) -> bool:
    try:
        return list(inspect.signature(function).parameters)[:len(names)] == names
    except (TypeError, ValueError):
        return False


def library_problem() -> str | None:
    """The first internal (not tied to a model) that is missing or changed, or None."""
    for module, name in USED:
        try:
            found = hasattr(importlib.import_module(module), name)
        except ImportError:
            found = False
        if not found:
            return f"{module}.{name} is missing"
    if not starts_with(DynamicLayer.update, ["self", "key_states", "value_states"]):
        return "DynamicLayer.update has another signature than (key_states, value_states, ...)"
    if not starts_with(DynamicLayer.get_mask_sizes, ["self", "query_length"]):
        return "DynamicLayer.get_mask_sizes has another signature than (query_length)"
    if "config" not in inspect.signature(DynamicCache).parameters:
        return "DynamicCache takes no config"
    if not starts_with(sdpa_attention_forward, ATTENTION_PARAMETERS):
        return f"sdpa_attention_forward's parameters do not start with {', '.join(ATTENTION_PARAMETERS)}"
    for registry in (AttentionInterface, ALL_MASK_ATTENTION_FUNCTIONS):
        if not callable(getattr(registry, "register", None)):
            return f"{getattr(registry, '__name__', type(registry).__name__)} has no register"
    kv = torch.arange(2.0).reshape(1, 1, 2, 1)
    layers = getattr(DynamicCache([(kv, kv)]), "layers", None)
    kept = getattr(layers[0], "keys", None) if layers else None
    if type(layers[0] if layers else None) is not DynamicLayer or kept is None or not torch.equal(kept, kv):
        return "DynamicCache no longer keeps given keys and values in DynamicLayer.keys/.values"
    return None


def model_problem(model) -> str | None:
    """The first internal this model's code lacks, or None."""
    missing = FORWARD_PARAMETERS - set(inspect.signature(model.forward).parameters)
    if missing:
        return f"{type(model).__name__}.forward takes no {', '.join(sorted(missing))}"
    if not isinstance(attention_implementation(model), str) or not callable(getattr(model, "set_attn_implementation",
                                                                                   None)):
        return "the model has no config._attn_implementation or set_attn_implementation"
    if attention_implementation(model) == "eager" and not starts_with(
            getattr(sys.modules[type(model).__module__], "eager_attention_forward", None), ATTENTION_PARAMETERS):
        return f"{type(model).__module__} has no eager_attention_forward({', '.join(ATTENTION_PARAMETERS)}, ...)"
    return None


def attention_implementation(model) -> str | None:
    return getattr(model.config, "_attn_implementation", None)


def model_eager_attention(module):
    """The eager attention function of the module's own model file (Gemma 2's applies softcapping)."""
    return sys.modules[type(module).__module__].eager_attention_forward


def register_attention(name: str, function, like: str) -> None:
    """Register `function` as attention implementation `name`, masked the way implementation `like` is."""
    AttentionInterface.register(name, function)
    ALL_MASK_ATTENTION_FUNCTIONS.register(name, {"sdpa": sdpa_mask, "eager": eager_mask}[like])


def reorder_linear_weight(weight: torch.Tensor, rows_hint: int) -> torch.Tensor:
    """torch's private oneDNN op: the weight packed for products with about `rows_hint` rows."""
    return torch.ops.mkldnn._reorder_linear_weight(weight, rows_hint)


def packed_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """torch's private oneDNN op: x (2-D) times a weight packed by `reorder_linear_weight`, plus bias."""
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
