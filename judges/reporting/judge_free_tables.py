"""The judge-free measures as table cells: the Base models table (the study's Table 1 form) with its
Δ-vs-scratch table, and the held-out columns the MT-Bench table gains. Plain strings and numbers; the
Markdown, CSV, LaTeX and HTML writers place them (every HTML cell is escaped there)."""

from __future__ import annotations

import math

from judges.reporting.judge_free import HELDOUT_LABELS, HELDOUT_MEASURES, HELDOUT_VALUE_ONLY, JudgeFree, base_columns
from judges.reporting.tables import csv_number

PERCENT_METRICS = ("acc", "acc_norm")


def _scale(measure: str) -> float:
    """Accuracies in percent, as the study's Table 1 prints them."""
    return 100.0 if measure.rpartition("/")[2] in PERCENT_METRICS else 1.0


def num(x, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    sign = "+" if signed else ""
    small = x != 0 and abs(x) < 0.01  # a reward margin of 1e-4 is not "0.00"
    return f"{x:{sign}.3g}" if abs(x) >= 1e5 or small else f"{x:{sign}.2f}"


def base_label(measure: str) -> str:
    task, _, metric = measure.rpartition("/")
    return f"{task} {'PPL' if metric in ('word_perplexity', 'perplexity') else metric}"


def delta_cell(result, scale: float = 1.0) -> str:
    """'+1.23 [0.45, 2.01] (n=80)'; no interval when too few items gave none."""
    if result is None:
        return ""
    ci = "no CI" if math.isnan(result.ci_low) else \
        f"[{num(result.ci_low * scale, True)}, {num(result.ci_high * scale, True)}]"
    return f"{num(result.mean * scale, True)} {ci} (n={result.n})"


def base_table(free: JudgeFree, rows) -> tuple[list[str], list[list[str]]]:
    """Header and one row per report row (size, construction, model, then each Table 1 measure)."""
    columns = base_columns(free.base)
    body = []
    for row in rows:
        measures = free.base.get(row.name, {}).get("measures", {})
        body.append([row.size, row.construction, row.name] +
                    [num(_value(measures.get(m)) * _scale(m)) if measures.get(m) else "–" for m in columns])
    return ["Size", "Construction", "Model", *map(base_label, columns)], body


def _value(spec: dict | None) -> float:
    value = (spec or {}).get("value")
    return math.nan if value is None else float(value)


def base_delta_table(free: JudgeFree) -> tuple[list[str], list[list[str]]]:
    columns = base_columns(free.base)
    body = [[model, free.baselines[model]] + [delta_cell(free.deltas[model].get(m), _scale(m)) for m in columns]
            for model in free.deltas if model in free.base]
    return ["Model", "vs scratch", *(f"Δ {base_label(m)}" for m in columns)], body


def heldout_measures(free: JudgeFree) -> list[str]:
    return [m for m in HELDOUT_MEASURES if any(m in d["measures"] for d in free.heldout.values())]


def heldout_columns(free: JudgeFree) -> tuple[list[str], dict[str, list[str]]]:
    """Columns the MT-Bench table gains: each held-out measure and its Δ vs scratch with CI."""
    measures = heldout_measures(free)

    def with_delta(m: str) -> bool:
        return m not in HELDOUT_VALUE_ONLY

    header = [h for m in measures
              for h in (HELDOUT_LABELS[m], *([f"Δ {HELDOUT_LABELS[m]} [95% CI]"] if with_delta(m) else []))]
    cells = {}
    for model, data in free.heldout.items():
        deltas = free.deltas.get(model, {})
        cells[model] = [c for m in measures for c in (num(_value(data["measures"].get(m))),
                                                       *([delta_cell(deltas.get(m))] if with_delta(m) else []))]
    return header, cells


def csv_columns(free: JudgeFree) -> tuple[list[str], dict[str, list]]:
    """table.csv's extra columns: every base and held-out measure, its Δ vs scratch and the CI bounds."""
    base, held = base_columns(free.base), heldout_measures(free)
    header = [f"{prefix}{m}{suffix}" for prefix, names in (("base:", base), ("heldout:", held)) for m in names
              for suffix in ("", ":delta", ":delta_ci_low", ":delta_ci_high", ":delta_n")]
    models = set(free.base) | set(free.heldout)
    values = {}
    for model in models:
        out = []
        for source, names in ((free.base, base), (free.heldout, held)):
            for m in names:
                d = free.deltas.get(model, {}).get(m)
                out += [csv_number(_value(source.get(model, {}).get("measures", {}).get(m))),
                        *(csv_number(x) for x in ((d.mean, d.ci_low, d.ci_high) if d else (None,) * 3)),
                        d.n if d else ""]
        values[model] = out
    return header, values


def base_note(n_boot: int, min_items: int) -> str:
    return ("Base models: each entry's base checkpoint before SFT, measured by lm-evaluation-harness (`align eval`): "
            "PPL = word perplexity (lower is better), acc / acc_norm in percent. Δ vs scratch: the same-size "
            "scratch entry subtracted; 95% CI: paired percentile bootstrap over items, the same documents or "
            f"questions drawn for both models ({n_boot} resamples); a perplexity is recomputed from its summed "
            "log-likelihoods and words on every resample (ratio estimator). No CI below "
            f"{min_items} items (n = items both models have).")


def heldout_note() -> str:
    return ("Held-out measures (`align heldout`) on the final post-trained model (after DPO), on test rows no "
            "model trained on, the same rows for every model: held-out loss = mean per-token NLL of the "
            "assistant tokens (SFT recipe's test split; lower is better); pref. acc. (TRL: tie = wrong) = share of "
            "the DPO recipe's test pairs where the implicit reward (beta x log-ratio to the SFT checkpoint) of "
            "`chosen` is strictly higher, TRL's rewards/accuracies rule: a tie counts as wrong, so a policy equal "
            "to its reference scores 0.00; pref. ties = share of pairs whose two rewards are equal (all of them "
            "for a policy equal to its reference); pref. acc. (tie = ½) counts a tie as half (0.50 for a policy "
            "equal to its reference). Δ: paired bootstrap over rows.")


def base_markdown(free: JudgeFree, rows, n_boot: int, min_items: int) -> str:
    """The Base models section of table.md (empty without base evaluations)."""
    from judges.reporting.tables import md_table

    if not free.base:
        return ""
    text = ["## Base models (no judge: lm-evaluation-harness)", "", md_table(*base_table(free, rows)), ""]
    header, body = base_delta_table(free)
    if body:
        text += [md_table(header, body), ""]
    return "\n".join(text + [base_note(n_boot, min_items), ""]) + "\n"


def base_latex(free: JudgeFree, rows) -> str:
    """The Base models table (and its Δ table) for table.tex."""
    from judges.reporting.tables import _tex

    if not free.base:
        return ""
    lines = []
    for title, (header, body) in (("Base models (lm-evaluation-harness)", base_table(free, rows)),
                                  ("Base models: paired difference from the same-size scratch model, 95% CI",
                                   base_delta_table(free))):
        if not body:
            continue
        lines += [f"% {_tex(title)}", "\\begin{tabular}{" + "l" * 3 + "r" * (len(header) - 3) + "}", "\\toprule",
                  " & ".join(_tex(h) for h in header) + " \\\\", "\\midrule",
                  *(" & ".join(_tex(c) for c in cells) + " \\\\" for cells in body),
                  "\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)
