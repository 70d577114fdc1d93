"""`align mtbench judge --mode pairwise-*`: FastChat's pair prompts, verdicts, file format and show_result."""

from __future__ import annotations

import json
import re

import pytest
from conftest import run_cli, write_jsonl
from fakes.fastchat_judge import capture_fastchat_judge
from fakes.judge_server import FakeJudgeServer

from align.cli import main
from judges.judging.pairwise import make_pair_matches, parse_verdict
from judges.questions import NEED_REFERENCE, load_judge_prompts, load_questions, load_reference_answers
from judges.records import outcome
from judges.reporting.pair_report import pair_rows, position_bias

QIDS = (81, 82, 101, 111)  # writing x2, reasoning and math (graded against references)


def _answers(model: str, marker: str = "") -> list[dict]:
    return [{"question_id": q, "answer_id": f"{model}-{q}", "model_id": model,
             "choices": [{"index": 0, "turns": [f"{model} answers {q}{marker}", f"{model} follows up {q}"]}],
             "tstamp": 0.0} for q in QIDS]


@pytest.mark.parametrize("text, verdict", [
    ("Assistant A is clearly better. [[A]]", "A"),
    ("[[B]]", "B"),
    ("Equally good. [[C]]", "tie"),
    ("A is better. [A]", "error"),  # single brackets are not FastChat's format: never guessed
    ("I prefer A", "error"),
    ("Both [[B]] and then [[A]]", "A"),  # FastChat's rule: [[A]] anywhere is checked first
])
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) == verdict


def test_pair_prompts_match_fastchat(monkeypatch):
    """Every game's prompt and message list equals what FastChat's run_judge_pair sends."""
    common, sent = capture_fastchat_judge(monkeypatch, "[[A]]")
    questions = {q["question_id"]: q for q in load_questions() if q["question_id"] in QIDS}
    prompts, refs = load_judge_prompts(), load_reference_answers()
    answers = {m: {r["question_id"]: r for r in _answers(m)} for m in ("x", "y")}
    matches = make_pair_matches("gpt-4", list(questions.values()), answers, prompts, refs, baseline="y")
    assert len(matches) == 8 and {m.slot[:2] for m in matches} == {("x", "y")}
    for m in matches:
        q = questions[m.question_id]
        ref = q["category"] in NEED_REFERENCE
        assert m.prompt_name == ("pair-math-v1" if ref else "pair-v2") + ("-multi-turn" if m.turn == 2 else "")
        judge = common.Judge("gpt-4", prompts[m.prompt_name], ref_based=ref, multi_turn=m.turn == 2)
        ref_answer = {"choices": [{"turns": refs[m.question_id]}]} if ref else None
        for game, (first, second) in enumerate((("x", "y"), ("y", "x"))):
            _, user_prompt, _ = common.run_judge_pair(q, answers[first][m.question_id],
                                                      answers[second][m.question_id], judge, ref_answer,
                                                      multi_turn=m.turn == 2)
            ours = m.requests()[game]
            assert ours[1] == user_prompt
            assert sent[-1] == ([{"role": "system", "content": ours[0]}, {"role": "user", "content": ours[1]}], 0,
                                2048)


def _judge(server, files, out, *extra) -> int:
    return main(["mtbench", "judge", "--answer-file", *map(str, files), "--base-url", server.base_url,
                 "--output-file", str(out), "--parallel", "4", "--api-key-env", "ALIGN_TEST_JUDGE_KEY", *extra])


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _show_result(path, mode: str, baseline: str | None = None) -> dict[str, tuple[int, int, int]]:
    """FastChat's own show_result, parsed: model -> (win, loss, tie)."""
    args = ["-m", "fastchat.llm_judge.show_result", "--input-file", str(path), "--mode", mode]
    shown = run_cli(*args, *(["--baseline-model", baseline] if baseline else []), timeout=120)
    assert shown.returncode == 0, shown.stderr
    got = {}
    for line in shown.stdout.splitlines():
        m = re.match(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+[\d.]+", line)
        if m:
            got[m.group(1)] = tuple(map(int, m.groups()[1:]))
    return got


def test_pairwise_judge_file_show_result_and_report(tmp_path, capsys):
    """Both orders judged, FastChat's fields, errors kept; show_result's win counts equal ours."""
    files = [write_jsonl(tmp_path / "answers" / f"{m}.jsonl", _answers(m, marker)) for m, marker in
             (("best", " BEST"), ("mid", ""), ("low", ""))]
    out = tmp_path / "model_judgment" / "gpt-4_pair.jsonl"
    with FakeJudgeServer() as server:
        server.faults += [None, "garbage"]  # the second request's reply has no verdict: an "error" game
        assert _judge(server, files, out, "--mode", "pairwise-all") == 0
        assert server.requests == 3 * 8 * 2  # 3 pairs x 4 questions x 2 turns, two games each
        rows = _rows(out)
        assert len(rows) == 24
        fields = {"question_id", "model_1", "model_2", "g1_winner", "g2_winner", "judge", "g1_user_prompt",
                  "g1_judgment", "g2_user_prompt", "g2_judgment", "turn", "tstamp"}
        assert all(fields <= set(r) for r in rows)
        assert sum("error" in (r["g1_winner"], r["g2_winner"]) for r in rows) == 1
        assert "1 without a usable verdict" in capsys.readouterr().out
        # "best" wins both orders against anyone: game 1 shows it as A, game 2 as B
        for r in rows:
            if r["model_1"] == "best" and "error" not in (r["g1_winner"], r["g2_winner"]):
                assert (r["g1_winner"], r["g2_winner"]) == ("model_1", "model_1")
                assert r["g1_user_prompt"] != r["g2_user_prompt"] and "best answers" in r["g1_user_prompt"]
        before = server.requests
        assert _judge(server, files, out, "--mode", "pairwise-all") == 0  # resume: nothing left to ask
        assert server.requests == before and len(_rows(out)) == 24

    # Our report against FastChat's show_result (pairwise-all sums each model over its opponents).
    report = tmp_path / "report"
    assert main(["mtbench", "report", "--input-file", str(out), "--out-dir", str(report),
                 "--bootstrap", "200", "--min-ci-questions", "3"]) == 0
    summary = json.loads((report / "summary.json").read_text())["pairwise"]
    ours: dict[str, list[int]] = {}
    for p in summary["pairs"]:
        ours.setdefault(p["model_1"], [0, 0, 0])
        ours.setdefault(p["model_2"], [0, 0, 0])
        for model, (w, lo, t) in ((p["model_1"], (p["win"], p["loss"], p["tie"])),
                                  (p["model_2"], (p["loss"], p["win"], p["tie"]))):
            ours[model] = [a + b for a, b in zip(ours[model], (w, lo, t))]
    assert _show_result(out, "pairwise-all") == {m: tuple(v) for m, v in ours.items()}
    best_vs_mid = next(p for p in summary["pairs"] if (p["model_1"], p["model_2"]) == ("best", "mid"))
    assert best_vs_mid["win"] + best_vs_mid["errors"] == 8 and best_vs_mid["adjusted_win_rate"] == 1.0
    md = (report / "table.md").read_text()
    assert "## Pairwise (judge: gpt-4)" in md and "Position bias" in md and (report / "report.html").exists()


def test_pairwise_baseline_matches_show_result(tmp_path):
    files = [write_jsonl(tmp_path / "answers" / f"{m}.jsonl", _answers(m)) for m in ("a", "b", "base")]
    out = tmp_path / "gpt-4_pair.jsonl"
    with FakeJudgeServer() as server:
        assert _judge(server, files, out, "--mode", "pairwise-baseline", "--baseline-model", "base") == 0
    rows = _rows(out)
    assert {(r["model_1"], r["model_2"]) for r in rows} == {("a", "base"), ("b", "base")}
    ours = {r.model_1: (r.win, r.loss, r.tie) for r in pair_rows(
        {(r["model_1"], r["model_2"], r["question_id"], r["turn"]): r for r in rows}, {}, 200, 0)}
    assert set(ours) == {"a", "b"}
    assert _show_result(out, "pairwise-baseline", "base") == ours
    assert sum(sum(v) for v in ours.values()) == 16  # every match counted once


def test_pairwise_failures_are_listed_reported_and_redone(tmp_path, capsys):
    files = [write_jsonl(tmp_path / f"{m}.jsonl", _answers(m)) for m in ("a", "b")]
    out = tmp_path / "gpt-4_pair.jsonl"
    failed = tmp_path / "gpt-4_pair.jsonl.failed.jsonl"
    with FakeJudgeServer() as server:
        server.fail_if = "a answers 81"  # every game of question 81, both turns (turn 2 repeats turn 1)
        assert _judge(server, files, out, "--mode", "pairwise-all", "--max-retries", "0") == 1
        assert "2 judgment(s) missing" in capsys.readouterr().err
        listed = _rows(failed)
        assert {(r["model_1"], r["model_2"], r["question_id"], r["turn"]) for r in listed} == \
            {("a", "b", 81, 1), ("a", "b", 81, 2)}
        assert len(_rows(out)) == 6
        report = tmp_path / "r"
        assert main(["mtbench", "report", "--input-file", str(out), "--out-dir", str(report), "--bootstrap",
                     "200"]) == 0
        (pair,) = json.loads((report / "summary.json").read_text())["pairwise"]["pairs"]
        assert pair["missing"] == 2 and pair["win"] + pair["tie"] + pair["loss"] + pair["errors"] == 6
        server.fail_if = None
        assert _judge(server, files, out, "--mode", "pairwise-all") == 0  # the re-run judges only what is missing
        assert len(_rows(out)) == 8 and server.completed == 16


def test_explicit_pairs(tmp_path):
    """--pair MODEL BASELINE: a baseline per model (a series: each entry against its same-size scratch)."""
    files = [write_jsonl(tmp_path / f"{m}.jsonl", _answers(m)) for m in ("big", "big-scratch", "small", "small-s")]
    out = tmp_path / "gpt-4_pair.jsonl"
    with FakeJudgeServer() as server:
        assert _judge(server, files, out, "--mode", "pairwise-baseline", "--pair", "big", "big-scratch",
                      "--pair", "small", "small-s") == 0
        assert server.requests == 2 * 8 * 2
    assert {(r["model_1"], r["model_2"]) for r in _rows(out)} == {("big", "big-scratch"), ("small", "small-s")}


def test_outcomes_and_position_bias_by_hand():
    recs = {("m", "n", 1, 1): {"g1_winner": "model_1", "g2_winner": "model_1"},  # win
            ("m", "n", 1, 2): {"g1_winner": "model_1", "g2_winner": "model_2"},  # A both times: flip -> tie
            ("m", "n", 2, 1): {"g1_winner": "tie", "g2_winner": "model_1"},  # game-1 tie -> tie
            ("m", "n", 2, 2): {"g1_winner": "model_2", "g2_winner": "error"}}  # error: not a tie, left out
    assert [outcome(r) for r in recs.values()] == ["win", "tie", "tie", "error"]
    (row,) = pair_rows(recs, {1: "writing", 2: "math"}, 200, 0, min_questions=1)
    assert (row.win, row.tie, row.loss, row.errors, row.questions) == (1, 2, 0, 1, 2)
    assert row.win_rate == pytest.approx(1 / 3) and row.adjusted == pytest.approx(2 / 3)
    assert row.categories == {"writing": 0.75, "math": 0.5}
    assert set(row.category_ci) == {"writing", "math"} and row.category_ci["math"] == (0.5, 0.5)
    bias = position_bias(recs)
    # decisive games: g1 A (m1), g2 B (m1 shown second), g1 A, g2 A (m2 shown first), g2 B, g1 B -> A 3 of 6
    assert (bias["A"], bias["B"], bias["tie"], bias["error"]) == (3, 3, 1, 1) and bias["a_share"] == 0.5


@pytest.mark.parametrize("extra, message", [
    (["--mode", "pairwise-baseline"], "--baseline-model"),
    (["--mode", "pairwise-all", "--baseline-model", "a"], "--baseline-model"),
    (["--mode", "pairwise-baseline", "--baseline-model", "nobody"], "nobody"),
    (["--mode", "pairwise-all", "--controls"], "--controls"),
    (["--mode", "pairwise-baseline", "--baseline-model", "a", "--pair", "a", "b"], "one of"),
    (["--mode", "pairwise-baseline", "--pair", "a", "zed"], "zed"),
    (["--mode", "pairwise-baseline", "--pair", "a", "a"], "itself"),
])
def test_pairwise_bad_flags_exit_2(tmp_path, capsys, extra, message):
    files = [write_jsonl(tmp_path / f"{m}.jsonl", _answers(m)) for m in ("a", "b")]
    with pytest.raises(SystemExit) as exc:
        main(["mtbench", "judge", "--answer-file", *map(str, files), "--base-url", "http://127.0.0.1:9/v1",
              "--output-file", str(tmp_path / "o.jsonl"), *extra])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
