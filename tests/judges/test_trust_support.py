"""Controlled figures are read only where the data reaches equal length / style, confounding of length and
model is warned about, no CI comes from too few questions (issue 29.6), and each figure carries the name of
what it is (issue 29.7). Simulated data with known truth, seeded."""

from __future__ import annotations

import csv
import json
import math
import random

import numpy as np
import pytest
from conftest import write_jsonl

from align.cli import main
from judges.trust.controlled import pair_controls
from judges.trust.length_control import length_controlled_win_rate
from judges.trust.matches import JudgedMatch
from judges.trust.single_length import length_adjusted_difference
from judges.trust.style_control import equal_style_win_rate
from judges.trust.support import diverges, longer_share, unsupported

N_BOOT = 100
SCRATCH, EXPANDED = "m-2b-scratch", "m-2b-expanded"
QIDS = range(81, 101)


def _matches(share_longer: float, seed: int = 0, questions: int = 80) -> list[JudgedMatch]:
    """A judge that likes length (logit = 2 tanh(diff / 300)), no model effect: the truth at equal length is 50%.
    model_1's answer is the longer in `share_longer` of the matches."""
    rng = random.Random(seed)
    out = []
    for q in range(questions):
        for turn in (1, 2):
            long, short = sorted((rng.randint(200, 1500), rng.randint(200, 1500)), reverse=True)
            len_1, len_2 = (long, short) if rng.random() < share_longer else (short, long)
            p = 1 / (1 + math.exp(-2 * math.tanh((len_1 - len_2) / 300)))
            out.append(JudgedMatch(q, turn, "model_1" if rng.random() < p else "model_2", "a " * (len_1 // 2),
                             "b " * (len_2 // 2)))
    return out


def test_rates_are_not_read_where_one_model_is_nearly_always_longer():
    """~99% of matches with model_1 longer: the fits' reading at equal length is an extrapolation (the issue's
    simulation: CIs excluded the true 50% in most draws); no value, the reason instead."""
    games = _matches(0.995)
    assert longer_share([len(m.text_1) - len(m.text_2) for m in games]) == pytest.approx(0.9875)  # 158 of 160
    for result in (length_controlled_win_rate(games, n_boot=N_BOOT), equal_style_win_rate(games, n_boot=N_BOOT)):
        assert result["value"] is None and result["ci"] == [None, None]
        assert result["not_estimable"].startswith("extrapolation: the length difference (model minus baseline) "
                                                  "is above 0 in 98.8% of matches")
    balanced = _matches(0.5)
    for result in (length_controlled_win_rate(balanced, n_boot=N_BOOT), equal_style_win_rate(balanced, n_boot=N_BOOT)):
        assert result["not_estimable"] is None and result["ci"][0] < 0.5 < result["ci"][1]


def test_confounded_pairs_are_warned_and_far_from_raw_is_flagged():
    """model_1 longer in ~90% of matches: the rates stand (they have support) with a confounding warning."""
    games = _matches(0.9, seed=1)
    answers = {m: {} for m in ("x", "y")}
    judged = {}
    for i, g in enumerate(games):
        qid, turn = 1000 + i, 1
        answers["x"][qid] = {"choices": [{"turns": [g.text_1]}]}
        answers["y"][qid] = {"choices": [{"turns": [g.text_2]}]}
        verdict = g.winner
        judged[("x", "y", qid, turn)] = {"g1_winner": verdict, "g2_winner": verdict}
    control = pair_controls(judged, answers, n_boot=N_BOOT, seed=0, min_questions=10)[("x", "y")]
    assert 0.85 < control["model_1_longer_share"] < 0.95
    assert control["length_controlled_win_rate"]["value"] is not None
    assert any("length and model are confounded" in w and "(warned above 80% or below 20%)" in w
               for w in control["warnings"])
    # AlpacaEval's extreme-change rule (get_is_extreme_changes, abs 10 points, rel 4): from 20%, below 10% or
    # above 40% is flagged; from 50%, outside 37.5-62.5%
    assert diverges(0.2, 0.41) and diverges(0.2, 0.09) and not diverges(0.2, 0.39) and not diverges(0.2, 0.11)
    assert diverges(0.5, 0.37) and not diverges(0.5, 0.38) and not diverges(0.5, 0.62)
    assert unsupported({"length": [1, 2, 3] * 13 + [-1]}) is None  # 1 of 40 = 2.5% below 0: enough
    assert unsupported({"length": [1, 2, 3] * 14 + [-1]}) is not None


def test_equal_length_delta_is_not_read_two_million_characters_away():
    """The issue's case: every length difference ~2,000,000 characters; the OLS intercept at 0 printed -20120."""
    rng = np.random.default_rng(0)
    qids = range(81, 161)
    base_chars = {q: 800.0 for q in qids}
    model_chars = {q: 800.0 + 2_000_000 + rng.normal(0, 20_000) for q in qids}
    base_scores = {q: float(rng.integers(2, 5)) for q in qids}
    model_scores = {q: base_scores[q] + 4.3 + 0.00002 * (model_chars[q] - 2_000_800) + rng.normal(0, 0.3)
                    for q in qids}
    out = length_adjusted_difference(model_scores, base_scores, model_chars, base_chars)
    assert out["value"] is None and out["ci"] == [None, None]
    assert out["not_estimable"].startswith("extrapolation") and out["model_longer_share"] == 1.0
    assert out["length_difference_range"][0] > 1_900_000 and out["raw"] == pytest.approx(4.3, abs=0.2)


def _answers(model, lengths):
    return [{"question_id": q, "answer_id": f"{model}-{q}", "model_id": model,
             "choices": [{"index": 0, "turns": ["w " * (lengths[q, 1] // 2), "w " * (lengths[q, 2] // 2)]}],
             "tstamp": 0.0} for q in QIDS]


def _files(tmp_path, expanded_extra: int):
    """Single and pairwise judgments of two models; the expanded model writes `expanded_extra` more characters."""
    rng = random.Random(0)
    base = {(q, t): rng.randint(200, 1200) for q in QIDS for t in (1, 2)}
    lengths = {SCRATCH: base, EXPANDED: {k: v + expanded_extra + rng.randint(-100, 100) for k, v in base.items()}}
    answers = [write_jsonl(tmp_path / "answers" / f"{m}.jsonl", _answers(m, lengths[m])) for m in lengths]
    single = [{"question_id": q, "model": m, "judge": ["gpt-4", "single-v1"], "score": min(10, 2 + (m == EXPANDED)
               + rng.randint(0, 3)), "turn": t, "user_prompt": "p", "judgment": "[[x]]", "tstamp": 1.0}
              for m in lengths for q in QIDS for t in (1, 2)]
    pairs = [{"question_id": q, "model_1": EXPANDED, "model_2": SCRATCH, "g1_winner": w, "g2_winner": w,
              "judge": ["gpt-4", "pair-v2"], "turn": t, "tstamp": 1.0}
             for q in QIDS for t in (1, 2) for w in [rng.choice(["model_1", "model_2", "tie"])]]
    files = [write_jsonl(tmp_path / "gpt-4_single.jsonl", single), write_jsonl(tmp_path / "gpt-4_pair.jsonl", pairs)]
    series = tmp_path / "series.yaml"
    series.write_text(f"models:\n  - {{name: {SCRATCH}, size: 2B, construction: scratch}}\n"
                      f"  - {{name: {EXPANDED}, size: 2B, construction: expanded}}\n")
    return files, answers, series


def test_report_prints_no_extrapolated_reading_and_names_each_figure(tmp_path):
    files, answers, series = _files(tmp_path, expanded_extra=20_000)
    out = tmp_path / "report"
    assert main(["mtbench", "report", "--input-file", *map(str, files), "--answer-file", *map(str, answers),
                 "--series", str(series), "--out-dir", str(out), "--bootstrap", "200"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    adjusted = next(r for r in summary["rows"] if r["name"] == EXPANDED)["length_adjusted"]
    assert adjusted["value"] is None and adjusted["not_estimable"].startswith("extrapolation")
    pair = summary["pairwise"]["pairs"][0]
    assert "style_controlled_win_rate" not in pair  # the old name said Arena-Hard-Auto's; it was not
    for key in ("length_controlled_win_rate", "equal_style_win_rate"):
        assert pair[key] is None and pair[f"{key}_ci"] == [None, None]
        assert pair[f"{key}_not_estimable"].startswith("extrapolation")
    assert pair["model_1_longer_share"] == 1.0 and any("confounded" in w for w in pair["control_warnings"])
    md = (out / "table.md").read_text()
    assert "– (extrapolation)" in md and "Δ at equal length not estimable" in md
    assert "Equal-style win rate [95% CI]" in md and "SC win rate" not in md and "100% (confounded)" in md
    assert "fit_contextual_bt" in md and "not Arena-Hard-Auto's number" in md and "fixed C=100" in md
    table = {r["model"]: r for r in csv.DictReader((out / "table.csv").open())}
    assert table[EXPANDED]["diff_equal_length"] == "" and table[EXPANDED]["diff_equal_length_ci_low"] == ""
    assert table[EXPANDED]["diff_equal_length_not_estimable"].startswith("extrapolation")
    assert float(table[EXPANDED]["model_longer_share"]) == 1.0
    page = (out / "report.html").read_text()
    assert "Equal-style win rate" in page and "control-warning" in page and "fit_contextual_bt" in page


def test_min_ci_questions_below_the_floor_is_refused(tmp_path, capsys):
    files, _, series = _files(tmp_path, expanded_extra=0)
    for value in ("1", "2"):  # one question made a zero-width "95% CI"
        with pytest.raises(SystemExit) as exc:
            main(["mtbench", "report", "--input-file", str(files[0]), "--out-dir", str(tmp_path / "r"),
                  "--min-ci-questions", value])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("\n") == 1 and "--min-ci-questions" in err and "at least 3" in err
    assert not (tmp_path / "r").exists()
    assert main(["mtbench", "report", "--input-file", str(files[0]), "--series", str(series), "--out-dir",
                 str(tmp_path / "r"), "--bootstrap", "200", "--min-ci-questions", "3"]) == 0
