"""report.html at a laptop's 1280 px (issue 33): the judge's scores, the comparison vs scratch, the held-out
measures and the Base models each fit the window, no horizontal scroll, in a real headless browser (Debian's
chromium, driven by Playwright as in test_html.py); table.md's table lines stay short."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_jsonl

from align.cli import main
from judges.questions import load_questions

QUESTIONS = load_questions()[:10]
# names as long as a study's: the widest cells a real report has
SCRATCH, GROWN = "8b-scratch-chinchilla2x-fineweb-edu", "8b-expanded-from-4b-aki-stack-staged"
MAIN_TABLES = ("main-table", "diff-table", "heldout-table", "base-table", "base-delta-table")


def _measures(folder: Path, name: str, body: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / name).write_text(json.dumps(body))
    return folder


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("layout")
    models = (SCRATCH, GROWN, f"{SCRATCH}@mismatched", f"{GROWN}@mismatched")
    judgments = write_jsonl(tmp / "j.jsonl", [
        {"question_id": q["question_id"], "model": m, "judge": ["gpt-4", "single-v1"], "user_prompt": "p",
         "judgment": f"Rating: [[{5 + i % 3}]]", "score": 5 + i % 3, "turn": t, "tstamp": 1}
        for m in models for i, q in enumerate(QUESTIONS) for t in (1, 2)])
    answers = write_jsonl(tmp / "a.jsonl", [
        {"question_id": q["question_id"], "answer_id": f"{m}-{i}", "model_id": m, "tstamp": 0.0,
         "choices": [{"index": 0, "turns": [" ".join(["word"] * (20 + 7 * i + len(m) % 5)), "two"]}]}
        for m in (SCRATCH, GROWN) for i, q in enumerate(QUESTIONS)])
    series = tmp / "series.yaml"
    series.write_text(f"models:\n  - {{name: {SCRATCH}, size: 8B, construction: scratch}}\n"
                      f"  - {{name: {GROWN}, size: 8B, construction: expanded}}\n")
    extra = []
    for model, shift in ((SCRATCH, 0.0), (GROWN, 1.0)):
        items = range(10)
        tasks = ("arc_challenge", "arc_easy", "hellaswag", "piqa", "winogrande", "openbookqa", "lambada_openai")
        base = {"measures": {**{f"{t}/acc": {"value": 0.5, "stderr": 0.1, "n": 10} for t in tasks},
                             "wikitext/word_perplexity": {"value": 20.0, "stderr": None, "n": 10}},
                "items": {**{f"{t}/acc": {str(i): float((i + shift) % 2) for i in items} for t in tasks},
                          "wikitext/word_perplexity": {str(i): {"loglikelihood": -30.0 + shift * i, "words": 10}
                                                       for i in items}}}
        sft = {"kind": "sft", "measures": {"loss": {"value": 3.0 - shift, "n": 10, "tokens": 200}},
               "rows": {str(i): {"nll": (3.0 - shift) * 20 + i, "tokens": 20} for i in items}}
        # every measure `align heldout --kind dpo` writes (judges/measures/heldout.py), margins as small as the demo's
        dpo = {"kind": "dpo", "measures": {"preference_accuracy": {"value": 0.5, "n": 10},
                                           "preference_tie_share": {"value": 0.1, "n": 10},
                                           "preference_accuracy_ties_half": {"value": 0.55, "n": 10},
                                           "reward_margin": {"value": shift / 1000, "n": 10},
                                           "reward_chosen": {"value": shift / 1000, "n": 10},
                                           "reward_rejected": {"value": 0.0, "n": 10}},
               "rows": {str(i): {"correct": float(i % 2), "tie": float(i == 0), "margin": shift / 1000 + i / 10000,
                                 "reward_chosen": shift / 1000 + i / 10000, "reward_rejected": 0.0} for i in items}}
        extra += ["--base-eval", f"{model}={_measures(tmp / model / 'base', 'base_eval.json', base)}",
                  "--heldout", f"{model}={_measures(tmp / model / 'sft', 'heldout.json', sft)}",
                  "--heldout", f"{model}={_measures(tmp / model / 'dpo', 'heldout.json', dpo)}"]
    out = tmp / "report"
    assert main(["mtbench", "report", "--input-file", str(judgments), "--answer-file", str(answers),
                 "--series", str(series), "--out-dir", str(out), "--bootstrap", "200", *extra]) == 0
    return out


def test_table_md_lines_are_short(report):
    """The MT-Bench part's table lines fit a 200-character editor line (one 22-column table ran past 400). The Base
    models tables keep the study's Table 1 form: one column per task, as wide as the tasks make it."""
    mtbench_part = (report / "table.md").read_text().split("## Base models")[0]
    table_lines = [line for line in mtbench_part.splitlines() if line.startswith("|")]
    assert len(table_lines) >= 3 * 4 and max(len(line) for line in table_lines) <= 200


def test_main_tables_fit_1280_px_without_horizontal_scroll(report, new_page):
    page = new_page(viewport={"width": 1280, "height": 800})
    page.goto((report / "report.html").as_uri())
    for table in MAIN_TABLES:
        right = page.evaluate(f"document.getElementById('{table}').getBoundingClientRect().right")
        assert right <= 1280, f"#{table} ends at {right:.0f} px, past a 1280 px window"
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
