"""`align mtbench report` replaces its report whole or not at all, and names a local judge by its
directory, not by where it lies on this machine."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from conftest import write_jsonl
from test_report import _j

from align.cli import main
from align.plumbing.file_set import replaced_together

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


def _report(judgments: Path, out: Path, *extra: str) -> int:
    return main(["mtbench", "report", "--input-file", str(judgments), "--out-dir", str(out), "--bootstrap", "100",
                 *extra])


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_report_that_fails_part_way_leaves_the_previous_one_whole(tmp_path, monkeypatch, capsys):
    import judges.reporting.command

    judgments = _local_judgments(tmp_path)
    out = tmp_path / "report"
    assert _report(judgments, out) == 0
    (out / "notes.txt").write_text("mine, not the report's")
    before = _files(out)
    capsys.readouterr()

    def disk_full(*args, **kwargs):  # the tables and summary are written by now; the page is not
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(judges.reporting.command, "write_html", disk_full)
    rows = [_j("2B-expanded", q, t, 9, 2, judge=LOCAL_JUDGE) for q in (81, 82) for t in (1, 2)]
    write_jsonl(tmp_path / "newer.jsonl", [json.loads(line) for line in judgments.read_text().splitlines()] + rows)
    assert _report(tmp_path / "newer.jsonl", out) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "previous report" in err, err
    assert _files(out) == before  # byte for byte, and nothing staged left behind
    assert sorted(p.name for p in out.iterdir()) == sorted(before)


def test_a_first_report_that_fails_leaves_no_folder(tmp_path, monkeypatch, capsys):
    import judges.reporting.command

    monkeypatch.setattr(judges.reporting.command, "write_run_card", lambda *a, **k: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device")))
    assert _report(_local_judgments(tmp_path), tmp_path / "new" / "report") == 1
    assert not (tmp_path / "new" / "report").exists()


def test_a_new_report_replaces_every_file_of_the_previous_one(tmp_path, capsys):
    out = tmp_path / "report"
    assert _report(_local_judgments(tmp_path), out) == 0
    (out / "notes.txt").write_text("kept")
    pairs = write_jsonl(tmp_path / "j_pair.jsonl", [
        {"question_id": 81, "model_1": "a", "model_2": "b", "judge": ["gpt-4", "pair-v2"], "g1_winner": "model_1",
         "g2_winner": "model_1", "turn": 1, "tstamp": 1}])
    assert _report(pairs, out) == 0
    # pairwise only: no single-answer table, so the previous table.csv/.tex and chart go with the old report
    names = {p.name for p in out.iterdir()}
    assert not names & {"table.csv", "table.tex", "categories.png"}, names
    assert {"notes.txt", "report.html", "summary.json", "table.md"} <= names
    assert not [n for n in names if n.startswith(".")]  # no staging folder left
    assert "Pairwise" in (out / "table.md").read_text() and (out / "notes.txt").read_text() == "kept"


def test_a_failure_while_swapping_puts_the_previous_files_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a.txt", "b.txt"):
        (out / name).write_text(f"old {name}")
    real_replace, calls = os.replace, []

    def third_rename_fails(src, dst):
        calls.append(src)
        if len(calls) == 3:  # a.txt and b.txt moved aside; moving the first new file in fails
            raise OSError(errno.EIO, "I/O error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", third_rename_fails)
    with pytest.raises(OSError), replaced_together(out, ["a.txt", "b.txt"]) as staging:
        (staging / "a.txt").write_text("new a")
    monkeypatch.undo()
    assert _files(out) == {"a.txt": b"old a.txt", "b.txt": b"old b.txt"}


def test_a_directory_where_a_report_file_goes_is_refused(tmp_path, capsys):
    out = tmp_path / "report"
    (out / "report.html").mkdir(parents=True)
    (out / "report.html" / "precious").write_text("x")
    with pytest.raises(SystemExit) as exit_:
        _report(_local_judgments(tmp_path), out)
    assert exit_.value.code == 2 and "report.html is a directory" in capsys.readouterr().err
    assert (out / "report.html" / "precious").read_text() == "x"
