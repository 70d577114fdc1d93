"""The pairwise part of `align mtbench report`: wins, ties and losses from FastChat `_pair.jsonl` files.

Outcomes follow FastChat's show_result: a match whose game 1 is a tie, or whose two games disagree
(the verdict flipped with the order), is a tie; a match with an unreadable verdict ("error") in
either game is left out of the rates and counted in the Errors column. Win rate = wins / matches;
tie-adjusted win rate = (wins + ties / 2) / matches, each with a percentile bootstrap CI over
questions (both turns of a question together). Position bias: of the games with a decisive verdict,
the share that chose the answer shown first (A); an unbiased judge sits near 50%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from judges.questions import CATEGORIES
from judges.records import outcome
from judges.stats import MIN_CI_QUESTIONS, bootstrap_mean_ci, finite_or_none
from judges.trust.controlled import CONTROLLED
from judges.trust.support import CONFOUNDED_SHARE, SUPPORT_MIN_SHARE, confounded

OUTCOME_VALUE = {"win": 1.0, "tie": 0.5, "loss": 0.0}


CONTROL_NOTE = ("LC: AlpacaEval 2's length-controlled win rate (glm_winrate, length_controlled_minimal, fixed C=100 "
                "as its branch without cross-validation): the judge's preference fitted on tanh(length difference / "
                "sd, in characters) and a model term, read at ZERO length difference; AlpacaEval's default "
                "cross-validated fit differs by 0.07 points (median of simulated draws), by over 1 point in about a "
                "fifth of them, where cross-validation shrinks the rate to 50%. Equal-style: a contextual "
                "Bradley-Terry (FastChat's Chatbot Arena fit_contextual_bt, L2 0.5) on Arena-Hard-Auto's style "
                "features (length and markdown headers, lists, bold, z-scored), both orders as battles, read at "
                "ZERO style difference: not Arena-Hard-Auto's number, which is read at the pair's mean style "
                "difference and lands near the raw rate. Both: ties count half, 95% CI by bootstrap over questions "
                "(refitted each time); not estimable (–) when fewer than "
                f"{100 * SUPPORT_MIN_SHARE:g}% of the matches lie on either side of zero difference (an "
                "extrapolation, not a reading). Model longer: the share of matches where Model's answer is the "
                f"longer (confounded outside {100 * (1 - CONFOUNDED_SHARE):.0f}-{100 * CONFOUNDED_SHARE:.0f}%). A raw "
                "rate well above its LC / equal-style rate says the judge is rewarding length or formatting.")

@dataclass
class PairRow:
    model_1: str
    model_2: str
    win: int = 0
    tie: int = 0
    loss: int = 0
    errors: int = 0
    missing: int = 0  # matches that failed after retries and were not judged since
    questions: int = 0
    win_rate: float = math.nan
    adjusted: float = math.nan
    win_ci: tuple[float, float] = (math.nan, math.nan)
    adjusted_ci: tuple[float, float] = (math.nan, math.nan)
    categories: dict[str, float] = field(default_factory=dict)  # tie-adjusted win rate per category
    category_ci: dict[str, tuple[float, float]] = field(default_factory=dict)  # its bootstrap CI (enough questions)
    controls: dict | None = None  # judges/trust/controlled.pair_controls' entry (needs the answers' texts)


def pair_rows(judged: dict[tuple, dict], categories: dict[int, str], n_boot: int, seed: int,
              min_questions: int = MIN_CI_QUESTIONS, failed: set[tuple] = frozenset()) -> list[PairRow]:
    by_pair: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for (m1, m2, qid, _), rec in sorted(judged.items()):
        by_pair.setdefault((m1, m2), []).append((qid, outcome(rec)))
    for m1, m2, _, _ in sorted(failed):
        by_pair.setdefault((m1, m2), [])
    rows = []
    for (m1, m2), results in by_pair.items():
        row = PairRow(m1, m2, errors=sum(r == "error" for _, r in results),
                      missing=sum(slot[:2] == (m1, m2) for slot in failed))
        decided = [(qid, r) for qid, r in results if r != "error"]
        row.win, row.tie, row.loss = (sum(r == k for _, r in decided) for k in ("win", "tie", "loss"))
        per_question: dict[int, list[str]] = {}
        for qid, r in decided:
            per_question.setdefault(qid, []).append(r)
        row.questions = len(per_question)
        if decided:
            row.win_rate = row.win / len(decided)
            row.adjusted = (row.win + 0.5 * row.tie) / len(decided)
        if row.questions >= min_questions:
            wins = [[float(r == "win") for r in rs] for rs in per_question.values()]
            adjusted = [[OUTCOME_VALUE[r] for r in rs] for rs in per_question.values()]
            row.win_ci = bootstrap_mean_ci(wins, n_boot=n_boot, seed=seed)
            row.adjusted_ci = bootstrap_mean_ci(adjusted, n_boot=n_boot, seed=seed)
        per_cat: dict[str, dict[int, list[float]]] = {}
        for qid, r in decided:
            per_cat.setdefault(categories.get(qid, "unknown"), {}).setdefault(qid, []).append(OUTCOME_VALUE[r])
        for cat, by_q in per_cat.items():
            values = [v for vs in by_q.values() for v in vs]
            row.categories[cat] = sum(values) / len(values)
            if len(by_q) >= min_questions:
                row.category_ci[cat] = bootstrap_mean_ci(list(by_q.values()), n_boot=n_boot, seed=seed)
        rows.append(row)
    return rows


def position_bias(judged: dict[tuple, dict]) -> dict:
    """Games whose verdict chose position A, of the games with a decisive (A or B) verdict."""
    first = {"model_1": "A", "model_2": "B"}  # game 1 shows model_1 as A; game 2 swaps them
    second = {"model_1": "B", "model_2": "A"}
    verdicts = [first.get(rec["g1_winner"], rec["g1_winner"]) for rec in judged.values()]
    verdicts += [second.get(rec["g2_winner"], rec["g2_winner"]) for rec in judged.values()]
    a, b = verdicts.count("A"), verdicts.count("B")
    return {"games": len(verdicts), "A": a, "B": b, "tie": verdicts.count("tie"), "error": verdicts.count("error"),
            "a_share": a / (a + b) if a + b else None}


def _pct(x: float) -> str:
    return "–" if x is None or math.isnan(x) else f"{100 * x:.0f}%"


def _ci(ci: tuple[float, float], n: int) -> str:
    if math.isnan(ci[0]):
        return f"– (n={n})" if n else "–"
    return f"[{_pct(ci[0])}, {_pct(ci[1])}]"


def _cat_cell(row: PairRow, category: str) -> str:
    ci = row.category_ci.get(category)
    return _pct(row.categories.get(category, math.nan)) + (f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "")


PAIR_HEADER = ["Model", "vs", "Win", "Tie", "Loss", "Errors", "Missing", "Win rate", "95% CI", "Tie-adjusted", "95% CI",
               "Questions", "Model longer", "LC win rate [95% CI]", "Equal-style win rate [95% CI]"]


def _controlled_cell(result: dict | None) -> str:
    """A controlled win rate: "61% [52%, 70%]", "61%" (too few questions for a CI), "– (extrapolation)" (the
    matches do not reach equal length or style), "–" (no answers)."""
    if result and result.get("not_estimable"):
        return "– (extrapolation)" if result["not_estimable"].startswith("extrapolation") else "– (not estimable)"
    if not result or result["value"] is None:
        return "–"
    low, high = result["ci"]
    return _pct(result["value"]) + ("" if low is None else f" [{_pct(low)}, {_pct(high)}]")


def _longer_cell(controls: dict | None) -> str:
    """The confounding measure: the share of matches where Model's answer is the longer, flagged outside the band."""
    share = (controls or {}).get("model_1_longer_share")
    if share is None:
        return "–"
    return _pct(share) + (" (confounded)" if confounded(share) else "")


def pair_cells(r: PairRow) -> list[str]:
    controls = r.controls or {}
    return [r.model_1, r.model_2, str(r.win), str(r.tie), str(r.loss), str(r.errors), str(r.missing),
            _pct(r.win_rate),
            _ci(r.win_ci, r.questions), _pct(r.adjusted), _ci(r.adjusted_ci, r.questions), str(r.questions),
            _longer_cell(r.controls), *(_controlled_cell(controls.get(key)) for key, _ in CONTROLLED)]


def control_warnings(rows: list[PairRow]) -> list[str]:
    """Every pair's warnings about its controlled rates (confounding, not estimable, far from raw)."""
    return [w for r in rows for w in (r.controls or {}).get("warnings", [])]


def pair_markdown(rows: list[PairRow], bias: dict, judge: str, n_boot: int, table,
                  min_questions: int = MIN_CI_QUESTIONS) -> str:
    """The pairwise section of table.md; `table` is the report's Markdown table writer."""
    cats = [c for c in CATEGORIES if any(c in r.categories for r in rows)]
    cats += sorted({c for r in rows for c in r.categories} - set(cats))
    share = bias["a_share"]
    lines = [f"## Pairwise (judge: {judge})", "", table(PAIR_HEADER, [pair_cells(r) for r in rows]), "",
             "Each row: Model (model_1) against vs (model_2), one match per question and turn, judged twice with "
             "the answers in both orders. Win / Loss: both orders agree; Tie: the judge said tie in the first "
             "order, or its verdict flipped when the order flipped (FastChat's rule); Errors: a reply without "
             "[[A]], [[B]] or [[C]] in either order (left out of the rates); Missing: matches that failed after "
             "retries and were not redone (in <file>.failed.jsonl). Win rate = wins / matches; tie-adjusted = "
             f"(wins + ties/2) / matches; 95% CI: percentile bootstrap over questions ({n_boot} resamples), "
             f"not shown below {min_questions} questions (n = questions). The controlled rates need "
             f"--answer-file (– without it). {CONTROL_NOTE}", "",
             *(f"**Warning: {w}**\n" for w in control_warnings(rows)),
             f"Position bias: of {bias['A'] + bias['B']} games with a decisive verdict, the judge preferred the "
             f"answer shown first (A) in {bias['A']} ({_pct(share) if share is not None else '–'}); 50% is "
             f"unbiased. Ties: {bias['tie']} games; unreadable verdicts: {bias['error']} of {bias['games']}."]
    if cats:
        lines += ["", "### Pairwise per category (tie-adjusted win rate, 95% CI when the category has "
                  f"{min_questions}+ questions)", "",
                  table(["Model", "vs"] + cats,
                        [[r.model_1, r.model_2] + [_cat_cell(r, c) for c in cats] for r in rows])]
    return "\n".join(lines) + "\n"


def pair_summary(rows: list[PairRow], bias: dict) -> dict:
    clean = finite_or_none
    return {"pairs": [{"model_1": r.model_1, "model_2": r.model_2, "win": r.win, "tie": r.tie, "loss": r.loss,
                       "errors": r.errors, "missing": r.missing, "questions": r.questions,
                       "win_rate": clean(r.win_rate),
                       "win_rate_ci": [clean(x) for x in r.win_ci], "adjusted_win_rate": clean(r.adjusted),
                       "adjusted_win_rate_ci": [clean(x) for x in r.adjusted_ci],
                       "categories": r.categories,
                       "category_ci": {c: list(ci) for c, ci in r.category_ci.items()},
                       **summary_fields(r.controls)} for r in rows],
            "position_bias": bias}


def summary_fields(control: dict | None) -> dict:
    """summary.json's pairwise.pairs[] fields (None where there are no answers to control with)."""
    control = control or {}
    out = {}
    for name, _ in CONTROLLED:
        result = control.get(name) or {"value": None, "ci": [None, None], "not_estimable": None}
        out[name], out[f"{name}_ci"] = result["value"], list(result["ci"])
        out[f"{name}_not_estimable"] = result.get("not_estimable")
    out["model_1_longer_share"] = control.get("model_1_longer_share")
    out["control_warnings"] = list(control.get("warnings", []))
    return out
