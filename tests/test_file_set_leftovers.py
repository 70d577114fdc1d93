"""A report killed with kill -9 leaves `.staging-*` / `.previous-*` folders in its --out-dir: the next run
(holding the folder's lock) removes them, and puts back previous files a mid-swap crash left aside."""

from __future__ import annotations

from pathlib import Path

from align.plumbing.file_set import replaced_together
from align.plumbing.locks import output_lock

OWNED = ("report.md", "table.csv")


def _write_report(out: Path, text: str) -> None:
    with output_lock(out, "--out-dir"), replaced_together(out, OWNED) as staging:
        for name in OWNED:
            (staging / name).write_text(text)


def test_stale_staging_and_emptied_previous_folders_are_removed(tmp_path):
    out = tmp_path / "out"
    _write_report(out, "one")
    (out / ".staging-abc12345").mkdir()
    (out / ".staging-abc12345" / "report.md").write_text("half")
    (out / ".previous-zz9_x8y7").mkdir()
    (out / ".previous-zz9_x8y7" / "report.md").write_text("one-before")  # out has its newer report.md
    (out / ".staging-mine").mkdir()  # not a name we make: someone else's, kept
    _write_report(out, "two")
    assert sorted(p.name for p in out.iterdir()) == [".staging-mine", "report.md", "table.csv"]
    assert (out / "report.md").read_text() == "two"


def test_files_a_crash_left_aside_are_restored_not_deleted(tmp_path):
    out = tmp_path / "out"
    _write_report(out, "one")
    aside = out / ".previous-q1w2e3r4"
    aside.mkdir()
    (out / "table.csv").rename(aside / "table.csv")  # killed after moving table.csv aside
    (out / "notes.txt").write_text("the user's")
    with output_lock(out, "--out-dir"), replaced_together(out, OWNED) as staging:
        assert (out / "table.csv").read_text() == "one" and not aside.exists()
        (staging / "report.md").write_text("two")
    assert (out / "notes.txt").read_text() == "the user's"


def test_leftovers_are_kept_when_the_folder_lock_is_not_ours(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".staging-abc12345").mkdir()
    with replaced_together(out, OWNED) as staging:  # no output lock held: nothing proves them stale
        (staging / "report.md").write_text("x")
    assert (out / ".staging-abc12345").is_dir()
