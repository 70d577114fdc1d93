"""Compute estimates for `align series --dry-run`, from config.json files and recipes only (no weights).

Training: 6·N·D (forward + backward), DPO adds 2·N·D for the reference model's forward pass.
N comes from the checkpoint's config (grown entries: the source config with the growth spec's
fields); D from the series' `tokens:` if given, else max_steps x global batch x max_length, an
upper bound (real sequences are shorter unless packed).
"""

from __future__ import annotations

from align.plumbing.accounting import count_config_parameters, training_flops
from align.plumbing.files import read_yaml_mapping
from align.series.configs import entry_config
from align.series.spec import Entry, Series

EFFECTIVE_FLOPS = 400e12  # one H100 at ~40% of its dense bf16 peak: a planning number, not a promise
def _flat(recipe: dict) -> dict:
    """Recipe keys at top level or one level down (sections), later sections not overriding earlier keys."""
    flat = {k: v for k, v in recipe.items() if not isinstance(v, dict)}
    for v in recipe.values():
        if isinstance(v, dict):
            for k, x in v.items():
                flat.setdefault(k, x)
    return flat


def num_processes(series: Series) -> int:
    if series.train.get("launcher") == "python" or not series.train.get("accelerate_config"):
        return 1
    return int(read_yaml_mapping(series.train["accelerate_config"]).get("num_processes") or 1)


def training_tokens(series: Series, entry: Entry, stage: str) -> tuple[float | None, str]:
    block, own = getattr(series, stage), getattr(entry, stage)
    if own.get("tokens") or block.get("tokens"):
        return float(own.get("tokens") or block.get("tokens")), "given"
    r = {**_flat(read_yaml_mapping(block["recipe"])), **(block.get("overrides") or {}), **(own.get("overrides") or {})}
    steps = r.get("max_steps")
    if not isinstance(steps, int) or steps <= 0:
        return None, "unknown (no max_steps; set tokens: in the series file)"
    batch = int(r.get("per_device_train_batch_size", 8)) * int(r.get("gradient_accumulation_steps", 1))
    length = int(r.get("max_length", 1024))
    sequences = 2 if stage == "dpo" else 1  # chosen + rejected
    return float(steps * batch * num_processes(series) * length * sequences), "upper bound"


def human(x: float | None) -> str:
    return "?" if x is None else f"{x:.2e}"


def estimate_rows(series: Series, names: list[str]) -> list[str]:
    rows = []
    try:
        turns = sum(n for _, n in series.question_turns)
    except Exception:  # questions not installed: the plan is still useful
        turns = None
    max_new = series.answer.max_new_token or 1024
    total = 0.0
    for name in names:
        entry = series.entry(name)
        cfg = entry_config(series, entry)
        n = count_config_parameters(cfg)["total"] if cfg else None
        parts = [f"{name}: N={human(n)}"]
        for stage in ("sft", "dpo"):
            d, how = training_tokens(series, entry, stage)
            flops = training_flops(n, d) if n and d else None
            if flops and stage == "dpo":
                flops += 2 * n * d  # the frozen reference model's forward pass
            total += flops or 0
            parts.append(f"{stage} D={human(d)} ({how}) {human(flops)} FLOPs")
        if turns is not None:
            gen = turns * max_new
            parts.append(f"answer <= {gen} new tokens ({human(2 * n * gen if n else None)} FLOPs)")
            judge = series.judge
            calls = turns * (2 if judge.controls else 1)  # + the @mismatched control's
            text = f"judge {calls} judgments" + (" (half of them the judge check's control)"
                                                 if judge.controls else "")
            if judge.mode == "pairwise" and entry.construction != "scratch":
                text += f", {2 * turns} pairwise games vs the same-size scratch entry (if it has one)"
            parts.append(text)
        rows.append("; ".join(parts))
    from align.series.pretraining import cpt_rows

    pretraining, flops = cpt_rows(series, names)
    rows += pretraining
    total += flops
    seconds = total / EFFECTIVE_FLOPS
    when = f"{seconds / 3600:.1f} GPU-hours" if seconds >= 3600 else f"{seconds:.3g} GPU-seconds"
    rows.append(f"training total {human(total)} FLOPs ~ {when} "
                f"at {EFFECTIVE_FLOPS / 1e12:.0f} TFLOP/s effective (one H100 at ~40% utilization)")
    return rows
