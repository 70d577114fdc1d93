"""MT-Bench answer generation: batching correctness, FastChat's record format, resume, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import write_jsonl

from align.cli import main

# Different lengths and categories: greedy (math, coding, reasoning, extraction) and sampled ones.
QUESTIONS = [
    {"question_id": 1, "category": "math", "turns": ["What is 2+2?", "And 3+3?"]},
    {"question_id": 2, "category": "coding",
     "turns": ["Write a Python function that reverses a list, and explain each line of it in detail.", "Now in C."]},
    {"question_id": 3, "category": "reasoning", "turns": ["Why?", "Are you sure? Think again step by step."]},
    {"question_id": 4, "category": "extraction",
     "turns": ["Extract every name from: Alice met Bob and Carol in Paris, then Dave joined them for dinner.",
               "Sort them."]},
    {"question_id": 5, "category": "writing", "turns": ["Write a haiku about rain.", "Make it sadder."]},
    {"question_id": 6, "category": "stem", "turns": ["What is an atom made of?", "Explain to a child."]},
    {"question_id": 7, "category": "roleplay", "turns": ["Pretend to be a pirate and greet me.", "Say bye."]},
]
GREEDY_IDS = {1, 2, 3, 4}


@pytest.fixture
def question_dir(tmp_path) -> Path:
    write_jsonl(tmp_path / "mt_bench" / "question.jsonl", QUESTIONS)
    return tmp_path / "mt_bench"


def answer(model_dir, answer_file, question_dir, *extra: str) -> int:
    return main(["mtbench", "answer", "--model-path", str(model_dir), "--model-id", "tiny",
                 "--answer-file", str(answer_file), "--question-dir", str(question_dir),
                 "--max-new-token", "10", *extra])


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def greedy_answers(model_dir, monkeypatch=None, **settings) -> tuple[dict, list[tuple[int, int]]]:
    """Greedy answers by question id, and (cached tokens reused, prompt tokens) for each prompt encoded:
    the first turns in question order, then the second turns in the same order."""
    import judges.answers.backends.hf as generate
    import judges.answers.backends.hf_rows as rows

    encoded = []
    if monkeypatch is not None:
        def spy(model, ids, prior):
            cache, done = prefill_row(model, ids, prior)
            encoded.append((ids, done))
            return cache, done

        def spy_shared(model, prompts):
            before = len(encoded)
            out = shared_prefix(model, prompts)
            del encoded[before:]  # the shared prefix's own encoding is not a prompt's
            return out

        prefill_row, shared_prefix = rows.prefill_row, rows.shared_prefix
        monkeypatch.setattr(rows, "prefill_row", spy)
        monkeypatch.setattr(rows, "shared_prefix", spy_shared)
    greedy = [q for q in QUESTIONS if q["question_id"] in GREEDY_IDS]
    out = {q["question_id"]: c for q, c in generate.hf_answers(str(model_dir), greedy,
                                                                generate.Settings(max_new_token=12, **settings))}
    if monkeypatch is not None:
        monkeypatch.undo()
    # A second turn's prompt starts with its first turn's (the conversation so far): pair them up that way.
    firsts = [(ids, done) for ids, done in encoded if not any(len(o) < len(ids) and ids[:len(o)] == o
                                                             for o, _ in encoded)]
    seconds = [next((ids, done) for ids, done in encoded if len(ids) > len(f) and ids[:len(f)] == f)
               for f, _ in firsts]
    reused = [(done, len(ids)) for ids, done in firsts + seconds] if encoded else []
    return out, reused


def test_batched_greedy_equals_batch_one(chatty_llama_dir, monkeypatch):
    """Unpadded prompts merged into one cache, first turns continuing their shared prefix's cache, turn 2
    continuing turn 1's cache, and the plain padded batch all give exactly the text of one prompt at a
    time through `model.generate` (FastChat's loop)."""
    single, _ = greedy_answers(chatty_llama_dir, batch_size=1, cache_reuse=False)
    padded, _ = greedy_answers(chatty_llama_dir, batch_size=8, cache_reuse=False)
    cached, reused = greedy_answers(chatty_llama_dir, monkeypatch, batch_size=8)
    assert set(single) == GREEDY_IDS
    assert padded == single and cached == single
    texts = [t for c in single.values() for t in c[0]["turns"]]
    assert len(texts) == 8 and sum(bool(t) for t in texts) >= 6  # real text was compared, not empty strings
    turn1, turn2 = reused[:4], reused[4:]
    # Every first turn continues the one cache of the tokens all first turns start with (the system prompt).
    shared = turn1[0][0]
    assert 0 < shared < min(n for _, n in turn1) and all(done == shared for done, _ in turn1) and len(turn2) == 4
    # Turn 2 takes turn 1's prompt from the cache, and its answer too where the answer's text re-encodes to the
    # generated tokens (random weights also emit stray byte tokens, which decode to U+FFFD and do not).
    assert all(done >= n1 for (done, _), (_, n1) in zip(turn2, turn1))
    assert sum(done > n1 + 2 for (done, _), (_, n1) in zip(turn2, turn1)) >= 2


def test_turn_two_with_a_template_that_rewrites_answers(chatty_llama_dir, tmp_path, monkeypatch):
    """A template that renders earlier answers differently from what the model generated (here: upper
    case) shares only part of turn 1's tokens: the cache is reused up to the first differing token."""
    from transformers import AutoTokenizer

    model_dir = tmp_path / "shouty"
    shutil.copytree(chatty_llama_dir, model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.chat_template = tok.chat_template.replace("message['content']", "(message['content'] | upper "
                                                  "if message['role'] == 'assistant' else message['content'])")
    assert tok.chat_template != AutoTokenizer.from_pretrained(model_dir).chat_template
    tok.save_pretrained(model_dir)
    single, _ = greedy_answers(model_dir, batch_size=1, cache_reuse=False)
    cached, reused = greedy_answers(model_dir, monkeypatch, batch_size=8)
    assert cached == single
    turn1, turn2 = reused[:4], reused[4:]
    assert any(n1 <= done < n1 + 12 for (done, _), (_, n1) in zip(turn2, turn1))  # cut inside the answer


def test_batches_group_temperatures_and_sort_by_length(smollm2_tokenizer_dir):
    from judges.answers.backends.hf import load_tokenizer, plan_batches

    tok = load_tokenizer(str(smollm2_tokenizer_dir))
    batches = plan_batches(QUESTIONS, tok, batch_size=3)
    assert [t for t, _ in batches] == [0.0, 0.0, 0.1, 0.7]
    assert [[q["question_id"] for q in b] for _, b in batches] == [[3, 1, 2], [4], [6], [5, 7]]
    assert tok.padding_side == "left"


@pytest.mark.slow
def test_records_resume_and_sidecar(chatty_llama_dir, question_dir, tmp_path):
    out = tmp_path / "answers" / "tiny.jsonl"
    assert answer(chatty_llama_dir, out, question_dir, "--batch-size", "4") == 0
    first = records(out)
    assert [r["question_id"] for r in first] == [q["question_id"] for q in QUESTIONS]  # sorted at the end
    for r in first:
        assert set(r) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}
        assert r["model_id"] == "tiny" and len(r["answer_id"]) == 22
        assert [c["index"] for c in r["choices"]] == [0] and len(r["choices"][0]["turns"]) == 2
    meta = json.loads((tmp_path / "answers" / "tiny.jsonl.meta.json").read_text())
    assert meta["max_new_token"] == 10 and meta["backend"] == "hf"
    lengths = meta["answer_tokens_this_run"]  # generated tokens per turn; records keep FastChat's shape
    assert lengths["turns"] == 2 * len(QUESTIONS) and 0 <= lengths["median"] <= lengths["p90"] <= lengths["max"] <= 10
    assert 0 <= lengths["at_cap"] <= lengths["turns"]

    # A killed run: two records kept, the one in flight torn. The re-run answers only the rest.
    lines = out.read_text().splitlines()
    out.write_text(lines[0] + "\n" + lines[3] + "\n" + lines[5][:40])
    assert answer(chatty_llama_dir, out, question_dir, "--batch-size", "4") == 0
    again = records(out)
    assert [r["question_id"] for r in again] == [q["question_id"] for q in QUESTIONS]
    kept = {r["question_id"]: r["answer_id"] for r in again}
    assert kept[1] == first[0]["answer_id"] and kept[4] == first[3]["answer_id"]
    assert kept[6] != first[5]["answer_id"]  # regenerated
    # Greedy answers are reproduced exactly by the re-run, in different batches.
    by_id = {r["question_id"]: r for r in first}
    for r in again:
        if r["question_id"] in GREEDY_IDS:
            assert r["choices"] == by_id[r["question_id"]]["choices"]

    # Nothing left to do: the file does not change.
    before = out.read_text()
    assert answer(chatty_llama_dir, out, question_dir) == 0
    assert out.read_text() == before


@pytest.mark.slow
def test_seeded_sampling_and_choices(chatty_llama_dir, question_dir, tmp_path):
    runs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.jsonl"
        assert answer(chatty_llama_dir, out, question_dir, "--question-begin", "4", "--num-choices", "2",
                      "--seed", "7") == 0
        runs.append(records(out))
    assert [r["question_id"] for r in runs[0]] == [5, 6, 7]
    assert [r["choices"] for r in runs[0]] == [r["choices"] for r in runs[1]]
    assert all([c["index"] for c in r["choices"]] == [0, 1] for r in runs[0])
    # Sampled categories: the two choices differ somewhere.
    assert any(r["choices"][0]["turns"] != r["choices"][1]["turns"] for r in runs[0])


def test_changed_settings_refuse_to_mix(tiny_llama_dir, question_dir, tmp_path, capsys):
    out = tmp_path / "a.jsonl"
    assert answer(tiny_llama_dir, out, question_dir, "--question-end", "1") == 0
    with pytest.raises(SystemExit) as exc:
        main(["mtbench", "answer", "--model-path", str(tiny_llama_dir), "--model-id", "tiny", "--answer-file",
              str(out), "--question-dir", str(question_dir), "--max-new-token", "99"])
    assert exc.value.code == 2
    assert "max_new_token=10" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--question-begin", "5", "--question-end", "5"], "selects no questions"),
    (["--question-end", "100"], "--question-end 100: out of range"),
    (["--max-new-token", "0"], "--max-new-token: '0': expected a positive integer"),
    (["--backend", "vllm"], "vllm is not installed (GPU only): use --backend hf or openai"),
])
def test_user_errors(tiny_llama_dir, question_dir, tmp_path, capsys, extra, message):
    out = tmp_path / "a.jsonl"
    with pytest.raises(SystemExit) as exc:
        answer(tiny_llama_dir, out, question_dir, *extra)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "a.jsonl.meta.json").exists()


def test_missing_model_and_missing_template(tiny_base_llama_dir, question_dir, tmp_path, capsys):
    out = tmp_path / "a.jsonl"
    with pytest.raises(SystemExit):
        answer(tmp_path / "nope", out, question_dir)
    assert "no such checkpoint directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        answer(tiny_base_llama_dir, out, question_dir)
    assert exc.value.code == 2
    assert "no chat template" in capsys.readouterr().err
    assert not out.exists()


def test_packaged_questions_default(tiny_llama_dir, tmp_path, monkeypatch):
    """Without --question-dir the 80 packaged MT-Bench questions are used (ids 81-160)."""
    monkeypatch.chdir(tmp_path)
    assert main(["mtbench", "answer", "--model-path", str(tiny_llama_dir), "--model-id", "t",
                 "--question-begin", "79", "--max-new-token", "2"]) == 0
    (rec,) = records(tmp_path / "outputs" / "mtbench" / "model_answer" / "t.jsonl")
    assert rec["question_id"] == 160


def test_vllm_backend_turns_and_temperatures(tiny_llama_dir, question_dir, tmp_path, monkeypatch):
    """vLLM needs a GPU: a recording stand-in for its `LLM`/`SamplingParams` checks what we ask of it."""
    import sys
    import types

    calls = []

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class LLM:
        def __init__(self, **kw):
            calls.append(("init", kw))

        def chat(self, conversations, params, use_tqdm=True):
            calls.append(("chat", [list(c) for c in conversations], [p.kw for p in params]))
            reply = lambda c: types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f" re: {c[-1]['content']} ")])
            return [reply(c) for c in conversations]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    out = tmp_path / "v.jsonl"
    assert answer(tiny_llama_dir, out, question_dir, "--backend", "vllm", "--question-begin", "4",
                  "--seed", "3") == 0
    init, turn1, turn2 = calls
    assert init[1]["model"] == str(tiny_llama_dir) and init[1]["seed"] == 3
    assert [p["temperature"] for p in turn1[2]] == [0.7, 0.1, 0.7]  # writing, stem, roleplay
    assert all(p["max_tokens"] == 10 for p in turn1[2] + turn2[2])
    q5 = turn2[1][0]  # turn 2 continues turn 1's conversation with the model's (stripped) answer
    assert q5 == [{"role": "user", "content": "Write a haiku about rain."},
                  {"role": "assistant", "content": "re: Write a haiku about rain."},
                  {"role": "user", "content": "Make it sadder."}]
    recs = records(out)
    assert [r["question_id"] for r in recs] == [5, 6, 7]
    assert recs[0]["choices"] == [{"index": 0, "turns": ["re: Write a haiku about rain.", "re: Make it sadder."]}]
