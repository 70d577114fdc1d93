"""`align mtbench agreement`: FastChat's own compute_agreement functions give the same numbers on the same
files (judge against a human pool, the human pool against itself), single-score judges, bad input."""

from __future__ import annotations

import json
import random

import pytest
from fastchat.llm_judge import compute_agreement as fastchat

from align.cli import main
from judges.trust.agreement import compare
from judges.trust.votes import pair_votes, question_turns

MODELS = ["vicuna", "alpaca", "llama", "gpt-3.5"]  # not in sorted order: keys and winners get flipped
PAIRS = [("vicuna", "alpaca"), ("llama", "gpt-3.5"), ("alpaca", "llama")]
QUESTIONS = range(81, 121)
GAME = ["model_1", "model_2", "tie", "error"]


def write_pair_file(path, seed=0):
    rng = random.Random(seed)
    rows = [{"question_id": q, "model_1": m1, "model_2": m2, "g1_winner": rng.choice(GAME),
             "g2_winner": rng.choice(GAME), "judge": ["gpt-4", "pair-v2"], "turn": turn, "tstamp": 1.0}
            for turn in (1, 2) for q in QUESTIONS for m1, m2 in PAIRS]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_human_file(path, seed=1):
    rng = random.Random(seed)
    votes = []
    for turn in (1, 2):
        for q in QUESTIONS:
            for m1, m2 in PAIRS:
                for _ in range(rng.randint(0, 4)):
                    a, b = (m1, m2) if rng.random() < 0.5 else (m2, m1)
                    judge = rng.choice(["expert_0", "expert_1", "expert_2", "author_3"])
                    winner = rng.choice(["model_a", "model_b", "tie", "tie (bothbad)"])
                    votes.append({"question_id": q, "model_a": a, "model_b": b, "winner": winner, "judge": judge,
                                  "turn": turn})
    path.write_text(json.dumps(votes))
    return path


def fastchat_numbers(vote_files, judges) -> dict:
    raw = [json.loads(p.read_text()) for p in vote_files]
    data = fastchat.get_mt_bench_votes_data(raw)
    out = {}
    for turn in (1, 2):
        for name, ban in (("with_ties", []), ("without_ties", ["tie"])):
            out[(turn, name)] = fastchat.get_mt_bench_agreement(data[turn - 1], *judges, ban=ban)
    return out


def ours(result) -> dict:
    return {(turn, name): (result[f"turn_{turn}"][name]["agree"], result[f"turn_{turn}"][name]["total"])
            for turn in (1, 2) for name in ("with_ties", "without_ties")}


def test_judge_against_humans_equals_fastchat(tmp_path):
    pair_file = write_pair_file(tmp_path / "gpt-4_pair.jsonl")
    human_file = write_human_file(tmp_path / "human.json")
    gpt4_votes = tmp_path / "gpt4_pair_votes.json"  # our pair records as FastChat's votes
    gpt4_votes.write_text(json.dumps(pair_votes(str(pair_file), question_turns())))
    expected = fastchat_numbers([gpt4_votes, human_file], ["gpt4-pair", "human"])
    result = compare(str(pair_file), str(human_file), prefix_b="expert")  # FastChat's "human" = expert_*
    assert ours(result) == expected
    assert all(total > 5 for _, total in expected.values())  # the files exercise something
    assert result["turn_1"]["with_ties"]["ratio"] == pytest.approx(expected[(1, "with_ties")][0]
                                                                   / expected[(1, "with_ties")][1])


def test_human_pool_against_itself_equals_fastchat(tmp_path):
    human_file = write_human_file(tmp_path / "human.json", seed=5)
    expected = fastchat_numbers([human_file], ["human", "human"])
    result = compare(str(human_file), str(human_file), "expert", "expert")
    assert result["mode"] == "within one pool"
    assert ours(result) == expected
    assert expected[(2, "with_ties")][1] > 20


def test_pair_records_become_show_result_winners(tmp_path):
    rows = [("model_1", "model_1", "model_a"), ("model_2", "model_2", "model_b"), ("tie", "tie", "tie"),
            ("model_1", "model_2", "tie"), ("tie", "model_1", "tie"), ("model_1", "error", None)]
    path = tmp_path / "j_pair.jsonl"
    path.write_text("".join(json.dumps({"question_id": 81 + i, "model_1": "x", "model_2": "y", "g1_winner": g1,
                                        "g2_winner": g2, "judge": ["j", "pair-v2"], "turn": 1}) + "\n"
                            for i, (g1, g2, _) in enumerate(rows)))
    votes = {v["question_id"]: v["winner"] for v in pair_votes(str(path), question_turns())}
    assert votes == {81 + i: w for i, (_, _, w) in enumerate(rows) if w is not None}


def _single(path, judge, scores):
    path.write_text("".join(json.dumps({"question_id": q, "model": m, "turn": t, "score": s,
                                        "judge": [judge, "single-v1"], "tstamp": 1.0}) + "\n"
                            for (m, q, t), s in scores.items()))
    return path


def test_two_single_judges(tmp_path):
    a = _single(tmp_path / "a_single.jsonl", "a", {("x", 81, 1): 8, ("y", 81, 1): 5, ("x", 82, 1): 3,
                                                   ("y", 82, 1): 6, ("x", 81, 2): 4, ("y", 81, 2): 4,
                                                   ("x", 83, 1): -1, ("y", 83, 1): 2})
    b = _single(tmp_path / "b_single.jsonl", "b", {("x", 81, 1): 9, ("y", 81, 1): 2, ("x", 82, 1): 7,
                                                   ("y", 82, 1): 7, ("x", 81, 2): 5, ("y", 81, 2): 1,
                                                   ("x", 83, 1): 5, ("y", 83, 1): 2})
    result = compare(str(a), str(b))
    # turn 1: q81 both x (agree), q82 a: y, b: tie (disagree; skipped without ties), q83: a's x is invalid
    assert result["turn_1"]["with_ties"] == {"agree": 1, "total": 2, "ratio": 0.5}
    assert result["turn_1"]["without_ties"] == {"agree": 1, "total": 1, "ratio": 1.0}
    assert result["turn_2"]["with_ties"] == {"agree": 0, "total": 1, "ratio": 0.0}  # a: tie, b: x
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score

    xs, ys = [8, 3, 4, 5, 6, 4, 2], [9, 7, 5, 2, 7, 1, 2]  # shared valid scores, sorted by (model, q, turn)
    single = result["single"]
    assert single["scores"] == 7
    assert single["spearman"] == pytest.approx(spearmanr(xs, ys)[0])
    assert single["kappa_quadratic"] == pytest.approx(cohen_kappa_score(xs, ys, weights="quadratic"))
    assert single["verdicts"] == 3 and single["verdict_kappa"] is not None


def test_command_writes_json_and_prints(tmp_path, capsys):
    pair_file = write_pair_file(tmp_path / "gpt-4_pair.jsonl")
    human_file = write_human_file(tmp_path / "human.json")
    out = tmp_path / "res" / "agreement.json"
    assert main(["mtbench", "agreement", str(pair_file), str(human_file), "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert set(saved["turn_2"]) == {"with_ties", "without_ties"}
    assert saved["turn_2"] == compare(str(pair_file), str(human_file))["turn_2"]
    assert "turn 1: with ties" in capsys.readouterr().out


@pytest.mark.parametrize("content, message", [
    (None, "file not found"),
    ('{"a": 1}', "neither a pairwise judgment"),
    ('[{"question_id": 81, "model_a": "x", "model_b": "y", "winner": "x", "judge": "h", "turn": 1}]', "vote 0"),
    ('[{"question_id": 81, "model_a": "x", "model_b": "y", "winner": "tie", "judge": "h", "turn": 3}]', "vote 0"),
    ('[{"question_id": 81', "not valid JSON"),
    ('{"hello": 1}\n', "neither a pairwise judgment"),
    ('{"model_1": "x", "model_2": "y", "question_id": 81, "turn": 1, "g1_winner": "A"}\n', "g1_winner"),
    ('{"question_id": 81, "model": "x", "turn": 1, "score": 5, "judge": ["a", "single-v1"]}\n'
     '{"question_id": 81, "model": "y", "turn": 1, "score": 5, "judge": ["b", "single-v1"]}\n', "different judges"),
    ('{"question_id": 81, "model": "x", "turn": 3, "score": 5}\n', "turn 3"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, content, message):
    good = write_pair_file(tmp_path / "gpt-4_pair.jsonl")
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    out = tmp_path / "agreement.json"
    with pytest.raises(SystemExit) as exit_info:
        main(["mtbench", "agreement", str(good), str(bad), "--out", str(out)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert message in err and str(bad) in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_no_shared_match_is_exit_2(tmp_path, capsys):
    a = _single(tmp_path / "a_single.jsonl", "a", {("x", 81, 1): 8, ("y", 81, 1): 5})
    b = _single(tmp_path / "b_single.jsonl", "b", {("x", 90, 1): 8, ("y", 90, 1): 5})
    with pytest.raises(SystemExit) as exit_info:
        main(["mtbench", "agreement", str(a), str(b)])
    assert exit_info.value.code == 2 and "no match judged by both" in capsys.readouterr().err


def test_mismatched_controls_are_left_out_of_single_agreement(tmp_path):
    """A series' single files hold the judge check's `@mismatched` controls: easy verdicts (an answer to
    another question loses) that would lift the agreement of any two judges; only the judged models count."""
    real = {("x", 81, 1): 8, ("y", 81, 1): 5}
    controls = {("x@mismatched", 81, 1): 1, ("y@mismatched", 81, 1): 1}
    a = _single(tmp_path / "a_single.jsonl", "a", {**real, **controls})
    b = _single(tmp_path / "b_single.jsonl", "b", {("x", 81, 1): 2, ("y", 81, 1): 6, **controls})
    result = compare(str(a), str(b))
    assert result["turn_1"]["with_ties"] == {"agree": 0, "total": 1, "ratio": 0.0}
    assert result["single"]["scores"] == 2
