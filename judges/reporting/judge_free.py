"""Evidence without a judge in the report: the base models' lm-eval measures (the study's Table 1) and the
held-out measures after post-training, each with its paired difference from the same-size scratch model.

Inputs are the files `align eval` (base_eval.json) and `align heldout` (heldout.json) write, named per model
on the report's command line (`--base-eval NAME=DIR`, `--heldout NAME=DIR`). Their per-item values are keyed
by ids that are the same for every model (lm-eval's doc ids, the data's row ids), so a difference is paired:
each bootstrap resample draws the same documents or questions for both models. A corpus-level measure
(perplexity, token-weighted loss) is recomputed on each resample from its sums (a ratio estimator); an
accuracy or margin is a mean over items.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from align.plumbing.errors import UserError
from judges.stats import finite_or_none, paired_difference, paired_ratio_difference

# lm-eval metric -> how its corpus value comes from per-document (log-likelihood, count) pairs
RATIO_METRICS = {
    "word_perplexity": ("words", lambda x: np.exp(-x)),
    "byte_perplexity": ("bytes", lambda x: np.exp(-x)),
    "bits_per_byte": ("bytes", lambda x: -x / math.log(2)),
}
# Base-model columns, in the study's Table 1 order: perplexities, then accuracies.
TABLE1_METRICS = ("word_perplexity", "perplexity", "acc", "acc_norm")
# Held-out measures: how each is made from a row's values (ratio: (numerator, denominator) per row).
HELDOUT_MEASURES = {
    "loss": ("ratio", lambda r: (r["nll"], r["tokens"])),
    "preference_accuracy": ("mean", lambda r: r["correct"]),  # TRL's rewards/accuracies: a tie counts as wrong
    "preference_tie_share": ("mean", lambda r: r["tie"]),
    "preference_accuracy_ties_half": ("mean", lambda r: r["correct"] + r["tie"] / 2),
    "reward_margin": ("mean", lambda r: r["margin"]),
}
HELDOUT_LABELS = {"loss": "Held-out loss", "preference_accuracy": "Pref. acc. (TRL: tie = wrong)",
                  "preference_tie_share": "Pref. ties", "preference_accuracy_ties_half": "Pref. acc. (tie = ½)",
                  "reward_margin": "Reward margin"}
# Shown without a Δ column in the tables (the Δ stays in table.csv and summary.json): context for the accuracies.
HELDOUT_VALUE_ONLY = {"preference_tie_share"}


@dataclass
class JudgeFree:
    base: dict[str, dict] = field(default_factory=dict)      # model -> base_eval.json
    heldout: dict[str, dict] = field(default_factory=dict)   # model -> {measure: {value, n}, per-row values}
    baselines: dict[str, str] = field(default_factory=dict)  # model -> its same-size scratch model
    deltas: dict[str, dict] = field(default_factory=dict)    # model -> measure -> stats.PairedResult
    n_boot: int = 0                                          # bootstrap resamples behind the CIs

    def __bool__(self) -> bool:
        return bool(self.base or self.heldout)


# ---------------------------------------------------------------- reading

def _named_dir(value: str, flag: str) -> tuple[str, Path]:
    """NAME=DIR; a model name may itself hold '=' (any text can be a model id): the split is at the first '='
    after which an existing folder is named."""
    cuts = [i for i, ch in enumerate(value) if ch == "=" and 0 < i < len(value) - 1]
    if not cuts:
        raise UserError(f"{flag} {value!r}: expected NAME=DIR (the model's name in the table, its output folder)")
    cut = next((i for i in cuts if Path(value[i + 1:]).is_dir()), cuts[0])
    return value[:cut], Path(value[cut + 1:])


def _read_json(path: Path, flag: str, keys: tuple[str, ...]) -> dict:
    if not path.is_file():
        raise UserError(f"{flag}: {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{flag}: {path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or any(not isinstance(data.get(k), dict) for k in keys):
        raise UserError(f"{flag}: {path}: expected an object with {' and '.join(keys)} mappings")
    return data


def load_base_evals(values: list[str]) -> dict[str, dict]:
    out = {}
    for value in values:
        name, folder = _named_dir(value, "--base-eval")
        if name in out:
            raise UserError(f"--base-eval: model {name!r} given twice")
        out[name] = _read_json(folder / "base_eval.json", "--base-eval", ("measures", "items"))
    return out


def load_heldouts(values: list[str]) -> dict[str, dict]:
    """model -> {"measures": {...}, "rows": {measure: {row id: value}}}, one model's sft and dpo files merged."""
    out: dict[str, dict] = {}
    for value in values:
        name, folder = _named_dir(value, "--heldout")
        path = folder / "heldout.json"
        data = _read_json(path, "--heldout", ("measures", "rows"))
        mine = out.setdefault(name, {"measures": {}, "rows": {}})
        for measure, spec in data["measures"].items():
            if measure in mine["measures"]:
                raise UserError(f"--heldout: {path}: model {name!r} has measure {measure!r} twice")
            mine["measures"][measure] = spec
            if measure in HELDOUT_MEASURES:
                try:
                    mine["rows"][measure] = {rid: HELDOUT_MEASURES[measure][1](row)
                                             for rid, row in data["rows"].items()}
                except (KeyError, TypeError):
                    raise UserError(f"--heldout: {path}: rows lack the values of {measure!r}") from None
    return out


# ---------------------------------------------------------------- numbers

def base_columns(base: dict[str, dict]) -> list[str]:
    """The Table 1 measures any model has, perplexities first, in task order."""
    names = {m for data in base.values() for m in data["measures"]}
    order = {metric: i for i, metric in enumerate(TABLE1_METRICS)}
    chosen = [m for m in names if m.rpartition("/")[2] in order]
    return sorted(chosen, key=lambda m: (order[m.rpartition("/")[2]] > 1, m.rpartition("/")[0],
                                         order[m.rpartition("/")[2]]))


def _base_delta(measure: str, model: dict, baseline: dict, n_boot: int, seed: int):
    metric = measure.rpartition("/")[2]
    mine, theirs = model["items"].get(measure), baseline["items"].get(measure)
    if not mine or not theirs:
        return None
    if metric in RATIO_METRICS:
        unit, transform = RATIO_METRICS[metric]

        def pairs(items: dict) -> dict:
            return {k: (v["loglikelihood"], v[unit]) for k, v in items.items() if isinstance(v, dict)}
        return paired_ratio_difference(pairs(mine), pairs(theirs), transform, n_boot=n_boot, seed=seed)
    if metric == "perplexity":  # lambada: exp(-mean log-likelihood), a ratio over a count of 1 per item
        return paired_ratio_difference({k: (v, 1.0) for k, v in mine.items()},
                                       {k: (v, 1.0) for k, v in theirs.items()}, lambda x: np.exp(-x),
                                       n_boot=n_boot, seed=seed)
    return paired_difference(mine, theirs, n_boot=n_boot, seed=seed)


def _heldout_delta(measure: str, model: dict, baseline: dict, n_boot: int, seed: int):
    mine, theirs = model["rows"].get(measure), baseline["rows"].get(measure)
    if not mine or not theirs:
        return None
    if HELDOUT_MEASURES[measure][0] == "ratio":
        return paired_ratio_difference(mine, theirs, lambda x: x, n_boot=n_boot, seed=seed)
    return paired_difference(mine, theirs, n_boot=n_boot, seed=seed)


def compute(free: JudgeFree, baselines: dict[str, str], n_boot: int, seed: int, min_items: int) -> None:
    """Each model with a same-size scratch baseline: its paired difference on every measure both have."""
    free.n_boot = n_boot
    free.baselines = {m: b for m, b in baselines.items() if m in free.base or m in free.heldout}
    for model, base in free.baselines.items():
        deltas = {}
        if model in free.base and base in free.base:
            for measure in base_columns({model: free.base[model]}):
                deltas[measure] = _base_delta(measure, free.base[model], free.base[base], n_boot, seed)
        if model in free.heldout and base in free.heldout:
            for measure in HELDOUT_MEASURES:
                deltas[measure] = _heldout_delta(measure, free.heldout[model], free.heldout[base], n_boot, seed)
        deltas = {k: v for k, v in deltas.items() if v is not None and v.n}
        for result in deltas.values():
            if result.n < min_items:  # as for MT-Bench: too few items give no 95% interval
                result.ci_low = result.ci_high = math.nan
        free.deltas[model] = deltas


def separates(result) -> bool:
    return not math.isnan(result.ci_low) and (result.ci_low > 0 or result.ci_high < 0)


# ---------------------------------------------------------------- summary.json and the warning

def summary_parts(free: JudgeFree) -> dict:
    return {
        "base_eval": {model: {m: {k: finite_or_none(v.get(k)) for k in ("value", "stderr", "n")}
                              for m, v in data["measures"].items()} for model, data in free.base.items()},
        "heldout": {model: {m: {"value": finite_or_none(v.get("value")), "n": v.get("n")}
                            for m, v in data["measures"].items()} for model, data in free.heldout.items()},
        "judge_free_delta": {model: {m: {"baseline": free.baselines[model], "delta": finite_or_none(r.mean),
                                         "ci": [finite_or_none(r.ci_low), finite_or_none(r.ci_high)], "n": r.n}
                                     for m, r in deltas.items()} for model, deltas in free.deltas.items()},
    }


def warning_with_evidence(warning: str | None, free: JudgeFree) -> str | None:
    """The judge-check warning, plus which judge-free measures do separate the models (the evidence)."""
    found = [f"{model} vs {free.baselines[model]} on {', '.join(sorted(m for m, r in deltas.items() if separates(r)))}"
             for model, deltas in free.deltas.items() if any(separates(r) for r in deltas.values())]
    if not warning or not found:
        return warning
    return (warning.removesuffix(".**") + ". The judge-free measures do separate them (95% CI of the paired "
            f"difference excludes 0): {'; '.join(found)}: these measures are evidence, the judge's scores are not.**")
