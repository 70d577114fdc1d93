"""The report's judge-free half: the Base models table (--base-eval) and the held-out columns (--heldout),
each with a paired bootstrap CI of the difference from the same-size scratch model, in every report file,
and the judge-check warning that names the measures that do separate the models."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from conftest import write_jsonl

from align.cli import main
from judges.questions import load_questions
from judges.stats import paired_ratio_difference

QS = [q["question_id"] for q in load_questions()[:12]]
S, E = "135M-scratch", "135M-pretrained"
HOSTILE = '<img src=x onerror="document.title=1">'


def _single(model, qid, turn, score=5):
    return {"question_id": qid, "model": model, "judge": ["tiny", "single-v1"], "user_prompt": "p",
            "judgment": f"Rating: [[{score}]]", "score": score, "turn": turn, "tstamp": 1}


def _base_eval(folder, accuracy: list[float], loglik: list[float]):
    """A base_eval.json as `align eval` writes it: 12 questions and 12 documents of 10 words each."""
    items = {"demo_mc/acc": {str(i): a for i, a in enumerate(accuracy)},
             "heldout_text/word_perplexity": {str(i): {"loglikelihood": ll, "words": 10} for i, ll in
                                              enumerate(loglik)},
             f"{HOSTILE}/acc": {"0": 1.0}}
    ppl = math.exp(-sum(loglik) / (10 * len(loglik)))
    measures = {"demo_mc/acc": {"value": float(np.mean(accuracy)), "stderr": 0.1, "n": len(accuracy)},
                "heldout_text/word_perplexity": {"value": ppl, "stderr": None, "n": len(loglik)},
                f"{HOSTILE}/acc": {"value": 1.0, "stderr": None, "n": 1}}
    folder.mkdir(parents=True)
    (folder / "base_eval.json").write_text(json.dumps({"measures": measures, "items": items}))
    return folder


def _heldout(folder, kind: str, values: list[float]):
    folder.mkdir(parents=True)
    if kind == "sft":
        rows = {str(i): {"nll": v * 20, "tokens": 20} for i, v in enumerate(values)}
        measures = {"loss": {"value": float(np.mean(values)), "n": len(values), "tokens": 20 * len(values)}}
    else:
        rows = {str(i): {"correct": float(v > 0), "margin": v} for i, v in enumerate(values)}
        measures = {"preference_accuracy": {"value": float(np.mean([v > 0 for v in values])), "n": len(values)},
                    "reward_margin": {"value": float(np.mean(values)), "n": len(values)}}
    (folder / "heldout.json").write_text(json.dumps({"kind": kind, "measures": measures, "rows": rows}))
    return folder


def _report(tmp_path, better: bool):
    """Both models judged 5 everywhere, their controls too (the judge check cannot separate them)."""
    rows = [_single(m, q, t) for m in (S, E, f"{S}@mismatched", f"{E}@mismatched") for q in QS for t in (1, 2)]
    judgments = write_jsonl(tmp_path / "j.jsonl", rows)
    series = tmp_path / "series.yaml"
    series.write_text(f"models:\n  - {{name: {S}, size: 135M, construction: scratch}}\n"
                      f"  - {{name: {E}, size: 135M, construction: pretrained}}\n")
    rng = np.random.default_rng(0)
    scratch_acc, scratch_ll = [float(i % 4 == 0) for i in range(12)], list(-100 + rng.normal(0, 3, 12))
    good_acc = [1.0 if better else a for a in scratch_acc]
    good_ll = [ll + 60 for ll in scratch_ll] if better else scratch_ll
    scratch_loss, scratch_margin = list(10 + rng.normal(0, 0.2, 12)), list(rng.normal(0, 0.1, 12))
    good_margin = [abs(v) + 1 if better else v for v in scratch_margin]
    args = ["--base-eval", f"{S}={_base_eval(tmp_path / 'bs', scratch_acc, scratch_ll)}",
            "--base-eval", f"{E}={_base_eval(tmp_path / 'be', good_acc, good_ll)}",
            "--heldout", f"{S}={_heldout(tmp_path / 'hs1', 'sft', scratch_loss)}",
            "--heldout", f"{S}={_heldout(tmp_path / 'hs2', 'dpo', scratch_margin)}",
            "--heldout", f"{E}={_heldout(tmp_path / 'he1', 'sft', [v - 7 if better else v for v in scratch_loss])}",
            "--heldout", f"{E}={_heldout(tmp_path / 'he2', 'dpo', good_margin)}"]
    out = tmp_path / "report"
    assert main(["mtbench", "report", "--input-file", str(judgments), "--series", str(series), "--out-dir", str(out),
                 "--bootstrap", "1000", *args]) == 0
    return out, json.loads((out / "summary.json").read_text())


def test_clearly_better_model_separates_without_the_judge(tmp_path):
    out, summary = _report(tmp_path, better=True)
    delta = summary["judge_free_delta"][E]
    assert set(summary["judge_free_delta"]) == {E}  # only non-scratch models have a baseline
    for measure, sign in (("demo_mc/acc", 1), ("heldout_text/word_perplexity", -1), ("loss", -1),
                          ("preference_accuracy", 1), ("reward_margin", 1)):
        d = delta[measure]
        assert d["n"] == 12 and d["baseline"] == S
        assert sign * d["ci"][0] > 0 and sign * d["ci"][1] > 0, (measure, d)  # the CI excludes 0
        assert d["ci"][0] <= d["delta"] <= d["ci"][1]
    assert delta["demo_mc/acc"]["delta"] == pytest.approx(0.75)  # 12/12 vs 3/12
    assert delta["loss"]["delta"] == pytest.approx(-7)
    assert summary["base_eval"][S]["demo_mc/acc"] == {"value": 0.25, "stderr": 0.1, "n": 12}
    assert summary["heldout"][E]["loss"]["n"] == 12 and "preference_accuracy" in summary["heldout"][E]
    # the judge's check failed (every score 5), the judge-free measures did not: the warning says both
    warning = summary["judge_check_warning"]
    assert "not evidence" in warning and "these measures are evidence" in warning
    assert f"{E} vs {S} on " in warning and "demo_mc/acc" in warning and "loss" in warning
    md = (out / "table.md").read_text()
    assert md.startswith(warning) and "## Base models" in md and "Held-out loss" in md
    table = {r["model"]: r for r in csv.DictReader((out / "table.csv").open())}
    assert float(table[E]["base:demo_mc/acc:delta"]) == pytest.approx(0.75)
    assert float(table[E]["heldout:loss"]) == pytest.approx(float(np.mean([v["value"] for v in [
        summary["heldout"][E]["loss"]]])))
    assert table[S]["base:demo_mc/acc:delta"] == ""  # the baseline itself has no difference
    tex = (out / "table.tex").read_text()
    assert "Base models" in tex and "demo\\_mc acc" in tex
    page = (out / "report.html").read_text()
    assert 'id="base-table"' in page and 'id="base-delta-table"' in page and "Held-out loss" in page
    assert HOSTILE not in page and "&lt;img src=x" in page  # a task name from a file is text, never markup


def test_identical_models_give_a_ci_containing_zero_and_no_evidence_claim(tmp_path):
    _, summary = _report(tmp_path, better=False)
    for measure, d in summary["judge_free_delta"][E].items():
        assert d["delta"] == pytest.approx(0)
        if d["n"] < 10:  # one item: no interval at all, as for MT-Bench
            assert d["ci"] == [None, None], (measure, d)
        else:
            assert d["ci"][0] <= 0 <= d["ci"][1], (measure, d)
    assert "these measures are evidence" not in summary["judge_check_warning"]


def test_perplexity_difference_is_a_paired_ratio_estimator():
    """exp(-sum ll / sum words) recomputed on each resample, the same documents for both models."""
    model = {str(i): (-20.0 * (i + 1), 10 * (i + 1)) for i in range(12)}  # ll/word -2 -> ppl e^2
    base = {str(i): (-30.0 * (i + 1), 10 * (i + 1)) for i in range(12)}  # ll/word -3 -> ppl e^3
    result = paired_ratio_difference(model, base, lambda x: np.exp(-x), n_boot=500)
    assert result.mean == pytest.approx(math.exp(2) - math.exp(3))
    # every document has the same per-word log-likelihood: every resample gives the same difference
    assert result.ci_low == pytest.approx(result.mean) and result.ci_high == pytest.approx(result.mean)


def test_base_eval_for_a_model_not_in_the_table_is_one_line(tmp_path, capsys):
    judgments = write_jsonl(tmp_path / "j.jsonl", [_single(S, q, t) for q in QS for t in (1, 2)])
    folder = _base_eval(tmp_path / "b", [1.0] * 12, [-1.0] * 12)
    with pytest.raises(SystemExit) as exit_:
        main(["mtbench", "report", "--input-file", str(judgments), "--out-dir", str(tmp_path / "r"),
              "--base-eval", f"other={folder}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--base-eval: other: not a model of the table" in err[0]
    with pytest.raises(SystemExit) as exit_:
        main(["mtbench", "report", "--input-file", str(judgments), "--out-dir", str(tmp_path / "r"),
              "--heldout", str(folder)])
    assert exit_.value.code == 2 and not (tmp_path / "r" / "table.md").exists()
    assert "expected NAME=DIR" in capsys.readouterr().err
