"""A disk that fills up while answers or judgments are appended (issue 24): the records before are
intact, no torn line is left behind, the command says so in one line, and a re-run resumes."""

from __future__ import annotations

import errno
import json

import pytest
from conftest import write_jsonl
from fakes.judge_server import FakeJudgeServer
from test_answer import QUESTIONS
from test_judge import _answers, _judge

import align.plumbing.files
from align.cli import main
from align.plumbing.errors import UserError
from align.plumbing.files import append_jsonl, read_jsonl


class FillingDisk:
    """Stands in for `open` in align.plumbing.files: after `room` appends, the next write puts half its bytes on
    disk and then fails with ENOSPC, as a write to a full disk does."""

    def __init__(self, room: int):
        self.room = room
        self.failures = 0

    def __call__(self, path, mode="r", *args, **kwargs):
        fh = open(path, mode, *args, **kwargs)
        return _Appending(fh, self) if "a" in mode else fh


class _Appending:
    def __init__(self, fh, disk: FillingDisk):
        self.fh, self.disk = fh, disk

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self.fh.close()
        if exc_type is None:
            self.disk.room -= 1

    def write(self, data):
        if self.disk.room > 0 or len(data) < 2:  # room left, or the newline that ends a torn tail's record
            return self.fh.write(data)
        self.fh.write(data[:len(data) // 2])
        self.fh.flush()
        self.disk.failures += 1
        raise OSError(errno.ENOSPC, "No space left on device")


def _one_error_line(err: str) -> None:
    errors = [line for line in err.splitlines() if line.startswith("error: ")]  # besides the progress bars
    assert len(errors) == 1 and "No space left on device" in errors[0] and "Traceback" not in err, err


def _lines_are_whole(path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), text[-80:]  # no torn tail
    return [json.loads(line) for line in text.splitlines()]


def test_append_on_a_full_disk_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "j.jsonl"
    append_jsonl(path, {"n": 1})
    before = path.read_bytes()
    monkeypatch.setattr(align.plumbing.files, "open", FillingDisk(room=0), raising=False)
    with pytest.raises(UserError) as err:
        append_jsonl(path, {"n": 2, "text": "x" * 100})
    assert "No space left on device" in str(err.value) and str(path) in str(err.value)
    assert path.read_bytes() == before  # no half record left behind
    monkeypatch.undo()
    append_jsonl(path, {"n": 3})
    assert [r["n"] for r in read_jsonl(path)] == [1, 3]


def test_judge_on_a_full_disk_keeps_what_it_wrote_and_a_rerun_resumes(tmp_path, monkeypatch, capsys):
    a = write_jsonl(tmp_path / "a.jsonl", _answers("a"))
    out = tmp_path / "j.jsonl"
    disk = FillingDisk(room=2)
    with FakeJudgeServer() as server:
        monkeypatch.setattr(align.plumbing.files, "open", disk, raising=False)
        with pytest.raises(SystemExit) as exc:
            _judge(server, [a], out, "--parallel", "1")
        assert exc.value.code == 2 and disk.failures == 1
        err = capsys.readouterr().err
        _one_error_line(err)
        assert len(_lines_are_whole(out)) == 2  # the two written before the disk filled
        monkeypatch.undo()
        assert _judge(server, [a], out, "--parallel", "1") == 0
    rows = _lines_are_whole(out)
    assert sorted((r["question_id"], r["turn"]) for r in rows) == [(q, t) for q in (81, 101, 111) for t in (1, 2)]
    captured = capsys.readouterr()
    assert "6 judgment(s): 4 new, 2 already done" in captured.out  # the re-run asked only for what was missing
    assert "torn" not in captured.err


def test_answers_on_a_full_disk_keep_what_was_written_and_a_rerun_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ALIGN_TEST_NO_KEY", raising=False)
    write_jsonl(tmp_path / "mt_bench" / "question.jsonl", QUESTIONS[:3])
    answers = tmp_path / "m.jsonl"
    disk = FillingDisk(room=1)
    with FakeJudgeServer() as server:
        argv = ["mtbench", "answer", "--backend", "openai", "--model-path", "m", "--model-id", "m",
                "--question-dir", str(tmp_path / "mt_bench"), "--api-key-env", "ALIGN_TEST_NO_KEY",
                "--max-new-token", "8", "--base-url", server.base_url, "--answer-file", str(answers),
                "--parallel", "1"]
        monkeypatch.setattr(align.plumbing.files, "open", disk, raising=False)
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and disk.failures == 1
        err = capsys.readouterr().err
        _one_error_line(err)
        assert len(_lines_are_whole(answers)) == 1
        monkeypatch.undo()
        assert main(argv) == 0
    assert sorted(r["question_id"] for r in _lines_are_whole(answers)) == [1, 2, 3]


def test_answer_file_sort_on_a_full_disk_is_one_line_and_keeps_the_records(tmp_path, monkeypatch, capsys):
    """The final sort rewrites the answer file (temp file + rename): a full disk leaves it as it was."""

    monkeypatch.delenv("ALIGN_TEST_NO_KEY", raising=False)
    write_jsonl(tmp_path / "mt_bench" / "question.jsonl", QUESTIONS[:3])
    answers = tmp_path / "m.jsonl"
    real_write = align.plumbing.files.atomic_write_text

    def full_for_the_answers(path, text):
        if path == answers:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, text)

    with FakeJudgeServer() as server:
        argv = ["mtbench", "answer", "--backend", "openai", "--model-path", "m", "--model-id", "m",
                "--question-dir", str(tmp_path / "mt_bench"), "--api-key-env", "ALIGN_TEST_NO_KEY",
                "--max-new-token", "8", "--base-url", server.base_url, "--answer-file", str(answers)]
        monkeypatch.setattr(align.plumbing.files, "atomic_write_text", full_for_the_answers)
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        _one_error_line(capsys.readouterr().err)
        assert sorted(r["question_id"] for r in _lines_are_whole(answers)) == [1, 2, 3]  # all kept
        monkeypatch.undo()
        asked = server.requests
        assert main(argv) == 0
        assert server.requests == asked  # nothing left to answer: the re-run only sorts
    assert [r["question_id"] for r in _lines_are_whole(answers)] == [1, 2, 3]
