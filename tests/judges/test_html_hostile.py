"""report.html with hostile text everywhere a value lands in the page (model names, answers, categories,
question text, judge names and explanations, pairwise records, a second judge's agreement section): opened
in headless Chromium, no injected handler runs, no dialog fires, and the hostile text is shown as text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_jsonl

from align.cli import main


def hostile(tag: str) -> str:
    """One string that tries every way out: an element with a handler, closing the script element,
    leaving an attribute (both quote kinds), and an HTML comment that would swallow the page's script."""
    return (f"{tag}<img src=x onerror=\"window.__pwned='{tag}';alert(1)\">"
            f"</script><script>window.__pwned='{tag}-script'</script>"
            f"\"'><svg onload=\"window.__pwned='{tag}-attr'\"><!--<script>")


MODEL_A, MODEL_B = hostile("modelA"), hostile("modelB")
CATEGORY = hostile("category")
JUDGE = hostile("judge")
JUDGE_B = hostile("judgeB")  # a second judge: the report's agreement section names both
TASK = hostile("task")


def _questions(tmp_path: Path) -> Path:
    qdir = tmp_path / "questions"
    write_jsonl(qdir / "question.jsonl", [
        {"question_id": 1, "category": CATEGORY, "turns": [hostile("question1"), hostile("question1turn2")]},
        {"question_id": 2, "category": "writing", "turns": ["plain question", "plain follow-up"]}])
    return qdir


def _answers(model: str) -> list[dict]:
    return [{"question_id": qid, "answer_id": f"a{qid}", "model_id": model,
             "choices": [{"index": 0, "turns": [hostile(f"answer{qid}"), hostile(f"answer{qid}t2")]}], "tstamp": 0}
            for qid in (1, 2)]


def _single(model: str, qid: int, turn: int, judge: str = JUDGE, score: int = 5) -> dict:
    return {"question_id": qid, "model": model, "judge": [judge, "single-v1"], "user_prompt": "p",
            "judgment": hostile("explanation") + f" Rating: [[{score}]]", "score": score, "turn": turn, "tstamp": 1}


def _pair(qid: int, turn: int) -> dict:
    return {"question_id": qid, "model_1": MODEL_A, "model_2": MODEL_B, "judge": [JUDGE, "pair-v2"],
            "g1_winner": "model_1", "g2_winner": "model_1", "g1_judgment": hostile("game1") + " [[A]]",
            "g2_judgment": hostile("game2") + " [[B]]", "turn": turn, "tstamp": 1}


def _judge_free(tmp_path: Path) -> list[str]:
    """A base evaluation with a hostile task name and held-out measures, for both models (the Base models
    table, its Δ table and the held-out columns)."""
    args = []
    for model in (MODEL_A, MODEL_B):
        folder = tmp_path / f"eval-{len(args)}"
        folder.mkdir()
        measure = f"{TASK}/acc"
        (folder / "base_eval.json").write_text(json.dumps({
            "measures": {measure: {"value": 0.5, "stderr": 0.1, "n": 2}}, "items": {measure: {"0": 1.0, "1": 0.0}}}))
        (folder / "heldout.json").write_text(json.dumps({
            "measures": {"loss": {"value": 2.0, "n": 1}}, "rows": {"0": {"nll": 4.0, "tokens": 2}}}))
        args += ["--base-eval", f"{model}={folder}", "--heldout", f"{model}={folder}"]
    return args


@pytest.fixture
def hostile_report(tmp_path) -> Path:
    singles = write_jsonl(tmp_path / "j_single.jsonl",
                          [_single(m, q, t) for m in (MODEL_A, MODEL_B) for q in (1, 2) for t in (1, 2)])
    pairs = write_jsonl(tmp_path / "j_pair.jsonl", [_pair(q, t) for q in (1, 2) for t in (1, 2)])
    second = write_jsonl(tmp_path / "b_single.jsonl", [_single(m, q, t, JUDGE_B, 3 + q + (m == MODEL_A))
                                                       for m in (MODEL_A, MODEL_B) for q in (1, 2) for t in (1, 2)])
    answers = write_jsonl(tmp_path / "answers.jsonl", _answers(MODEL_A) + _answers(MODEL_B))
    out = tmp_path / "report"
    assert main(["mtbench", "report", "--input-file", str(singles), str(pairs), str(second),
                 "--answer-file", str(answers), "--question-dir", str(_questions(tmp_path)), "--out-dir", str(out),
                 "--bootstrap", "100",
                 *_judge_free(tmp_path)]) == 0
    return out / "report.html"


def test_embedded_json_cannot_end_or_comment_out_its_script(hostile_report):
    text = hostile_report.read_text()
    start = text.index('<script type="application/json" id="summary">') + len(
        '<script type="application/json" id="summary">')
    embedded = text[start:text.index("</script>", start)]
    assert "<" not in embedded and ">" not in embedded  # no `</script`, no `<!--`
    assert json.loads(embedded)["judge"] == JUDGE


def test_hostile_text_is_shown_as_text_and_never_runs(hostile_report, new_page):
    dialogs, errors = [], []
    page = new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(hostile_report.as_uri())
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)  # give an onerror/onload handler time to fire
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img:not(#category-chart), svg").count() == 0  # no injected element at all
    body = page.locator("body").inner_text()
    for shown in (MODEL_A, MODEL_B, CATEGORY, hostile("question1"), hostile("answer1"),
                  hostile("explanation"), hostile("game1"), f"A={MODEL_A}", JUDGE, f"{TASK} acc",
                  f"Judge agreement ({JUDGE} vs {JUDGE_B})", f"The tables above are {JUDGE}'s."):
        page.locator("details").evaluate_all("ds => ds.forEach(d => d.open = true)")
        body = page.locator("body").inner_text()
        assert shown in body, shown[:20]
    assert page.locator("#summary").count() == 1
    assert page.locator("#agreement-table tbody tr").count() == 2  # turn 1, turn 2
    assert json.loads(page.locator("#summary").text_content())["judge"] == JUDGE
    # the page's own script still ran: the filter counts the two questions
    assert page.locator("#shown").inner_text() == "2"
    page.select_option("#category", CATEGORY)
    assert page.locator("#shown").inner_text() == "1"
    assert dialogs == [] and errors == []
