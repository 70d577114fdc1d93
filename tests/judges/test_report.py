"""`align mtbench report` against numbers computed by hand from a small judgment file."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import write_jsonl

from align.cli import main
from judges.stats import bootstrap_mean_ci, paired_difference, sign_flip_p_value

# Questions: 81 and 82 are writing, 101 is reasoning (packaged MT-Bench categories).
#   2B-scratch : q81 4, 6 | q82 2, -1 (unparsable) | q101 5, 3
#   2B-expanded: q81 7 (re-judged; the older 1 comes later in the file), 5 | q82 6, 8 | q101 9, turn 2 failed
# Hand-computed:
#   scratch : valid 4,6,2,5,3 -> 20/5 = 4.00; turn 1 (4+2+5)/3 = 3.67; turn 2 (6+3)/2 = 4.50; writing 12/3 = 4.00,
#             reasoning 8/2 = 4.00; judged 5, invalid 1, missing 0. Per question: 5, 2, 4.
#   expanded: valid 7,5,6,8,9 -> 35/5 = 7.00; turn 1 22/3 = 7.33; turn 2 13/2 = 6.50; writing 26/4 = 6.50,
#             reasoning 9.00; judged 5, invalid 0, missing 1 (failed). Per question: 6, 7, 9.
#   paired differences 1, 5, 5 -> mean 11/3 = 3.67; sign-flip p: |sum| >= 11 in 2 of 8 sign patterns -> 0.25.
#   Bootstrap CIs are pinned by the tails: a resample of one question three times has probability
#   1/27 = 3.7% > 2.5%, so scratch's CI is [2.00, 5.00] (all q82 / all q81) and the paired CI [1.00, 5.00]
#   (all q81 / all 5s, probability 8/27).


def _j(model, qid, turn, score, tstamp, judge="gpt-4"):
    return {"question_id": qid, "model": model, "judge": [judge, "single-v1"], "user_prompt": "p",
            "judgment": f"Rating: [[{score}]]", "score": score, "turn": turn, "tstamp": tstamp}


@pytest.fixture
def judgments(tmp_path):
    S, E = "2B-scratch", "2B-expanded"
    rows = [_j(S, 81, 1, 4, 1), _j(S, 81, 2, 6, 1), _j(S, 82, 1, 2, 1), _j(S, 82, 2, -1, 1),
            _j(S, 101, 1, 5, 1), _j(S, 101, 2, 3, 1),
            _j(E, 81, 1, 7, 5), _j(E, 81, 2, 5, 1), _j(E, 82, 1, 6, 1), _j(E, 82, 2, 8, 1),
            _j(E, 101, 1, 9, 1),
            _j(E, 81, 1, 1, 2),  # stale: an earlier judgment of the same slot, written later in the file
            _j("not-in-series", 81, 1, 10, 1)]
    path = write_jsonl(tmp_path / "gpt-4_single.jsonl", rows)
    write_jsonl(tmp_path / "gpt-4_single.jsonl.failed.jsonl",
                [{"question_id": 101, "model": E, "turn": 2, "error": "HTTP 500", "tstamp": 3},
                 {"question_id": 82, "model": S, "turn": 2, "error": "HTTP 500", "tstamp": 0}])  # redone since
    series = tmp_path / "series.yaml"
    series.write_text("models:\n"
                      f"  - {{name: {S}, size: 2B, construction: scratch, recipe: ignored}}\n"
                      f"  - {{name: {E}, size: 2B, construction: expanded, grown_from: 1B}}\n")
    return path, series


def test_report_matches_hand_computed_numbers(judgments, tmp_path, capsys):
    path, series = judgments
    out = tmp_path / "report"
    # Three questions: below the default minimum for an interval, so the hand-computed CIs need the floor lowered.
    assert main(["mtbench", "report", "--input-file", str(path), "--out-dir", str(out), "--series", str(series),
                 "--bootstrap", "4000", "--seed", "1", "--min-ci-questions", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed == (out / "table.md").read_text()

    rows = {r["model"]: r for r in csv.DictReader((out / "table.csv").open())}
    assert list(rows) == ["2B-scratch", "2B-expanded"]  # series order; the unknown model is left out
    s, e = rows["2B-scratch"], rows["2B-expanded"]
    assert float(s["mtbench"]) == pytest.approx(4.0)
    assert float(s["turn1"]) == pytest.approx(11 / 3, abs=1e-6)
    assert float(s["turn2"]) == pytest.approx(4.5)
    assert (s["judged"], s["invalid"], s["missing"]) == ("5", "1", "0")
    assert float(s["cat_writing"]) == pytest.approx(4.0) and float(s["cat_reasoning"]) == pytest.approx(4.0)
    assert (float(s["ci_low"]), float(s["ci_high"])) == (2.0, 5.0)
    assert float(e["mtbench"]) == pytest.approx(7.0)
    assert float(e["turn1"]) == pytest.approx(22 / 3, abs=1e-6)
    assert float(e["turn2"]) == pytest.approx(6.5)
    assert (e["judged"], e["invalid"], e["missing"]) == ("5", "0", "1")
    assert float(e["cat_writing"]) == pytest.approx(6.5) and float(e["cat_reasoning"]) == pytest.approx(9.0)
    assert e["baseline"] == "2B-scratch" and s["baseline"] == ""
    assert float(e["diff"]) == pytest.approx(11 / 3, abs=1e-6)
    assert (float(e["diff_ci_low"]), float(e["diff_ci_high"])) == (1.0, 5.0)
    assert float(e["p_value"]) == pytest.approx(0.25)
    assert e["paired_n"] == "3"

    md = (out / "table.md").read_text()
    assert "| 2B | expanded | 2B-expanded | 7.00 | [" in md and "+3.67" in md and "0.250" in md
    tex = (out / "table.tex").read_text()
    assert "\\begin{tabular}" in tex and "2B-expanded & 7.00" in tex and "\\_" not in tex
    assert (out / "categories.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["judge"] == "gpt-4" and summary["rows"][1]["diff"]["p_value"] == pytest.approx(0.25)


def test_too_few_questions_show_no_interval(judgments, tmp_path, capsys):
    """Below --min-ci-questions (default 10) no CI is shown (not a zero-width one), and the table says why."""
    path, series = judgments
    out = tmp_path / "report"
    assert main(["mtbench", "report", "--input-file", str(path), "--out-dir", str(out), "--series", str(series),
                 "--bootstrap", "500"]) == 0
    rows = {r["model"]: r for r in csv.DictReader((out / "table.csv").open())}
    e = rows["2B-expanded"]
    assert (e["ci_low"], e["ci_high"], e["diff_ci_low"], e["diff_ci_high"]) == ("", "", "", "")
    assert e["questions"] == "3" and float(e["diff"]) == pytest.approx(11 / 3, abs=1e-6)  # the mean still stands
    md = (out / "table.md").read_text()
    assert "| 7.00 | – (n=3) |" in md and "+3.67 | – (n=3) |" in md
    assert "no interval is shown for fewer than 10 questions" in md
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"][1]["ci"] == [None, None] and summary["min_ci_questions"] == 10


def test_no_series_pairs_only_when_names_say_so(tmp_path, capsys):
    rows = [_j(m, q, t, sc, 1) for m, base in (("m-2b-scratch", 3), ("m-2b-expanded", 5), ("other", 4))
            for q in (81, 82) for t, sc in ((1, base), (2, base + 1))]
    rows = rows[:-1]  # `other` never got its q82 turn-2 judgment (a killed run): counted as missing
    path = write_jsonl(tmp_path / "j.jsonl", rows)
    assert main(["mtbench", "report", "--input-file", str(path), "--out-dir", str(tmp_path / "r"),
                 "--bootstrap", "500"]) == 0
    got = {r["model"]: r for r in csv.DictReader((tmp_path / "r" / "table.csv").open())}
    assert list(got) == ["m-2b-scratch", "m-2b-expanded", "other"]  # by size, scratch first, unsized last
    assert got["m-2b-expanded"]["baseline"] == "m-2b-scratch" and float(got["m-2b-expanded"]["diff"]) == 2.0
    assert got["other"]["baseline"] == "" and got["other"]["size"] == ""
    assert (got["other"]["judged"], got["other"]["missing"]) == ("3", "1") and got["m-2b-scratch"]["missing"] == "0"


@pytest.mark.parametrize("content, message", [
    ('{"question_id": 81, "model": "m", "turn": 1}\n', "score"),
    ('{"question_id": 81, "model_1": "a", "model_2": "b", "g1_winner": "A", "turn": 1}\n', "pairwise"),
    (json.dumps(_j("a", 81, 1, 5, 1)) + "\n" + json.dumps(_j("b", 81, 1, 5, 1, judge="claude")) + "\n",
     "different judges"),
])
def test_bad_judgment_files_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "j.jsonl"
    path.write_text(content)
    with pytest.raises(SystemExit) as exc:
        main(["mtbench", "report", "--input-file", str(path), "--out-dir", str(tmp_path / "r")])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_bad_series_exits_2(judgments, tmp_path, capsys):
    path, series = judgments
    series.write_text("models:\n  - {name: x, size: 2B}\n")
    with pytest.raises(SystemExit) as exc:
        main(["mtbench", "report", "--input-file", str(path), "--out-dir", str(tmp_path / "r"),
              "--series", str(series)])
    assert exc.value.code == 2 and "models[0]" in capsys.readouterr().err


def test_stats_edge_cases():
    assert sign_flip_p_value(np.zeros(5)) == 1.0
    assert sign_flip_p_value(np.ones(20), n_perm=2000) == pytest.approx(1 / 2001)  # Monte Carlo branch
    assert sign_flip_p_value(np.array([2.0, -2.0])) == 1.0
    low, high = bootstrap_mean_ci([[3.0, 3.0], [3.0]], n_boot=200)
    assert low == high == 3.0
    empty = paired_difference({1: 5.0}, {2: 4.0})
    assert empty.n == 0 and np.isnan(empty.mean)
