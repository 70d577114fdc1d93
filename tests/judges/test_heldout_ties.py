"""Preference accuracy and ties (issue 29.8): TRL's rule counts a tie as wrong, so a policy equal to its
reference showed "Pref. acc. 0.00". The tie share and the accuracy with ties as half stand beside it, and
TRL's figure keeps its name (the held-out tests compare it with DPOTrainer's eval metrics)."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import preference_rows, write_jsonl

from align.cli import main

S, E = "2b-scratch", "2b-expanded"


def test_policy_equal_to_its_reference_ties_every_pair(tiny_llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "prefs.jsonl", preference_rows(4))
    out = tmp_path / "dpo"
    assert main(["heldout", "--kind", "dpo", "--model-path", str(tiny_llama_dir), "--ref-model-path",
                 str(tiny_llama_dir), "--data", str(data), "--rows", "4", "--out", str(out)]) == 0
    result = json.loads((out / "heldout.json").read_text())
    measures = result["measures"]
    assert measures["preference_accuracy"] == {"value": 0.0, "n": 4}  # TRL's rewards/accuracies: ties are wrong
    assert measures["preference_tie_share"] == {"value": 1.0, "n": 4}
    assert measures["preference_accuracy_ties_half"] == {"value": 0.5, "n": 4}
    assert all(row["tie"] == 1.0 and row["correct"] == 0.0 and row["margin"] == 0.0 for row in result["rows"].values())


def _heldout(folder, correct: list[float], tie: list[float]):
    folder.mkdir(parents=True)
    rows = {str(i): {"correct": c, "tie": t, "margin": 0.0 if t else (1.0 if c else -1.0)}
            for i, (c, t) in enumerate(zip(correct, tie))}
    n = len(rows)
    measures = {"preference_accuracy": {"value": sum(correct) / n, "n": n},
                "preference_tie_share": {"value": sum(tie) / n, "n": n},
                "preference_accuracy_ties_half": {"value": (sum(correct) + sum(tie) / 2) / n, "n": n},
                "reward_margin": {"value": 0.0, "n": n}}
    (folder / "heldout.json").write_text(json.dumps({"kind": "dpo", "measures": measures, "rows": rows}))
    return folder


def test_report_shows_ties_beside_trls_accuracy(tmp_path):
    """The expanded model equals its reference (every pair a tie); scratch ranks 6 of 12 pairs right."""
    judgments = write_jsonl(tmp_path / "j.jsonl", [
        {"question_id": q, "model": m, "judge": ["tiny", "single-v1"], "user_prompt": "p", "judgment": "[[5]]",
         "score": 5, "turn": t, "tstamp": 1} for m in (S, E) for q in range(81, 93) for t in (1, 2)])
    series = tmp_path / "series.yaml"
    series.write_text(f"models:\n  - {{name: {S}, size: 2B, construction: scratch}}\n"
                      f"  - {{name: {E}, size: 2B, construction: expanded}}\n")
    scratch = _heldout(tmp_path / "hs", [float(i % 2) for i in range(12)], [0.0] * 12)
    tied = _heldout(tmp_path / "he", [0.0] * 12, [1.0] * 12)
    out = tmp_path / "report"
    assert main(["mtbench", "report", "--input-file", str(judgments), "--series", str(series), "--out-dir", str(out),
                 "--bootstrap", "200", "--heldout", f"{S}={scratch}", "--heldout", f"{E}={tied}"]) == 0
    md = (out / "table.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| Size"))
    assert "Pref. acc. (TRL: tie = wrong)" in header and "Pref. ties" in header and "Pref. acc. (tie = ½)" in header
    assert "a tie counts as wrong" in md and "counts a tie as half" in md
    cells = dict(zip([c.strip() for c in header.split("|")],
                     [c.strip() for c in next(line for line in md.splitlines() if f"| {E} |" in line).split("|")]))
    assert cells["Pref. acc. (TRL: tie = wrong)"] == "0.00" and cells["Pref. ties"] == "1.00"
    assert cells["Pref. acc. (tie = ½)"] == "0.50"
    assert cells["Δ Pref. acc. (tie = ½) [95% CI]"].startswith("+0.00 ")  # 0.5 vs 0.5: no difference
    summary = json.loads((out / "summary.json").read_text())
    assert summary["heldout"][E]["preference_tie_share"] == {"value": 1.0, "n": 12}
    assert summary["judge_free_delta"][E]["preference_accuracy_ties_half"]["delta"] == pytest.approx(0.0)
    table = {r["model"]: r for r in csv.DictReader((out / "table.csv").open())}
    assert float(table[E]["heldout:preference_accuracy"]) == 0.0
    assert float(table[E]["heldout:preference_tie_share"]) == 1.0
