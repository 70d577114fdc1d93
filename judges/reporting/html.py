"""report.html: the comparison in one self-contained page (no network: inline CSS, JS and chart).

The table with its CIs and the judge check, the per-category chart (categories.png, inlined), the
pairwise results, and every question with each model's answers side by side, each with the judge's
score and explanation; a category filter and model checkboxes (a few lines of inline JS) narrow it.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

from align.plumbing.files import atomic_write_text
from judges.judging.controls import control_of
from judges.records import outcome
from judges.reporting.check import AGREEMENT_HEADER, agreement_notes, agreement_rows, equal_length_notes
from judges.reporting.judge_free_tables import base_delta_table, base_note, base_table, heldout_columns, heldout_note
from judges.reporting.pair_report import CONTROL_NOTE, PAIR_HEADER, control_warnings, pair_cells
from judges.reporting.rows import Study
from judges.reporting.tables import diff_table, judge_free_tables, judge_passes, scores_table

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:110em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:right}
td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}.warning{background:#fde2e1;border:2px solid #c0392b;
padding:.6em;font-weight:bold}.note{color:#555;font-size:.9em;max-width:60em}.answers{display:grid;
grid-template-columns:repeat(auto-fill,minmax(22em,1fr));gap:.6em}.answer{border:1px solid #ddd;padding:.5em;
background:#fafafa}.answer pre,.turnq{white-space:pre-wrap;font-family:inherit;margin:.3em 0}.score{font-weight:bold}
.question{border-top:2px solid #888;margin-top:1.2em}details{font-size:.9em;color:#444}
#filters{position:sticky;top:0;background:#fff;padding:.4em 0;border-bottom:1px solid #ccc}
"""

SCRIPT = """
function applyFilters(){
  const cat=document.getElementById('category').value;
  const on=new Set([...document.querySelectorAll('.model-toggle')].filter(b=>b.checked).map(b=>b.value));
  let shown=0;
  document.querySelectorAll('.question').forEach(q=>{
    q.hidden=!(cat==='all'||q.dataset.category===cat); if(!q.hidden)shown++;});
  document.querySelectorAll('[data-model]').forEach(a=>{a.hidden=!on.has(a.dataset.model);});
  document.getElementById('shown').textContent=shown;
}
document.querySelectorAll('#filters select,#filters input').forEach(e=>e.addEventListener('change',applyFilters));
applyFilters();
"""


def _e(text) -> str:
    """Every value that goes into the page goes through here (text and attribute values alike)."""
    return html.escape(str(text), quote=True)


def _script_json(obj) -> str:
    """JSON for a <script> element: with no `<`, `>` or `&` left, no value can end the element early
    (`</script>`) or switch the parser into a comment state (`<!--`) that swallows the page's own script."""
    text = json.dumps(obj)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _table(header: list[str], rows: list[list[str]], table_id: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _check_html(checks: dict, controls_seen: bool) -> str:
    if not controls_seen:
        return '<p class="note">Judge check: none (judged without <code>--controls</code>).</p>'
    rows = []
    for model, c in checks.items():
        ci = "–" if c["ci"][0] is None else f"[{c['ci'][0]:+.2f}, {c['ci'][1]:+.2f}]"
        delta = "–" if c["delta"] is None else f"{c['delta']:+.2f}"
        rows.append([model, delta, ci, str(c["n"]), "yes" if c["separates"] else "NO"])
    return ("<h2>Judge check</h2>" + _table(["Model", "Δ vs @mismatched", "95% CI", "Questions", "Separates"],
                                            rows, "judge-check")
            + '<p class="note">Each model minus its own answers attached to other questions of the same turn '
              "count. A judge that reads the answers puts the CI above 0.</p>")


def _warnings_html(lines: list[str]) -> list[str]:
    """The controlled figures' warnings (confounding, not estimable, far from raw), one paragraph each."""
    return [f'<p class="warning control-warning">{_e(line.strip("*").removeprefix("Warning: "))}</p>'
            for line in lines]


def _base_html(study: Study, summary: dict) -> str:
    """The Base models table (the study's Table 1 form) and its paired differences from scratch."""
    if not study.free.base:
        return ""
    parts = ["<h2>Base models (no judge: lm-evaluation-harness)</h2>",
             _table(*base_table(study.free, study.rows), "base-table")]
    header, body = base_delta_table(study.free)
    if body:
        parts.append(_table(header, body, "base-delta-table"))
    n_boot = study.free.n_boot
    return "".join(parts) + f'<p class="note">{_e(base_note(n_boot, summary["min_ci_questions"]))}</p>'


def _agreement_html(study: Study) -> str:
    """Two judges' files given: how often the second judge's verdicts match the first's (as in table.md)."""
    if not study.agreement:
        return ""
    judge_a, judge_b = study.agreement_judges
    notes = "".join(f'<p class="note">{_e(note)}</p>' for note in agreement_notes(study.agreement, judge_a))
    return (f"<h2>Judge agreement ({_e(judge_a)} vs {_e(judge_b)})</h2>"
            + _table(AGREEMENT_HEADER, agreement_rows(study.agreement), "agreement-table") + notes)


def _answer_cell(study: Study, model: str, qid: int, turn: int) -> str:
    rec = study.answers.get(model, {}).get(qid)
    turns = rec["choices"][0]["turns"] if rec else []
    text = turns[turn - 1] if len(turns) >= turn else "(no answer)"
    judgment = study.judged.get((model, qid, turn))
    score = "not judged" if judgment is None else f"score {judgment['score']}"
    control = study.judged.get((control_of(model), qid, turn))
    if control is not None:
        score += f" (mismatched control: {control['score']})"
    explanation = "" if judgment is None else \
        f"<details><summary>judge's explanation</summary><pre>{_e(judgment.get('judgment', ''))}</pre></details>"
    return (f'<div class="answer" data-model="{_e(model)}"><div><b>{_e(model)}</b> · '
            f'<span class="score">{_e(score)}</span></div><pre>{_e(text)}</pre>{explanation}</div>')


def _pair_cell(rec: dict) -> str:
    games = "".join(f"<details><summary>game {g} (A={_e(rec['model_1'] if g == 1 else rec['model_2'])}): "
                    f"{_e(rec[f'g{g}_winner'])}</summary><pre>{_e(rec.get(f'g{g}_judgment', ''))}</pre></details>"
                    for g in (1, 2))
    return (f'<div class="answer pair" data-model="{_e(rec["model_1"])}"><b>{_e(rec["model_1"])} vs '
            f'{_e(rec["model_2"])}</b>: <span class="score">{_e(outcome(rec))}</span>{games}</div>')


def _questions_html(study: Study, models: list[str]) -> str:
    judged_ids = {slot[1] for slot in study.judged} | {slot[2] for slot in study.pair_judged}
    answered = {qid for by_q in study.answers.values() for qid in by_q}
    parts = []
    for q in study.questions:
        qid = q["question_id"]
        if qid not in judged_ids | answered:
            continue
        block = [f'<div class="question" data-category="{_e(q.get("category", "unknown"))}">',
                 f"<h3>Question {_e(qid)} · {_e(q.get('category', 'unknown'))}</h3>"]
        for turn, text in enumerate(q["turns"], start=1):
            block.append(f'<div class="turnq"><b>Turn {turn}:</b> {_e(text)}</div><div class="answers">')
            block += [_answer_cell(study, m, qid, turn) for m in models]
            block += [_pair_cell(rec) for (_, _, pq, pt), rec in sorted(study.pair_judged.items())
                      if pq == qid and pt == turn]
            block.append("</div>")
        parts.append("\n".join(block) + "</div>")
    return "\n".join(parts)


def _chart(png: Path) -> str:
    if not png.is_file():
        return ""
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return ('<h2>Per category</h2><img id="category-chart" alt="MT-Bench per category" '
            f'src="data:image/png;base64,{data}">')


def _pretraining_chart(png: Path) -> str:
    """The series' pretraining plot (judges/reporting/pretraining_plot.py), written beside the category chart."""
    if not png.is_file():
        return ""
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return ('<h2>Pretraining</h2><img id="pretraining-chart" alt="pretraining loss against cumulative FLOPs" '
            f'src="data:image/png;base64,{data}">')


def _main_tables(study: Study, summary: dict) -> list[str]:
    """The judge's scores, the comparison vs scratch and the held-out measures, each a table that fits a laptop
    screen (as table.md groups them); the held-out measures first unless the judge check passed."""
    judge = [f"<h1>MT-Bench (judge: {_e(study.judge)})</h1>", _table(*scores_table(study.rows), "main-table"),
             f'<p class="note">No CI below {summary["min_ci_questions"]} questions (n = questions judged). '
             "Words/turn: mean words per answer turn.</p>"]
    if any(r.diff for r in study.rows):
        judge += [f"<h2>Δ vs scratch (judge: {_e(study.judge)})</h2>", _table(*diff_table(study.rows), "diff-table"),
                  *_warnings_html(equal_length_notes(study.rows))]
    held = heldout_columns(study.free)
    free = [] if not held[0] else [
        "<h2>Held-out measures (no judge: the final models)</h2>",
        *(_table(*part, "heldout-table" + (f"-{i + 1}" if i else ""))
          for i, part in enumerate(judge_free_tables(study.rows, held))),
        f'<p class="note">{_e(heldout_note())}</p>']
    return judge + free if judge_passes(study.checks, study.controls_seen) else free + judge


def page(study: Study, summary: dict, png: Path) -> str:
    models = [r.name for r in study.rows] or sorted({m for s in study.pair_judged for m in s[:2]})
    categories = sorted({q.get("category", "unknown") for q in study.questions})
    options = "".join(f'<option value="{_e(c)}">{_e(c)}</option>' for c in categories)
    toggles = "".join(f'<label><input type="checkbox" class="model-toggle" value="{_e(m)}" checked> {_e(m)}</label> '
                      for m in models)
    pieces = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>MT-Bench report</title>"
              f"<style>{STYLE}</style></head><body>"]
    if study.warning:
        pieces.append(f'<p class="warning" id="judge-warning">{_e(study.warning.strip("*"))}</p>')
    if study.rows:
        pieces += _main_tables(study, summary)
        pieces += [_check_html(study.checks, study.controls_seen), _base_html(study, summary), _chart(png)]
    if study.pairs:
        bias = study.bias or {}
        share = bias.get("a_share")
        pieces += [f"<h2>Pairwise (judge: {_e(study.pair_judge)})</h2>",
                   _table(PAIR_HEADER, [pair_cells(r) for r in study.pairs], "pair-table"),
                   f'<p class="note">Position bias: the answer shown first won {bias.get("A", 0)} of '
                   f'{bias.get("A", 0) + bias.get("B", 0)} decisive games'
                   f'{"" if share is None or math.isnan(share) else f" ({100 * share:.0f}%)"}.</p>',
                   f'<p class="note">{_e(CONTROL_NOTE)}</p>', *_warnings_html(control_warnings(study.pairs))]
    pieces.append(_agreement_html(study))
    pieces.append(_pretraining_chart(png.with_name("pretraining.png")))
    pieces += ['<h2>Questions</h2><div id="filters">Category: <select id="category"><option value="all">all'
               f"</option>{options}</select> Models: {toggles} · <span id=\"shown\"></span> question(s) shown</div>",
               _questions_html(study, models),
               f'<script type="application/json" id="summary">{_script_json(summary)}</script>',
               f"<script>{SCRIPT}</script></body></html>"]
    return "\n".join(pieces)


def write_html(path: Path, study: Study, summary: dict, png: Path) -> None:
    atomic_write_text(path, page(study, summary, png))
