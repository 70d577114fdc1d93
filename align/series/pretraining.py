"""Continued pretraining in a series: each `cpt` stage's token budget and compute, and what the report's
pretraining plot reads.

Budgets (an entry's `cpt: {tokens: ...}`):
- a number: that many tokens;
- `chinchilla2x`: the study's scratch budget, D = 40 N;
- `staged`: the study's rule for a grown model: (compute to train this size from scratch with 40 N tokens
  - compute already spent on the chain of entries it was grown from) / (6 N);
- none: the recipe's own `max_tokens` (or its steps: unknown here).
The series' top-level `cpt: {scale: f}` trains the fraction f of every rule's budget (the CPU demo).

N follows `cpt: {params: ...}`: `non_embedding` (the default: the model without its embedding and output
matrices, counted on the meta device from the entry's config), `total`, or `nominal` (the entry's size
label, 1B = 1e9: what the study's arithmetic uses; with its shapes the exact counts give other totals).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from align.plumbing.accounting import TOKENS_PER_PARAMETER, count_config_parameters, training_flops
from align.plumbing.errors import UserError
from align.plumbing.files import read_yaml_mapping
from align.series.configs import entry_config
from align.series.spec import Entry, Series
from align.series.stage_outputs import output_path

SIZE_LABEL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMBT])\s*$", re.IGNORECASE)
MULTIPLIER = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}
CURVES_FILE = "pretraining.json"


def nominal_size(label: str) -> float | None:
    """'1B' -> 1e9, '135M' -> 1.35e8; None when the label is not a size."""
    match = SIZE_LABEL.match(label)
    return float(match.group(1)) * MULTIPLIER[match.group(2).upper()] if match else None


@lru_cache(maxsize=64)
def _counts(config_json: str) -> dict[str, int]:
    return count_config_parameters(json.loads(config_json))


def parameters(series: Series, entry: Entry) -> float | None:
    """N of an entry under the series' convention; None when its config cannot be read (a hub id)."""
    convention = series.cpt.get("params", "non_embedding")
    if convention == "nominal":
        n = nominal_size(entry.size)
        if n is None:
            raise UserError(f"{series.file}: models ({entry.name}).size: {entry.size!r} is not a size such as 1B or "
                            f"135M, and cpt.params: nominal reads N from it")
        return n
    config = entry_config(series, entry)
    return None if config is None else float(_counts(json.dumps(config, sort_keys=True))[
        "total" if convention == "total" else "non_embedding"])


def grown_from(series: Series, entry: Entry) -> list[Entry]:
    """The entries `entry` was grown from, oldest first (grow links only: an init copies a shape, not weights)."""
    chain, current = [], entry
    while current.grow and series.is_entry(str(current.grow["from"])):
        current = series.entry(str(current.grow["from"]))
        chain.insert(0, current)
    return chain


def _recipe_tokens(series: Series, entry: Entry) -> int | None:
    recipe = read_yaml_mapping(recipe_of(series, entry), "cpt recipe")
    value = {**recipe, **(series.cpt.get("overrides") or {}), **(entry.cpt.get("overrides") or {})}.get("max_tokens")
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def recipe_of(series: Series, entry: Entry) -> str:
    return str(entry.cpt.get("recipe") or series.cpt["recipe"])


def scratch_flops(series: Series, n: float) -> float:
    """The study's from-scratch compute for N parameters: 6 N (40 N), times the series' scale."""
    return training_flops(n, series.cpt.get("scale", 1.0) * TOKENS_PER_PARAMETER * n)


def cpt_tokens(series: Series, entry: Entry) -> tuple[int | None, str]:
    """(tokens the entry's cpt stage trains, how they were set); None when unknown. Rules need N."""
    rule = entry.cpt.get("tokens")
    if rule is None:
        tokens = _recipe_tokens(series, entry)
        return tokens, "the recipe's max_tokens" if tokens else "unknown (set cpt.tokens in the series file)"
    if rule not in ("chinchilla2x", "staged"):
        return int(rule), "given"
    n = parameters(series, entry)
    if n is None:
        return None, f"unknown ({entry.name}'s parameter count: no config to count)"
    if rule == "chinchilla2x":
        return round(scratch_flops(series, n) / training_flops(n, 1)), "2x Chinchilla: 40 N"
    given = next((a.name for a in grown_from(series, entry) if a.path is not None), None)
    if given is not None:
        return None, f"unknown ({given} is a given checkpoint: its pretraining compute is not known here)"
    spent = ancestors_flops(series, entry)
    if spent is None:
        return None, "unknown (an ancestor's compute is unknown)"
    if spent >= scratch_flops(series, n):
        raise UserError(f"{series.file}: models ({entry.name}).cpt.tokens: staged: its ancestors already spent "
                        f"{spent:.3g} FLOPs, as much as training it from scratch ({scratch_flops(series, n):.3g}): "
                        f"give a number of tokens")
    return round((scratch_flops(series, n) - spent) / training_flops(n, 1)), "staged: (scratch - ancestors) / 6N"


def cpt_flops(series: Series, entry: Entry) -> float | None:
    """6·N·D of the entry's own cpt stage (0 without one)."""
    if entry.cpt is None:
        return 0.0
    tokens, _ = cpt_tokens(series, entry)
    n = parameters(series, entry)
    return None if tokens is None or n is None else training_flops(n, tokens)


def ancestors_flops(series: Series, entry: Entry) -> float | None:
    """Pretraining compute of the entries `entry` was grown from. A given checkpoint (`path:`) among them
    was trained elsewhere: unknown (None)."""
    total = 0.0
    for ancestor in grown_from(series, entry):
        if ancestor.path is not None:
            return None
        flops = cpt_flops(series, ancestor)
        if flops is None:
            return None
        total += flops
    return total


def cpt_rows(series: Series, names: list[str]) -> tuple[list[str], float]:
    """--dry-run lines: each cpt stage's tokens and FLOPs (and with its ancestors), the totals by construction."""
    rows, by_construction = [], {}
    for name in names:
        entry = series.entry(name)
        if entry.cpt is None:
            continue
        tokens, how = cpt_tokens(series, entry)
        n, flops, before = parameters(series, entry), cpt_flops(series, entry), ancestors_flops(series, entry)
        cumulative = None if flops is None or before is None else flops + before
        rows.append(f"{name}: cpt N={_e(n)} D={_e(tokens)} ({how}) {_e(flops)} FLOPs"
                    + (f"; with its ancestors {_e(cumulative)} FLOPs" if grown_from(series, entry) else ""))
        key = entry.construction
        by_construction[key] = None if flops is None or by_construction.get(key, 0.0) is None else (
            by_construction.get(key, 0.0) + flops)
    known = [f for f in by_construction.values() if f is not None]
    if by_construction:
        parts = ", ".join(f"{key} {zetta(f)}" for key, f in by_construction.items())
        rows.append(f"pretraining total {zetta(sum(known))} (N: {series.cpt.get('params', 'non_embedding')}); "
                    f"by construction: {parts}")
    return rows, sum(known)


def _e(x: float | None) -> str:
    return "?" if x is None else f"{x:.3g}"


def zetta(flops: float | None) -> str:
    """ZFLOPs (10^21) at the study's scale, plain FLOPs below an exaFLOP (the demo)."""
    if flops is None:
        return "?"
    return f"{flops / 1e21:.3g} ZFLOPs ({flops:.3g})" if flops >= 1e18 else f"{flops:.3g} FLOPs"


def curve_sources(series: Series) -> dict:
    """What the report's pretraining plot reads: per entry with pretraining in its chain, the cpt output
    folders of its ancestors and its own, oldest first, each with its N (judges/reporting/pretraining_plot.py)."""
    entries = {}
    for entry in series.models:
        chain = [e for e in [*grown_from(series, entry), entry] if e.cpt is not None]
        if entry.cpt is None or not chain:
            continue
        entries[entry.name] = {"size": entry.size, "construction": entry.construction, "chain": [
            {"entry": e.name, "dir": str(output_path(series, e.name, "cpt")), "params": parameters(series, e)}
            for e in chain]}
    return {"params": series.cpt.get("params", "non_embedding"), "entries": entries}


def curve_sources_path(series: Series) -> Path | None:
    """<output_dir>/pretraining.json when some entry has a cpt stage (else None)."""
    return series.output_dir / CURVES_FILE if any(e.cpt is not None for e in series.models) else None


def write_curve_sources(series: Series) -> Path | None:
    """Write curve_sources() to curve_sources_path() (when there is one)."""
    from align.plumbing.files import atomic_write_json

    path = curve_sources_path(series)
    if path is not None:
        atomic_write_json(path, curve_sources(series))
    return path


def cpt_args(series: Series, name: str, model: str, output_dir: str) -> tuple[list[str], dict]:
    """The cpt stage's `align cpt` arguments, and the recipe overrides (the series' then the entry's) that follow."""
    entry = series.entry(name)
    tokens, how = cpt_tokens(series, entry)
    if entry.cpt.get("tokens") is not None and tokens is None:
        raise UserError(f"{series.file}: models ({name}).cpt.tokens: {entry.cpt['tokens']}: {how}; "
                        f"give a number of tokens")
    args = ["cpt", "--config", recipe_of(series, entry), "--model_name_or_path", model, "--output_dir", output_dir]
    if entry.cpt.get("tokens") is not None and tokens is not None:  # else the recipe's own budget
        args += ["--max_tokens", str(tokens)]
    return args, {**(series.cpt.get("overrides") or {}), **(entry.cpt.get("overrides") or {})}
