"""The hf backend's continuous batching on every attention family it claims: greedy text identical to one
question at a time through `model.generate`, on both turns, with rows leaving and joining mid-decode."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from test_answer import QUESTIONS as ANSWER_QUESTIONS

# test_answer's four greedy questions, and a fifth (short) math one so rows leave and join mid-decode.
QUESTIONS = [*ANSWER_QUESTIONS[:4], {"question_id": 5, "category": "math", "turns": ["Is 7 prime?", "And 9?"]}]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def greedy(model_dir: Path, **settings) -> dict:
    import judges.answers.backends.hf as hf

    return {q["question_id"]: c[0]["turns"] for q, c in hf.hf_answers(
        str(model_dir), QUESTIONS, hf.Settings(max_new_token=14, **settings))}


@pytest.mark.parametrize("family", ["llama", "gemma", "gemma2", "qwen2"])
def test_continuous_batching_equals_batch_one(family, tiny_family, caplog, monkeypatch):
    """Two rows for five conversations: answers leave the batch as they end, waiting prompts and second
    turns (continuing their first turn's cache) join mid-decode, the cache is re-laid out for longer
    prompts; every turn is the text of batch-1 `generate` (which, for the sliding families, keeps a
    window-sized sliding cache of its own)."""
    import judges.answers.backends.hf_rows as rows

    model_dir = tiny_family(family)
    single = greedy(model_dir, batch_size=1, cache_reuse=False)
    relayouts = []
    relayout = rows.RowBatch.relayout
    monkeypatch.setattr(rows.RowBatch, "relayout", lambda self, *a, **k: (relayouts.append(a), relayout(self, *a, **k)))
    with caplog.at_level(logging.INFO, logger="judges.answers.backends.hf"):
        batched = greedy(model_dir, batch_size=2)
    assert "align engine" in caplog.text
    if family in ("gemma2", "qwen2"):
        assert "sliding-window (16)" in caplog.text
    assert relayouts  # the layout changed under running rows at least once
    assert batched == single
    texts = [t for turns in single.values() for t in turns]
    assert len(texts) == 10 and sum(bool(t.strip()) for t in texts) >= 7  # real text was compared


def test_sampled_rows_do_not_depend_on_their_batch(tiny_family):
    """Each sampled conversation has its own seeded sampler: the same text alone or with company."""
    model_dir = tiny_family("llama")
    sampled = [dict(q, category="writing") for q in QUESTIONS[:3]]
    import judges.answers.backends.hf as hf

    def run(batch_size: int, seed: int = 0) -> dict:
        return {q["question_id"]: c[0]["turns"] for q, c in hf.hf_answers(
            str(model_dir), sampled, hf.Settings(max_new_token=10, batch_size=batch_size, seed=seed))}

    alone, together = run(1), run(3)
    assert alone == together
    assert run(3, seed=1) != together


def test_length_summary():
    from judges.lengths import length_summary

    assert length_summary([5, 1, 9, 3, 9, 7, 2, 8, 4, 6], 9) == {"turns": 10, "median": 5.5, "p90": 9, "max": 9,
                                                                 "at_cap": 2}
    assert length_summary([], 4) == {"turns": 0}


def test_which_models_can_reuse_caches():
    """Full and sliding attention run on the fast path; recurrent state and chunked attention fall back,
    with the reason that goes to the log."""
    from types import SimpleNamespace

    from transformers import Gemma2Config, Llama4TextConfig, LlamaConfig, MambaConfig, Qwen2Config

    from judges.answers.backends.hf_rows import cache_reuse_check

    def check(config):
        return cache_reuse_check(SimpleNamespace(config=config))

    assert check(LlamaConfig(num_hidden_layers=2)) == (True, "full attention")
    ok, why = check(Gemma2Config(num_hidden_layers=4, sliding_window=16))
    assert ok and why.startswith("2 of 4 layers sliding-window (16)")
    assert check(Qwen2Config(num_hidden_layers=2, use_sliding_window=True, sliding_window=16))[0]
    ok, why = check(MambaConfig(num_hidden_layers=2))
    assert not ok and "LinearAttentionLayer" in why
    ok, why = check(Llama4TextConfig(num_hidden_layers=4, attention_chunk_size=8))
    assert not ok and "chunked_attention" in why
