"""`align mtbench report`: the comparison table from FastChat model_judgment files.

Per model: MT-Bench score (mean of all valid turn scores, as FastChat's show_result), turn 1
and turn 2 means, a 95% bootstrap CI over questions, per-category means, and counts of valid,
invalid (-1: no usable rating) and missing judgments (failed after retries, in
`<judgments>.failed.jsonl`, and not judged since; or a turn never judged of a question the model
has judgments or failures for). A re-judged (model, question, turn) counts once: its latest judgment by tstamp.
For each model whose series entry is not `scratch`: its paired difference from the same-size
`scratch` model over the questions both have (per-question score = mean of its valid turns),
with a paired bootstrap CI and a two-sided sign-flip permutation p-value.
Writes table.md, table.csv, table.tex, categories.png and summary.json; prints the Markdown.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from align.errors import UserError
from align.files import atomic_write_json, atomic_write_text, read_jsonl, read_yaml_mapping
from align.runcard import write_run_card
from judges.questions import CATEGORIES, load_questions

log = logging.getLogger(__name__)


@dataclass
class Row:
    """One row of the table: a model and where it sits in the series."""
    name: str
    size: str = ""
    construction: str = ""
    valid: int = 0
    invalid: int = 0
    missing: int = 0
    score: float = math.nan
    ci: tuple[float, float] = (math.nan, math.nan)
    turn1: float = math.nan
    turn2: float = math.nan
    categories: dict[str, float] = field(default_factory=dict)
    per_question: dict[int, float] = field(default_factory=dict)
    baseline: str | None = None
    diff: object = None  # stats.PairedResult against `baseline`


# ---------------------------------------------------------------- reading

def load_judgments(paths: list[str]) -> tuple[dict[tuple[str, int, int], dict], set[tuple[str, int, int]]]:
    """(latest judgment per (model, question, turn), slots that failed and were never judged since)."""
    latest: dict[tuple[str, int, int], tuple[float, int, dict]] = {}
    judges: set[str] = set()
    order = 0
    failed: set[tuple[str, int, int]] = set()
    for path in paths:
        if not Path(path).is_file():
            raise UserError(f"{path}: judgment file not found")
        for i, rec in enumerate(read_jsonl(path), start=1):
            if "model_1" in rec:
                raise UserError(f"{path}:{i}: a pairwise judgment; expected single-answer grading rows")
            try:
                slot = (str(rec["model"]), int(rec["question_id"]), int(rec["turn"]))
                score = float(rec["score"])
            except (KeyError, TypeError, ValueError):
                raise UserError(f"{path}:{i}: expected FastChat model_judgment fields model, question_id, "
                                "turn and score (a number)") from None
            if math.isnan(score):
                raise UserError(f"{path}:{i}: score is NaN")
            if isinstance(rec.get("judge"), list) and rec["judge"]:
                judges.add(str(rec["judge"][0]))
            order += 1  # equal tstamps: the later line wins
            key = (float(rec.get("tstamp") or 0.0), order)
            if slot not in latest or key > latest[slot][:2]:
                latest[slot] = (*key, rec)
        sidecar = Path(str(path) + ".failed.jsonl")
        if sidecar.is_file():
            failed |= {(str(r["model"]), int(r["question_id"]), int(r["turn"])) for r in read_jsonl(sidecar)}
    if len(judges) > 1:
        raise UserError(f"judgments from different judges ({', '.join(sorted(judges))}): report one judge at a time")
    judged = {slot: rec for slot, (_, _, rec) in latest.items()}
    return judged, failed - set(judged)


def rows_from_series(path: str) -> list[Row]:
    """One row per entry of a series file's `models:` table (name, size, construction); the rest of
    the file is the series runner's business and is not read here."""
    models = read_yaml_mapping(path, "series file").get("models")
    if not isinstance(models, list) or not models:
        raise UserError(f"{path}: expected a `models:` list")
    rows = []
    for i, entry in enumerate(models):
        if not isinstance(entry, dict) or not all(entry.get(k) not in (None, "") for k in
                                                  ("name", "size", "construction")):
            raise UserError(f"{path}: models[{i}] needs name, size and construction")
        rows.append(Row(str(entry["name"]), str(entry["size"]), str(entry["construction"])))
    return rows


SIZE_IN_NAME = re.compile(r"(?i)(?:^|[-_/.])(\d+(?:\.\d+)?[bm])(?=$|[-_/.])")


def rows_from_names(models: list[str]) -> list[Row]:
    """No series file: one row per model; size/construction only when the name says so plainly."""
    rows = []
    for name in sorted(models):
        size = SIZE_IN_NAME.search(name)
        lower = name.lower()
        expanded = "expand" in lower or "grown" in lower
        construction = "scratch" if "scratch" in lower else "expanded" if expanded else ""
        rows.append(Row(name, size.group(1).upper() if size else "", construction))

    def order(row: Row):  # by size (millions before billions), scratch first, then name
        num = float(row.size[:-1]) * (1e3 if row.size.endswith("B") else 1) if row.size else math.inf
        return num, row.construction != "scratch", row.name

    return sorted(rows, key=order)


# ---------------------------------------------------------------- numbers

def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def fill_row(row: Row, judged: dict, failed: set, categories: dict[int, str], n_turns: dict[int, int],
             n_boot: int, seed: int) -> None:
    from judges.stats import bootstrap_mean_ci

    mine = {slot: rec for slot, rec in judged.items() if slot[0] == row.name}
    valid = {slot: float(rec["score"]) for slot, rec in mine.items() if 1 <= float(rec["score"]) <= 10}
    row.valid, row.invalid = len(valid), len(mine) - len(valid)
    # Expected: every turn of every question this model was judged (or failed) on.
    seen = {qid for (model, qid, _) in set(mine) | failed if model == row.name}
    expected = {(row.name, qid, t) for qid in seen for t in range(1, n_turns.get(qid, 2) + 1)}
    row.missing = len(expected - set(mine))
    by_question: dict[int, list[float]] = {}
    for (_, qid, _), score in sorted(valid.items()):
        by_question.setdefault(qid, []).append(score)
    row.score = _mean(list(valid.values()))
    row.turn1 = _mean([s for (_, _, t), s in valid.items() if t == 1])
    row.turn2 = _mean([s for (_, _, t), s in valid.items() if t == 2])
    row.ci = bootstrap_mean_ci(list(by_question.values()), n_boot=n_boot, seed=seed)
    row.per_question = {qid: _mean(scores) for qid, scores in by_question.items()}
    per_cat: dict[str, list[float]] = {}
    for (_, qid, _), score in valid.items():
        per_cat.setdefault(categories.get(qid, "unknown"), []).append(score)
    row.categories = {cat: _mean(scores) for cat, scores in per_cat.items()}


def pair_rows(rows: list[Row], n_boot: int, seed: int) -> None:
    """Each non-scratch row against the scratch row of its size (the first one, if several)."""
    from judges.stats import paired_difference

    scratch = {}
    for row in rows:
        if row.construction == "scratch" and row.size:
            scratch.setdefault(row.size, row)
    for row in rows:
        base = scratch.get(row.size)
        if row.construction and row.construction != "scratch" and base is not None:
            row.baseline = base.name
            row.diff = paired_difference(row.per_question, base.per_question, n_boot=n_boot, seed=seed)


# ---------------------------------------------------------------- tables

def _f(x: float, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _signed(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:+.2f}"


def category_columns(rows: list[Row]) -> list[str]:
    seen = {c for r in rows for c in r.categories}
    return [c for c in CATEGORIES if c in seen] + sorted(seen - set(CATEGORIES))


def main_cells(row: Row) -> list[str]:
    d = row.diff
    return [row.size, row.construction, row.name, _f(row.score), f"[{_f(row.ci[0])}, {_f(row.ci[1])}]",
            _f(row.turn1), _f(row.turn2), str(row.valid), str(row.invalid), str(row.missing),
            _signed(d.mean) if d else "", f"[{_signed(d.ci_low)}, {_signed(d.ci_high)}]" if d else "",
            _f(d.p_value, 3) if d else "", str(d.n) if d else ""]


MAIN_HEADER = ["Size", "Construction", "Model", "MT-Bench", "95% CI", "Turn 1", "Turn 2", "Judged", "Invalid",
               "Missing", "Δ vs scratch", "Δ 95% CI", "p", "Paired n"]


def markdown(rows: list[Row], judge: str, n_boot: int) -> str:
    def table(header: list[str], body: list[list[str]]) -> str:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)

    cats = category_columns(rows)
    text = [f"## MT-Bench (judge: {judge})", "",
            table(MAIN_HEADER, [main_cells(r) for r in rows]), "",
            f"MT-Bench: mean of all valid turn scores (1-10). 95% CI: percentile bootstrap over questions "
            f"({n_boot} resamples, both turns of a question together). Judged: valid scores; Invalid: judgments "
            "with no usable 1-10 rating (-1, not averaged); Missing: judgments that failed after retries and "
            "were not redone, or turns never judged. "
            "Δ vs scratch: paired mean difference from the same-size scratch model over the questions both have "
            "(per-question score = mean of its valid turns); CI: paired bootstrap; p: two-sided sign-flip "
            "permutation test.", "",
            "### Per category", "",
            table(["Model"] + cats, [[r.name] + [_f(r.categories.get(c, math.nan)) for c in cats] for r in rows])]
    return "\n".join(text) + "\n"


def csv_text(rows: list[Row]) -> str:
    cats = category_columns(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["size", "construction", "model", "mtbench", "ci_low", "ci_high", "turn1", "turn2", "judged",
                     "invalid", "missing", "baseline", "diff", "diff_ci_low", "diff_ci_high", "p_value", "paired_n"]
                    + [f"cat_{c}" for c in cats])

    def num(x):
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, 6)

    for r in rows:
        d = r.diff
        writer.writerow([r.size, r.construction, r.name, num(r.score), num(r.ci[0]), num(r.ci[1]), num(r.turn1),
                         num(r.turn2), r.valid, r.invalid, r.missing, r.baseline or "",
                         num(d.mean) if d else "", num(d.ci_low) if d else "", num(d.ci_high) if d else "",
                         num(d.p_value) if d else "", d.n if d else ""]
                        + [num(r.categories.get(c, math.nan)) for c in cats])
    return out.getvalue()


TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "$": r"\$",
               "{": r"\{", "}": r"\}", "–": "--", "Δ": r"$\Delta$"}


def _tex(s: str) -> str:
    return "".join(TEX_ESCAPES.get(ch, ch) for ch in s)


def latex(rows: list[Row], judge: str) -> str:
    header = ["Size", "Construction", "Model", "MT-Bench", "95\\% CI", "Turn 1", "Turn 2", "Judged", "Invalid",
              "Missing", "$\\Delta$", "$\\Delta$ 95\\% CI", "$p$"]
    lines = [f"% MT-Bench, judge: {_tex(judge)}", "\\begin{tabular}{lll" + "r" * (len(header) - 3) + "}",
             "\\toprule", " & ".join(header) + " \\\\", "\\midrule"]
    for r in rows:
        cells = main_cells(r)[:13]
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


# ---------------------------------------------------------------- command

def build_rows(input_files: list[str], series: str | None, question_dir: str | None, n_boot: int,
               seed: int) -> tuple[list[Row], str]:
    judged, failed = load_judgments(input_files)
    if not judged and not failed:
        raise UserError(f"no judgments in {', '.join(input_files)}")
    models = sorted({slot[0] for slot in judged} | {slot[0] for slot in failed})
    rows = rows_from_series(series) if series else rows_from_names(models)
    extra = sorted(set(models) - {r.name for r in rows})
    if extra:
        log.warning("not in the series file, left out of the table: %s", ", ".join(extra))
    questions = load_questions(question_dir)
    categories = {q["question_id"]: q.get("category", "unknown") for q in questions}
    n_turns = {q["question_id"]: len(q["turns"]) for q in questions}
    for row in rows:
        fill_row(row, judged, failed, categories, n_turns, n_boot, seed)
    pair_rows(rows, n_boot, seed)
    judges = {str(rec["judge"][0]) for rec in judged.values() if isinstance(rec.get("judge"), list)}
    return rows, (judges.pop() if judges else "unknown")


def summary(rows: list[Row], judge: str) -> dict:
    def clean(x):
        return None if isinstance(x, float) and math.isnan(x) else x

    return {"judge": judge, "rows": [
        {"name": r.name, "size": r.size, "construction": r.construction, "mtbench": clean(r.score),
         "ci": [clean(r.ci[0]), clean(r.ci[1])], "turn1": clean(r.turn1), "turn2": clean(r.turn2),
         "judged": r.valid, "invalid": r.invalid, "missing": r.missing,
         "categories": {k: clean(v) for k, v in r.categories.items()}, "baseline": r.baseline,
         "diff": None if r.diff is None else {k: clean(v) for k, v in vars(r.diff).items()}}
        for r in rows]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-file", nargs="+", required=True, help="FastChat model_judgment JSONL file(s)")
    parser.add_argument("--out-dir", required=True, help="where table.md/.csv/.tex and categories.png go")
    parser.add_argument("--series", default=None,
                        help="series YAML: `models:` entries with name (model_id), size, construction")
    parser.add_argument("--question-dir", default=None, help="MT-Bench questions (for categories); "
                                                             "default: the packaged data")
    parser.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples (and permutations)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.bootstrap < 100:
        raise UserError(f"--bootstrap must be at least 100, got {args.bootstrap}")
    started = time.time()
    rows, judge = build_rows(args.input_file, args.series, args.question_dir, args.bootstrap, args.seed)
    out = Path(args.out_dir)
    md = markdown(rows, judge, args.bootstrap)
    atomic_write_text(out / "table.md", md)
    atomic_write_text(out / "table.csv", csv_text(rows))
    atomic_write_text(out / "table.tex", latex(rows, judge))
    atomic_write_json(out / "summary.json", summary(rows, judge))
    plot_categories(rows, out / "categories.png")
    write_run_card(out, {"stage": "mtbench-report", "input_files": args.input_file, "series": args.series,
                         "bootstrap": args.bootstrap, "seed": args.seed, "judge": judge}, started)
    print(md, end="", flush=True)
    return 0
