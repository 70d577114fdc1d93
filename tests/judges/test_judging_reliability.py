"""Nothing lost, nothing silently wrong (issue 10): torn tails, names that are not paths, unset keys,
files that are not UTF-8, a failed list that says exactly what is missing, outputs that are files."""

from __future__ import annotations

import json
import logging

from conftest import one_line_exit_2, write_jsonl
from fakes.judge_server import FakeJudgeServer
from test_answer import QUESTIONS
from test_judge import _answers, _judge, _rows

from align.cli import main


def test_judge_after_a_crash_mid_write_appends_cleanly_and_reports(tmp_path, capsys):
    a = write_jsonl(tmp_path / "a.jsonl", _answers("a"))
    out = tmp_path / "gpt-4_single.jsonl"
    with FakeJudgeServer() as server:
        assert _judge(server, [a], out, "--first-n", "1") == 0
        with open(out, "a") as fh:  # the judge was killed mid-record
            fh.write('{"question_id": 81, "model": "a", "judge": ["gpt-4", "single-v1"], "user_pro')
        b = write_jsonl(tmp_path / "b.jsonl", _answers("b", suffix=" (new)"))
        assert _judge(server, [a, b], out, "--first-n", "1") == 0
    assert "dropped a torn last line" in capsys.readouterr().err
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line) for line in lines)  # torn record gone, nothing glued
    assert main(["mtbench", "report", "--input-file", str(out), "--out-dir", str(tmp_path / "report"),
                 "--bootstrap", "100"]) == 0
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert {r["name"]: r["judged"] + r["invalid"] for r in summary["rows"]} == {"a": 2, "b": 2}


def test_failed_list_names_exactly_what_is_still_missing(tmp_path, capsys):
    a = write_jsonl(tmp_path / "a.jsonl", _answers("a", suffix=" UNLUCKY"))
    out = tmp_path / "j.jsonl"
    failed = tmp_path / "j.jsonl.failed.jsonl"
    write_jsonl(failed, [{"question_id": 81, "model": "other", "turn": 1, "error": "HTTP 500"}])  # another run's
    with FakeJudgeServer() as server:
        server.fail_if = "UNLUCKY"
        for _ in range(2):  # failing twice: the same list, no duplicates
            assert _judge(server, [a], out, "--first-n", "1", "--max-retries", "0") == 1
            slots = [(r["model"], r["question_id"], r["turn"]) for r in _rows(failed)]
            assert sorted(slots) == [("a", 81, 1), ("a", 81, 2), ("other", 81, 1)]
        server.fail_if = None
        assert _judge(server, [a], out, "--first-n", "1") == 0
        assert [(r["model"], r["question_id"]) for r in _rows(failed)] == [("other", 81)]  # still missing
        other = write_jsonl(tmp_path / "other.jsonl", _answers("other"))
        assert _judge(server, [other], out, "--first-n", "1") == 0
    assert not failed.exists()  # nothing missing: no stale list
    capsys.readouterr()


def test_model_ids_are_names_inside_the_answer_folder(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ALIGN_TEST_NO_KEY", raising=False)
    write_jsonl(tmp_path / "mt_bench" / "question.jsonl", QUESTIONS[:1])
    common = ["mtbench", "answer", "--backend", "openai", "--model-path", "m", "--question-dir", "mt_bench",
              "--api-key-env", "ALIGN_TEST_NO_KEY", "--max-new-token", "8"]
    err = one_line_exit_2([*common, "--model-id", "../../x", "--base-url", "http://127.0.0.1:9/v1"], capsys)
    assert "--model-id '../../x'" in err and "not a path" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mt_bench"]  # nothing written anywhere
    with FakeJudgeServer() as server, caplog.at_level(logging.INFO, logger="judges.api.client"):
        assert main([*common, "--model-id", "org/model", "--base-url", server.base_url]) == 0
    written = tmp_path / "outputs" / "mtbench" / "model_answer" / "org--model.jsonl"
    assert [r["model_id"] for r in _rows(written)] == ["org/model"]  # the name is kept, the file is flat
    told = [r.message for r in caplog.records if "no API key is sent" in r.message]
    assert len(told) == 1 and "ALIGN_TEST_NO_KEY" in told[0]  # loopback: said once


def test_judge_output_names_from_judge_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALIGN_TEST_JUDGE_KEY", "k")
    a = write_jsonl(tmp_path / "a.jsonl", _answers("a"))
    base = ["mtbench", "judge", "--answer-file", str(a), "--first-n", "1", "--api-key-env", "ALIGN_TEST_JUDGE_KEY"]
    with FakeJudgeServer() as server:
        assert main([*base, "--judge-model", "Qwen/Qwen2.5-72B", "--base-url", server.base_url]) == 0
        capsys.readouterr()
        err = one_line_exit_2([*base, "--judge-model", "../../escape", "--base-url", server.base_url], capsys)
    assert "--judge-model '../../escape'" in err
    assert [p.name for p in (tmp_path / "outputs" / "mtbench" / "model_judgment").glob("*.jsonl")] == [
        "Qwen--Qwen2.5-72B_single.jsonl"]


def test_unset_key_for_a_remote_endpoint_is_an_error_naming_the_variable(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ALIGN_TEST_TYPO_KEY", raising=False)
    a = write_jsonl(tmp_path / "a.jsonl", _answers("a"))
    remote = "http://judge-host.invalid:8000/v1"
    err = one_line_exit_2(["mtbench", "judge", "--answer-file", str(a), "--base-url", remote, "--output-file",
                   str(tmp_path / "j.jsonl"), "--api-key-env", "ALIGN_TEST_TYPO_KEY"], capsys)
    assert "ALIGN_TEST_TYPO_KEY" in err and "not set" in err
    write_jsonl(tmp_path / "mt_bench" / "question.jsonl", QUESTIONS[:1])
    err = one_line_exit_2(["mtbench", "answer", "--backend", "openai", "--base-url", remote, "--model-path", "m",
                   "--model-id", "m", "--answer-file", str(tmp_path / "ans.jsonl"), "--question-dir",
                   str(tmp_path / "mt_bench"), "--api-key-env", "ALIGN_TEST_TYPO_KEY"], capsys)
    assert "ALIGN_TEST_TYPO_KEY" in err and "not set" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "mt_bench"]


def test_files_that_are_not_utf8_exit_2_naming_the_file(tmp_path, capsys):
    answers = tmp_path / "a.jsonl"
    answers.write_bytes("".join(json.dumps(r) + "\n" for r in _answers("a")).encode("utf-16"))
    err = one_line_exit_2(["mtbench", "judge", "--answer-file", str(answers), "--base-url", "http://127.0.0.1:9/v1",
                   "--output-file", str(tmp_path / "j.jsonl")], capsys)
    assert str(answers) in err and "UTF-16" in err
    judgments = tmp_path / "j.jsonl"
    judgments.write_bytes(b"\x00\x01\xfe binary")
    err = one_line_exit_2(["mtbench", "report", "--input-file", str(judgments), "--out-dir", str(tmp_path / "r")],
                          capsys)
    assert str(judgments) in err and "not UTF-8" in err
    questions = tmp_path / "q" / "question.jsonl"
    questions.parent.mkdir()
    questions.write_bytes(b'{"question_id": 1, "turns": ["caf\xe9"]}\n')  # Latin-1
    err = one_line_exit_2(["mtbench", "answer", "--model-path", "m", "--model-id", "m", "--question-dir",
                   str(questions.parent), "--answer-file", str(tmp_path / "x.jsonl")], capsys)
    assert str(questions) in err and "not valid UTF-8" in err


def test_corrupt_answer_sidecar_and_outputs_that_are_files(tmp_path, capsys):
    write_jsonl(tmp_path / "mt_bench" / "question.jsonl", QUESTIONS[:1])
    answers = write_jsonl(tmp_path / "ans.jsonl", [dict(_answers("m")[0], question_id=QUESTIONS[0]["question_id"])])
    (tmp_path / "ans.jsonl.meta.json").write_text('{"model_path": "m", "max_new')  # cut off
    err = one_line_exit_2(["mtbench", "answer", "--model-path", "m", "--model-id", "m", "--answer-file", str(answers),
                   "--question-dir", str(tmp_path / "mt_bench")], capsys)
    assert "ans.jsonl.meta.json" in err
    err = one_line_exit_2(["mtbench", "answer", "--model-path", "m", "--model-id", "m", "--answer-file", str(tmp_path),
                   "--question-dir", str(tmp_path / "mt_bench")], capsys)
    assert "is a directory" in err
    judged = write_jsonl(tmp_path / "j.jsonl", [{"question_id": 81, "model": "m", "turn": 1, "score": 5,
                                                 "judge": ["gpt-4", "single-v1"]}])
    err = one_line_exit_2(["mtbench", "report", "--input-file", str(judged), "--out-dir", str(answers)], capsys)
    assert "--out-dir" in err and "is a file" in err
    err = one_line_exit_2(["mtbench", "judge", "--answer-file", str(answers), "--base-url", "http://127.0.0.1:9/v1",
                   "--output-file", str(answers / "j.jsonl")], capsys)
    assert "is a file, not a directory" in err
    err = one_line_exit_2(["mtbench", "subset", "--out", str(answers)], capsys)
    assert "--out" in err and "is a file" in err


def test_series_checks_a_served_judges_key_before_anything_runs(tmp_path, monkeypatch, capsys):
    """A key typo must stop `align series` at the start, not after days of training at the judge stage."""
    import yaml

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}")  # never loaded: the run stops first
    series = {"name": "s", "output_dir": str(tmp_path / "out"), "train": {"launcher": "python"},
              "sft": {"recipe": "recipes/sft/cpu-demo.yaml"}, "dpo": {"recipe": "recipes/dpo/cpu-demo.yaml"},
              "judge": {"model": "Qwen/Qwen2.5-72B-Instruct", "base_url": "http://judge-host.invalid:8000/v1"},
              "models": [{"name": "m", "size": "S", "construction": "scratch", "path": str(tmp_path / "ckpt")}]}
    path = tmp_path / "series.yaml"
    path.write_text(yaml.safe_dump(series))
    err = one_line_exit_2(["series", str(path)], capsys)
    assert "judge" in err and "OPENAI_API_KEY" in err and "not set" in err
    assert not (tmp_path / "out").exists()  # nothing started
    main(["series", str(path), "--dry-run"])  # planning needs no key (its recipe checks may fail here)
    assert "OPENAI_API_KEY" not in capsys.readouterr().err
