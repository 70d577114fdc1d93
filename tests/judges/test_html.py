"""report.html in a real headless browser (Debian's chromium, driven by Playwright): loads offline without
console errors, shows the table and the answers, and its filters work."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_jsonl

from align.cli import main
from judges.questions import load_questions

QUESTIONS = [q for q in load_questions() if q["category"] in ("writing", "math")]


def _answers(model: str) -> list[dict]:
    return [{"question_id": q["question_id"], "answer_id": f"{model}-{q['question_id']}", "model_id": model,
             "choices": [{"index": 0, "turns": [f"<b>{model}</b> answer to {q['question_id']}",
                                                f"{model} second turn {q['question_id']}"]}], "tstamp": 0.0}
            for q in QUESTIONS]


def _judgment(model: str, qid: int, turn: int, score: int) -> dict:
    return {"question_id": qid, "model": model, "judge": ["gpt-4", "single-v1"], "user_prompt": "p",
            "judgment": f"Explanation for {model} on {qid}. Rating: [[{score}]]", "score": score, "turn": turn,
            "tstamp": 1}


@pytest.fixture
def report_html(tmp_path) -> Path:
    rows = [_judgment(m, q["question_id"], t, s) for q in QUESTIONS for t in (1, 2)
            for m, s in (("alpha", 7), ("alpha@mismatched", 7), ("beta", 4))]
    judgments = write_jsonl(tmp_path / "gpt-4_single.jsonl", rows)
    answers = write_jsonl(tmp_path / "answers.jsonl", _answers("alpha") + _answers("beta"))
    out = tmp_path / "report"
    assert main(["mtbench", "report", "--input-file", str(judgments), "--answer-file", str(answers),
                 "--out-dir", str(out), "--bootstrap", "200"]) == 0
    return out / "report.html"


def test_report_html_is_self_contained(report_html):
    text = report_html.read_text()
    assert "http://" not in text and "https://" not in text  # no CDN, no fonts, nothing fetched
    assert "data:image/png;base64," in text and "&lt;b&gt;alpha&lt;/b&gt;" in text  # answers are escaped
    assert "<b>alpha</b> answer" not in text


def test_report_html_in_headless_chromium(report_html, new_page):
    errors, requests = [], []
    page = new_page()
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: requests.append(req.url))
    page.goto(report_html.as_uri())
    page.wait_for_load_state("load")

    assert page.locator("#main-table").is_visible()
    assert page.locator("#main-table tbody tr").count() == 2  # alpha, beta; the control is no row
    assert page.locator("#judge-warning").is_visible()  # alpha ties with its control
    assert "alpha" in page.locator("#judge-warning").inner_text()
    assert page.locator("#category-chart").is_visible()
    first = page.locator(".question").first
    assert first.is_visible() and first.locator(".answer[data-model='alpha']").first.is_visible()
    assert "<b>alpha</b> answer" in first.inner_text()  # shown as text, not markup
    n_all = page.locator(".question:visible").count()
    assert n_all == len(QUESTIONS)

    page.select_option("#category", "math")
    math_ids = [q["question_id"] for q in QUESTIONS if q["category"] == "math"]
    assert page.locator(".question:visible").count() == len(math_ids)
    assert all(c == "math" for c in page.locator(".question:visible").evaluate_all(
        "qs => qs.map(q => q.dataset.category)"))
    assert page.locator("#shown").inner_text() == str(len(math_ids))

    page.uncheck(".model-toggle[value='beta']")
    assert page.locator(".answer[data-model='beta']:visible").count() == 0
    assert page.locator(".answer[data-model='alpha']:visible").count() == 2 * len(math_ids)
    assert errors == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
