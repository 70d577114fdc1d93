"""`align mtbench report` replaces its report whole or not at all, and names a local judge by its
directory, not by where it lies on this machine."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import write_jsonl
from test_report import _j

from align.cli import main

LOCAL_JUDGE = "/home/someone/private/checkpoints/judge-7b"


def _local_judgments(tmp_path: Path) -> Path:
    rows = [_j(m, q, t, s, 1, judge=LOCAL_JUDGE) for m, s in (("2B-scratch", 4), ("2B-expanded", 6))
            for q in (81, 82) for t in (1, 2)]
    return write_jsonl(tmp_path / "judge-7b_single.jsonl", rows)


def test_local_judge_is_named_by_its_directory(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["mtbench", "report", "--input-file", str(_local_judgments(tmp_path)), "--out-dir", str(out),
                 "--bootstrap", "100"]) == 0
    printed = capsys.readouterr().out
    page = (out / "report.html").read_text()
    assert "<h1>MT-Bench (judge: judge-7b)</h1>" in page
    assert json.loads((out / "summary.json").read_text())["judge"] == "judge-7b"
    assert "judge-7b" in printed
    for written in [printed] + [p.read_text(errors="replace") for p in out.iterdir()]:
        assert "/home/someone" not in written
