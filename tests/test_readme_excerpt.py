"""README's excerpt of the demo's table has the form the report writes today (issue 33): the same header
cells in the same order, the same rule, a warning line where the report puts one. The excerpt is made by
docs/assets/make_assets.py from a real demo run; this test makes a report of the demo's shape (a scratch and a
pretrained model, the judge check's controls, answers, base evaluation, held-out measures) with the current
code and compares, so the front door cannot drift from the product. Rerun `make demo && make docs-assets`
when it fails."""

from __future__ import annotations

import importlib.util
import json

import pytest
from conftest import REPO, write_jsonl

from align.cli import main
from judges.questions import load_questions

QUESTIONS = load_questions()[:10]  # the fewest questions the report gives a CI for
SCRATCH, PRETRAINED = "demo-scratch", "demo-pretrained"


def _assets():
    spec = importlib.util.spec_from_file_location("make_assets", REPO / "docs" / "assets" / "make_assets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readme_excerpt() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assets = _assets()
    start, end = text.index(assets.EXCERPT_START), text.index(assets.EXCERPT_END)
    return text[start:end].splitlines()[1:]  # the marker line names where the excerpt came from


def _judgment(model: str, qid: int, turn: int, score: int) -> dict:
    return {"question_id": qid, "model": model, "judge": ["smollm2-135m-instruct", "single-v1"], "user_prompt": "p",
            "judgment": f"Rating: [[{score}]]", "score": score, "turn": turn, "tstamp": 1}


def _answers(model: str, words: int) -> list[dict]:
    return [{"question_id": q["question_id"], "answer_id": f"{model}-{q['question_id']}", "model_id": model,
             "choices": [{"index": 0, "turns": [" ".join(["word"] * (words + i)), "turn two"]}], "tstamp": 0.0}
            for i, q in enumerate(QUESTIONS)]


def _measures(folder, name: str, body: dict):
    folder.mkdir(parents=True)
    (folder / name).write_text(json.dumps(body))
    return folder


@pytest.fixture(scope="module")
def demo_shaped_table(tmp_path_factory) -> str:
    """table.md of a report shaped like the demo's, written by the current code."""
    tmp = tmp_path_factory.mktemp("excerpt")
    models = (SCRATCH, PRETRAINED, f"{SCRATCH}@mismatched", f"{PRETRAINED}@mismatched")
    judgments = write_jsonl(tmp / "judgments.jsonl", [_judgment(m, q["question_id"], t, 5) for m in models
                                                      for q in QUESTIONS for t in (1, 2)])
    answers = write_jsonl(tmp / "answers.jsonl", _answers(SCRATCH, 5) + _answers(PRETRAINED, 9))
    series = tmp / "series.yaml"
    series.write_text(f"models:\n  - {{name: {PRETRAINED}, size: 135M, construction: pretrained}}\n"
                      f"  - {{name: {SCRATCH}, size: 135M, construction: scratch}}\n")
    extra = []
    for model, shift in ((SCRATCH, 0.0), (PRETRAINED, 1.0)):
        items = range(len(QUESTIONS))
        base = {"measures": {"demo_mc/acc": {"value": 0.5, "stderr": 0.1, "n": 10},
                             "heldout_text/word_perplexity": {"value": 100.0, "stderr": None, "n": 10}},
                "items": {"demo_mc/acc": {str(i): float((i + shift) % 2) for i in items},
                          "heldout_text/word_perplexity": {str(i): {"loglikelihood": -50.0 + shift * i, "words": 10}
                                                           for i in items}}}
        sft = {"kind": "sft", "measures": {"loss": {"value": 3.0 - shift, "n": 10, "tokens": 200}},
               "rows": {str(i): {"nll": (3.0 - shift) * 20 + i, "tokens": 20} for i in items}}
        # every measure `align heldout --kind dpo` writes today (judges/measures/heldout.py)
        dpo = {"kind": "dpo", "measures": {"preference_accuracy": {"value": 0.5, "n": 10},
                                           "preference_tie_share": {"value": 0.0, "n": 10},
                                           "preference_accuracy_ties_half": {"value": 0.5, "n": 10},
                                           "reward_margin": {"value": shift, "n": 10},
                                           "reward_chosen": {"value": shift, "n": 10},
                                           "reward_rejected": {"value": 0.0, "n": 10}},
               "rows": {str(i): {"correct": float(i % 2), "tie": 0.0, "margin": shift + i / 10,
                                 "reward_chosen": shift + i / 10, "reward_rejected": 0.0} for i in items}}
        extra += ["--base-eval", f"{model}={_measures(tmp / model / 'base', 'base_eval.json', base)}",
                  "--heldout", f"{model}={_measures(tmp / model / 'sft', 'heldout.json', sft)}",
                  "--heldout", f"{model}={_measures(tmp / model / 'dpo', 'heldout.json', dpo)}"]
    out = tmp / "report"
    assert main(["mtbench", "report", "--input-file", str(judgments), "--answer-file", str(answers),
                 "--series", str(series), "--out-dir", str(out), "--bootstrap", "200", *extra]) == 0
    return (out / "table.md").read_text(encoding="utf-8")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_readme_excerpt_has_the_form_the_report_writes(demo_shaped_table):
    excerpt = readme_excerpt()
    current = _assets().excerpt_of(demo_shaped_table).splitlines()
    assert excerpt, "README.md's demo-table excerpt is empty: run `make demo && make docs-assets`"
    table = [line for line in excerpt if line.startswith("|")]
    now = [line for line in current if line.startswith("|")]
    assert _cells(table[0]) == _cells(now[0]), "README's excerpt has other columns than the report writes now"
    assert table[1] == now[1]  # the rule under the header
    assert len(table) == len(now) and all(len(_cells(row)) == len(_cells(now[0])) for row in table[2:])
    # what comes before the table (the judge-check warning, the table's title) has the same form
    before, before_now = excerpt[:excerpt.index(table[0])], current[:current.index(now[0])]
    assert [line.split(":")[0] for line in before] == [line.split(":")[0] for line in before_now]


def test_excerpt_is_the_first_lines_of_the_table():
    text = "**Warning: x.**\n\n## MT-Bench (judge: j)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\nnotes\n"
    assert _assets().excerpt_of(text) == "**Warning: x.**\n\n**MT-Bench (judge: j)**\n\n| a | b |\n|---|---|\n" \
                                         "| 1 | 2 |\n| 3 | 4 |\n"
