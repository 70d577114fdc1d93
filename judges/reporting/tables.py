"""The comparison table's files: table.md, table.csv, table.tex and categories.png (from report_rows.Row's)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from judges.questions import CATEGORIES
from judges.reporting.rows import Row
from judges.stats import finite_or_none
from judges.trust.support import SUPPORT_MIN_SHARE


def _f(x: float, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _signed(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:+.2f}"


def csv_number(x) -> object:
    """A number as table.csv writes it: rounded to 6 places, empty when missing or not finite."""
    x = finite_or_none(x)
    return "" if x is None else round(x, 6)


def ci_cell(low: float, high: float, n: int, fmt=_f) -> str:
    """"[low, high]", or "– (n=N)" when too few questions gave no interval."""
    if math.isnan(low):
        return f"– (n={n})" if n else "–"
    return f"[{fmt(low)}, {fmt(high)}]"


def md_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def category_columns(rows: list[Row]) -> list[str]:
    seen = {c for r in rows for c in r.categories}
    return [c for c in CATEGORIES if c in seen] + sorted(seen - set(CATEGORIES))


def main_cells(row: Row) -> list[str]:
    d = row.diff
    return [row.size, row.construction, row.name, _f(row.score), ci_cell(*row.ci, row.n_questions),
            _f(row.words, 1), _f(row.turn1), _f(row.turn2), str(row.valid), str(row.invalid), str(row.missing),
            _signed(d.mean) if d else "", ci_cell(d.ci_low, d.ci_high, d.n, _signed) if d else "",
            _f(d.p_value, 3) if d else "", str(d.n) if d else "", equal_length_cell(row.length_adjusted)]


def equal_length_cell(result: dict | None) -> str:
    """Δ at equal answer length (judges/trust/single_length): "+0.42 [-0.10, +0.95]"; "– (extrapolation)" where
    the questions do not reach equal length; "" without answers."""
    if result and result.get("not_estimable"):
        return "– (extrapolation)" if result["not_estimable"].startswith("extrapolation") else "– (not estimable)"
    if not result or result["value"] is None:
        return ""
    low, high = result["ci"]
    return _signed(result["value"]) + ("" if low is None else f" [{_signed(low)}, {_signed(high)}]")


MAIN_HEADER = ["Size", "Construction", "Model", "MT-Bench", "95% CI", "Words/turn", "Turn 1", "Turn 2", "Judged",
               "Invalid", "Missing", "Δ vs scratch", "Δ 95% CI", "p", "Paired n", "Δ at equal length [95% CI]"]
# The report shows MAIN_HEADER in two tables that each fit a laptop screen (issue 33): the judge's scores, and
# the comparison vs scratch (with the scratch entry named).
SCORES_HEADER = MAIN_HEADER[:11]
DIFF_HEADER = ["Size", "Model", "vs scratch", *MAIN_HEADER[11:]]
MAX_LINE = 200  # table.md's judge-free tables split to stay within this many characters a line


def with_extra(header: list[str], body: list[list], rows: list[Row], extra) -> tuple[list[str], list[list]]:
    """Columns added after the table's own: `extra` = (header, {model: cells}), or None."""
    if not extra or not extra[0]:
        return header, body
    blank = [""] * len(extra[0])
    return header + extra[0], [cells + list(extra[1].get(r.name, blank)) for cells, r in zip(body, rows)]


def judge_passes(checks: dict, controls_seen: bool) -> bool:
    """Whether the judge check separated every model: only then do the judge's tables come first."""
    return controls_seen and bool(checks) and all(c["separates"] for c in checks.values())


def scores_table(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    """The judge's scores: one row per model."""
    return SCORES_HEADER, [main_cells(r)[:len(SCORES_HEADER)] for r in rows]


def diff_table(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    """The comparison vs scratch: one row per model that has a same-size scratch entry."""
    return DIFF_HEADER, [[r.size, r.name, r.baseline or "", *main_cells(r)[len(SCORES_HEADER):]] for r in rows
                         if r.diff]


def judge_free_tables(rows: list[Row], extra) -> list[tuple[list[str], list[list[str]]]]:
    """The judge-free post-training measures (`extra` = heldout_columns), one row per model, in as many tables as
    keep every table.md line within MAX_LINE characters; a measure and its Δ column stay in one table."""
    names, blank = extra[0], [""] * len(extra[0])
    lead = [[r.size, r.construction, r.name] for r in rows]
    values = [list(extra[1].get(r.name, blank)) for r in rows]

    def table(columns: list[int]) -> tuple[list[str], list[list[str]]]:
        return (["Size", "Construction", "Model", *(names[i] for i in columns)],
                [first + [cells[i] for i in columns] for first, cells in zip(lead, values)])

    def width(columns: list[int]) -> int:
        return max(len(line) for line in md_table(*table(columns)).splitlines())

    groups = []
    for i, name in enumerate(names):
        if name.startswith("Δ ") and groups:
            groups[-1].append(i)
        else:
            groups.append([i])
    tables = [[]]
    for group in groups:
        if tables[-1] and width(tables[-1] + group) > MAX_LINE:
            tables.append([])
        tables[-1] += group
    return [table(columns) for columns in tables]


def scores_note(n_boot: int, min_questions: int) -> str:
    return (f"MT-Bench: mean of all valid turn scores (1-10). 95% CI: percentile bootstrap over questions ({n_boot} "
            f"resamples, both turns of a question together); no interval is shown for fewer than {min_questions} "
            "questions (n = questions judged), as a bootstrap over so few is not a 95% interval. Words/turn: mean "
            "words per answer turn (judges favour longer answers: compare lengths before believing a difference). "
            "Judged: valid scores; Invalid: judgments with no usable 1-10 rating (-1, not averaged); Missing: "
            "judgments that failed after retries and were not redone, or turns never judged.")


def diff_note() -> str:
    return ("Δ vs scratch: paired mean difference from the same-size scratch model over the questions both have "
            "(per-question score = mean of its valid turns); CI: paired bootstrap; p: two-sided sign-flip "
            "permutation test. Δ at equal length (needs --answer-file): the intercept of an OLS of the per-question "
            "score difference on the answers' length difference (characters), i.e. Δ had both answered at the "
            "same length, with its 95% CI (t-interval, shown from the same number of questions as the other CIs); "
            "a Δ that shrinks to nothing here was bought with length. It is read only where the questions reach "
            f"equal length: with fewer than {100 * SUPPORT_MIN_SHARE:g}% of them on either side of zero length "
            "difference it is an extrapolation of the line, shown as – (extrapolation), never as a number.")


def markdown(rows: list[Row], judge: str, n_boot: int, min_questions: int, warning: str | None,
             check: list[str], extra=None, extra_note: str | None = None, diff_notes: list[str] = (),
             judge_first: bool = True) -> str:
    """table.md's MT-Bench part, in groups that each fit a laptop screen: the judge's scores, the comparison vs
    scratch, the judge-free post-training measures (`extra`: the held-out columns) and the judge check. The
    first line is the judge-check warning when there is one; the judge-free measures come before the judge's
    tables unless the judge check passed (`judge_first`): the evidence that separates the models first."""
    table = md_table
    cats = category_columns(rows)
    scores = [f"## MT-Bench (judge: {judge})", "", table(*scores_table(rows)), "", scores_note(n_boot, min_questions),
              ""]
    if any(r.diff for r in rows):
        scores += [f"### Δ vs scratch (judge: {judge})", "", table(*diff_table(rows)), "", diff_note(), "",
                   *(f"{note}\n" for note in diff_notes)]
    free = []
    if extra and extra[0]:
        free = ["## Held-out measures (no judge: the final models)", "",
                *(line for part in judge_free_tables(rows, extra) for line in (table(*part), "")),
                *([extra_note, ""] if extra_note else [])]
    text = ([warning, ""] if warning else []) + (scores + free if judge_first else free + scores) + [
            "### Judge check", "", *check, "",
            "### Per category", "",
            table(["Model"] + cats, [[r.name] + [_f(r.categories.get(c, math.nan)) for c in cats] for r in rows])]
    return "\n".join(text) + "\n"


def csv_text(rows: list[Row], extra=None) -> str:
    cats = category_columns(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = (["size", "construction", "model", "mtbench", "ci_low", "ci_high", "questions", "words_per_turn",
               "turn1", "turn2", "judged",
               "invalid", "missing", "baseline", "diff", "diff_ci_low", "diff_ci_high", "p_value", "paired_n",
               "diff_equal_length", "diff_equal_length_ci_low", "diff_equal_length_ci_high",
               "diff_equal_length_not_estimable", "model_longer_share"]
              + [f"cat_{c}" for c in cats])
    body = []

    num = csv_number
    for r in rows:
        d = r.diff
        body.append([r.size, r.construction, r.name, num(r.score), num(r.ci[0]), num(r.ci[1]), r.n_questions,
                         num(r.words), num(r.turn1),
                         num(r.turn2), r.valid, r.invalid, r.missing, r.baseline or "",
                         num(d.mean) if d else "", num(d.ci_low) if d else "", num(d.ci_high) if d else "",
                         num(d.p_value) if d else "", d.n if d else "", *_equal_length_numbers(r, num)]
                    + [num(r.categories.get(c, math.nan)) for c in cats])
    header, body = with_extra(header, body, rows, extra)
    writer.writerow(header)
    writer.writerows(body)
    return out.getvalue()


def _equal_length_numbers(row: Row, num) -> list:
    """Δ at equal length, its CI, why it is not estimable (empty when it is), the confounding measure."""
    result = row.length_adjusted or {"value": None, "ci": [None, None]}
    return [num(result["value"]), num(result["ci"][0]), num(result["ci"][1]), result.get("not_estimable") or "",
            num(result.get("model_longer_share"))]


TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "$": r"\$",
               "{": r"\{", "}": r"\}", "–": "--", "Δ": r"$\Delta$"}


def _tex(s: str) -> str:
    return "".join(TEX_ESCAPES.get(ch, ch) for ch in s)


def latex(rows: list[Row], judge: str, warning: str | None = None, extra=None) -> str:
    header = ["Size", "Construction", "Model", "MT-Bench", "95\\% CI", "Words/turn", "Turn 1", "Turn 2", "Judged",
              "Invalid", "Missing", "$\\Delta$", "$\\Delta$ 95\\% CI", "$p$"]
    header, body = with_extra(header, [main_cells(r)[:14] for r in rows], rows,
                              extra and ([_tex(h) for h in extra[0]], extra[1]))
    lines = ([f"% {warning.strip('*')}"] if warning else []) + [
        f"% MT-Bench, judge: {_tex(judge)}", "\\begin{tabular}{lll" + "r" * (len(header) - 3) + "}", "\\toprule",
        " & ".join(header) + " \\\\", "\\midrule"]
    for cells in body:
        lines.append(" & ".join(_tex(c) for c in cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


def plot_categories(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cats = category_columns(rows) or ["(none)"]
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(8, 1.2 * len(cats) + 0.4 * len(rows)), 5 + 0.2 * len(rows)))
    x = np.arange(len(cats))
    for i, r in enumerate(rows):
        label = " ".join(p for p in (r.size, r.construction) if p) or r.name
        if r.size or r.construction:
            label += f" ({r.name})"
        ax.bar(x + (i - (len(rows) - 1) / 2) * width, [r.categories.get(c, np.nan) for c in cats], width,
               label=f"{label}: {_f(r.score)}")
    ax.set_xticks(x, cats)
    ax.set_ylim(0, 10)
    ax.set_ylabel("mean score (1-10)")
    ax.set_title("MT-Bench per category")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=min(3, max(1, len(rows))),
              frameon=False)  # below the axes: never hides a bar
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")  # atomic, like every file others may read
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


