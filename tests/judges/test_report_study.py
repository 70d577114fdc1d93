"""`align mtbench report --study FILE` (issue 30): the report reads a study table (name, size, construction,
baseline per entry), as `align series` writes it, never the series file; `--series FILE` on the align command
line builds the same table (align.series.study), so both give the same report, byte for byte."""

from __future__ import annotations

import json

import pytest
from conftest import one_line_exit_2, write_jsonl

from align.cli import main

MODELS = [("1B-scratch", "1B", "scratch"), ("1B-grown", "1B", "expanded"), ("2B-scratch", "2B", "scratch"),
          ("2B-grown", "2B", "expanded")]


@pytest.fixture
def inputs(tmp_path):
    rows = [{"question_id": q, "model": name, "judge": ["gpt-4", "single-v1"], "user_prompt": "p", "judgment": "x",
             "score": (q + t + i) % 10 + 1, "turn": t, "tstamp": 1}
            for i, (name, _, _) in enumerate(MODELS) for q in (81, 82, 101) for t in (1, 2)]
    judgments = write_jsonl(tmp_path / "j.jsonl", rows)
    series = tmp_path / "series.yaml"
    series.write_text("models:\n" + "".join(f"  - {{name: {n}, size: {s}, construction: {c}}}\n" for n, s, c in MODELS)
                      + "  - {name: 4B-ancestor, size: 4B, construction: scratch, post_train: false}\n")
    return tmp_path, judgments, series


def report(tmp_path, judgments, name: str, *flags: str) -> dict[str, bytes]:
    out = tmp_path / name
    assert main(["mtbench", "report", "--input-file", str(judgments), "--out-dir", str(out), "--bootstrap", "200",
                 "--min-ci-questions", "3", *flags]) == 0
    return {f: (out / f).read_bytes() for f in ("table.md", "table.csv", "table.tex", "summary.json", "report.html")}


def test_series_and_study_give_the_same_report(inputs, capsys):
    from align.series.study import study_of_series_file

    tmp_path, judgments, series = inputs
    table = study_of_series_file(str(series))
    assert [(e["name"], e["baseline"]) for e in table["entries"]] == [
        ("1B-scratch", None), ("1B-grown", "1B-scratch"), ("2B-scratch", None), ("2B-grown", "2B-scratch")]
    study = tmp_path / "study.json"
    study.write_text(json.dumps(table))
    assert report(tmp_path, judgments, "from-series", "--series", str(series)) == \
        report(tmp_path, judgments, "from-study", "--study", str(study))
    summary = json.loads((tmp_path / "from-study" / "summary.json").read_text())
    assert {r["name"]: r["baseline"] for r in summary["rows"]} == {e["name"]: e["baseline"] for e in table["entries"]}


def test_the_baseline_is_the_tables_not_a_rule(inputs):
    """A table may compare with another baseline than the same-size scratch: the report follows it."""
    tmp_path, judgments, _ = inputs
    study = tmp_path / "study.json"
    study.write_text(json.dumps({"entries": [
        {"name": n, "size": s, "construction": c, "baseline": "1B-scratch" if n == "2B-grown" else None}
        for n, s, c in MODELS]}))
    report(tmp_path, judgments, "out", "--study", str(study))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {r["name"]: r["baseline"] for r in summary["rows"]}["2B-grown"] == "1B-scratch"


@pytest.mark.parametrize("content, message", [
    ("not json", "--study {study}: cannot read a study table"),
    ('{"rows": []}', '--study {study}: expected {{"entries": [...]}} with at least one entry'),
    ('{"entries": [{"name": "a", "size": "1B"}]}', "--study {study}: entries[0] needs name, size and construction"),
    ('{"entries": [{"name": "a", "size": "1B", "construction": "x", "baseline": "b"}]}',
     "--study {study}: entries[0] (a): baseline 'b' is not an entry"),
])
def test_a_bad_study_table_is_one_line(inputs, capsys, content, message):
    tmp_path, judgments, _ = inputs
    study = tmp_path / "study.json"
    study.write_text(content)
    err = one_line_exit_2(["mtbench", "report", "--input-file", str(judgments), "--out-dir", str(tmp_path / "out"),
                           "--study", str(study)], capsys)
    assert message.format(study=study) in err
    assert not (tmp_path / "out" / "table.md").exists()


def test_series_and_study_together_are_refused(inputs, capsys):
    tmp_path, judgments, series = inputs
    err = one_line_exit_2(["mtbench", "report", "--input-file", str(judgments), "--out-dir", str(tmp_path / "out"),
                           "--series", str(series), "--study", str(tmp_path / "study.json")], capsys)
    assert "--series and --study: give one" in err
