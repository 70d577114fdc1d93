"""The align engine's CPU speedups change time, never text: grouped attention, packed linear layers,
and sampling by the inverse cumulative distribution."""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from test_answer_families import greedy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("family", ["llama", "gemma2", "qwen2"])
def test_grouped_attention_equals_batch_one(family, tiny_family, monkeypatch):
    """Every conversation in one batch and groups forced on (no cost per call): decoding steps really run
    attention group by group (counted), and every turn is still batch-1 `generate`'s text; Gemma 2 runs
    its own eager attention (softcapping) inside the groups, Qwen2 and Gemma 2 their sliding windows."""
    from transformers import AttentionInterface

    import judges.answers.backends.hf_rows as rows
    from judges.answers.backends.hf_attention import WRAPPED

    model_dir = tiny_family(family)
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
    from judges.answers.backends.hf_attention import plan_groups

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
    from judges.answers.backends.hf_rows import sample_tokens

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


def test_packed_linear_layers_give_the_same_logits(tiny_family):
    """Packed layers give the plain layer's outputs up to the last bit's rounding, for row counts other
    than the one packed for (one row, prompts longer than the batch), with a bias, and through real tiny
    models (Gemma's head tied to its embeddings): same logits within 1e-5, same greedy tokens. Layers
    too small to gain stay plain (the tiny models' own layers; their 49k-entry heads are packed)."""
    from transformers import AutoModelForCausalLM

    from judges.answers.backends.hf_linear import PACK_MIN_WEIGHTS, PackedLinear, pack_linear_layers

    plain = torch.nn.Linear(48, 1000)
    packed = PackedLinear(plain, rows_hint=8)
    with torch.no_grad():
        for shape in [(1, 48), (8, 48), (3, 37, 48)]:
            hidden = torch.randn(shape)
            torch.testing.assert_close(packed(hidden), plain(hidden), rtol=0, atol=1e-5)

    for family in ("llama", "gemma"):
        model = AutoModelForCausalLM.from_pretrained(tiny_family(family)).eval()
        small = [m for m in model.modules() if type(m) is torch.nn.Linear and m.weight.numel() < PACK_MIN_WEIGHTS]
        large = sum(type(m) is torch.nn.Linear for m in model.modules()) - len(small)
        ids = torch.randint(0, model.config.vocab_size, (4, 9))
        with torch.inference_mode():
            before = model(input_ids=ids).logits
            assert pack_linear_layers(model, rows_hint=4) == large > 0 and small
            assert [m for m in model.modules() if type(m) is torch.nn.Linear] == small
            assert pack_linear_layers(model, rows_hint=4) == large  # once: packed layers stay as they are
            head = model.get_output_embeddings()
            assert isinstance(head, PackedLinear)
            if model.config.tie_word_embeddings:
                assert head.weight is model.get_input_embeddings().weight
            after = model(input_ids=ids).logits
        torch.testing.assert_close(after, before, rtol=0, atol=1e-5)
        assert torch.equal(after.argmax(-1), before.argmax(-1))


def test_only_float32_cpu_models_are_packed(tiny_family):
    """A bfloat16 model keeps its plain layers (packing was measured, and is exact enough, for float32)."""
    from transformers import AutoModelForCausalLM

    from judges.answers.backends.hf_linear import pack_linear_layers

    model = AutoModelForCausalLM.from_pretrained(tiny_family("llama"),
                                                 dtype=torch.bfloat16)
    assert pack_linear_layers(model, rows_hint=4) == 0
    assert any(type(m) is torch.nn.Linear for m in model.modules())


def test_shared_prefix_is_encoded_once(tiny_family):
    """The tokens every first turn starts with are encoded once, as they would be alone; nothing is shared
    by one prompt alone or by prompts that differ from their first token; at most all but a prompt's last
    token (which the first decoding step feeds)."""
    from transformers import AutoModelForCausalLM

    from judges.answers.backends.hf_rows import prefill_row, shared_prefix

    model = AutoModelForCausalLM.from_pretrained(tiny_family("qwen2")).eval()
    tokens, kv = shared_prefix(model, [[5, 6, 7, 8, 9], [5, 6, 7, 1], [5, 6, 7, 8]])
    alone, _ = prefill_row(model, [5, 6, 7, 0], None)
    assert tokens == [5, 6, 7] and len(kv) == len(alone.layers) and kv[0][0].shape[-2] == 3
    for (keys, values), layer in zip(kv, alone.layers):
        torch.testing.assert_close(keys, layer.keys, rtol=0, atol=1e-6)
        torch.testing.assert_close(values, layer.values, rtol=0, atol=1e-6)
    assert shared_prefix(model, [[5, 6, 7]]) is None
    assert shared_prefix(model, [[5, 6, 7], [6, 6, 7]]) is None
    assert shared_prefix(model, [[5, 6, 7], [5, 6, 7]])[0] == [5, 6]
