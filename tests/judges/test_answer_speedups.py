"""The align engine's CPU speedups change time, never text: grouped attention, the sliced output head,
and sampling by the inverse cumulative distribution."""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from test_answer_families import greedy, make_tiny, one_torch_thread  # noqa: F401 (autouse fixture)


@pytest.mark.parametrize("family", ["llama", "gemma2", "qwen2"])
def test_grouped_attention_equals_batch_one(family, tmp_path, smollm2_tokenizer_dir, monkeypatch):
    """Every conversation in one batch and groups forced on (no cost per call): decoding steps really run
    attention group by group (counted), and every turn is still batch-1 `generate`'s text; Gemma 2 runs
    its own eager attention (softcapping) inside the groups, Qwen2 and Gemma 2 their sliding windows."""
    from transformers import AttentionInterface

    import judges.backends.hf_rows as rows
    from judges.backends.hf_attention import WRAPPED

    model_dir = make_tiny(family, tmp_path / family, smollm2_tokenizer_dir)
    single = greedy(model_dir, batch_size=1, cache_reuse=False)
    monkeypatch.setattr(rows, "GROUP_CALL_COST", 0)
    split_calls = []
    for name in WRAPPED.values():
        wrapped = AttentionInterface._global_mapping[name]

        def spy(module, query, key, value, mask, row_groups=None, _wrapped=wrapped, **kwargs):
            if row_groups and len(row_groups) > 1:
                split_calls.append(len(row_groups))
            return _wrapped(module, query, key, value, mask, row_groups=row_groups, **kwargs)

        monkeypatch.setitem(AttentionInterface._global_mapping, name, spy)
    assert greedy(model_dir, batch_size=5) == single
    assert split_calls and max(split_calls) >= 2


def test_plan_groups_is_optimal():
    """The dynamic programme finds the cheapest split (checked against every split of small batches)."""
    from judges.backends.hf_attention import plan_groups

    def cost(starts, end, call_cost, groups):
        return sum((last - first) * (end - lowest) + call_cost for first, last, lowest in groups)

    assert plan_groups([0, 0, 100, 100], 200, 10) == [(0, 2, 0), (2, 4, 100)]
    assert plan_groups([0, 0, 100, 100], 200, 10_000) == [(0, 4, 0)]
    rng = random.Random(0)
    for _ in range(200):
        n, end, call_cost = rng.randint(1, 7), 300, rng.choice([0, 50, 400])
        starts = [rng.randint(0, 299) for _ in range(n)]
        groups = plan_groups(starts, end, call_cost)
        assert [g[0] for g in groups] == [0] + [g[1] for g in groups[:-1]] and groups[-1][1] == n
        assert all(lowest == min(starts[a:b]) for a, b, lowest in groups)
        best = min(cost(starts, end, call_cost, [(a, b, min(starts[a:b])) for a, b in zip((0, *cuts), (*cuts, n))])
                   for k in range(n) for cuts in itertools.combinations(range(1, n), k))
        assert cost(starts, end, call_cost, groups) == best


def test_sampling_draws_the_distribution():
    """Seeded draws repeat; entries at -inf (cut by top-k/top-p) are never drawn; frequencies match the
    softmax (5,000 draws, each within 0.03 of its probability)."""
    from judges.backends.hf_rows import sample_tokens

    scores = torch.tensor([[0.0, float("-inf"), 1.0, float("-inf"), 2.0], [float("-inf")] * 4 + [0.0]])
    draws = []
    for seed in range(5000):
        g = [torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)]
        draws.append(sample_tokens(scores, g))
    assert sample_tokens(scores, [torch.Generator().manual_seed(7)] * 2) == draws[7]
    assert all(b == 4 for _, b in draws)
    counts = [sum(a == i for a, _ in draws) / len(draws) for i in range(5)]
    expected = torch.softmax(scores[0], dim=-1).tolist()
    assert counts[1] == counts[3] == 0
    assert all(abs(c - p) < 0.03 for c, p in zip(counts, expected))


def test_sliced_head_gives_the_same_logits(tmp_path, smollm2_tokenizer_dir):
    """Slices of the vocabulary give the same logits up to the last bit's rounding (with a bias, and
    through a real tiny model whose head is tied to its embeddings), and the same greedy tokens."""
    from transformers import AutoModelForCausalLM

    from judges.backends.hf_head import VOCAB_SLICE, SlicedHead, slice_output_head

    head = torch.nn.Linear(16, 3 * VOCAB_SLICE + 5)
    hidden = torch.randn(6, 1, 16)
    with torch.no_grad():
        torch.testing.assert_close(SlicedHead(head)(hidden), head(hidden), rtol=0, atol=1e-5)

    model = AutoModelForCausalLM.from_pretrained(make_tiny("llama", tmp_path / "llama", smollm2_tokenizer_dir)).eval()
    ids = torch.randint(0, model.config.vocab_size, (4, 9))
    with torch.inference_mode():
        before = model(input_ids=ids).logits
        assert slice_output_head(model) and isinstance(model.get_output_embeddings(), SlicedHead)
        assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
        after = model(input_ids=ids).logits
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)
    assert torch.equal(after.argmax(-1), before.argmax(-1))
