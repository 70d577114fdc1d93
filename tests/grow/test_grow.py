"""Model growth (align grow): exactness of FPI, structure of AKI/stacking, noise, CLI and bad input.

Models are tiny random configs in float64 with eager attention, randomized norm weights and one
large embedding channel (so an RMSNorm mistake cannot hide). transformers' RMSNorms compute in
float32 even for float64 inputs; the `exact_norms` fixture makes them compute in the input dtype
so that the 1e-8 bound tests the method, not the library's float32 rounding (~1e-6).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from conftest import align_status

from align.grow import grow_model
from align.grow.depth import layer_order
from align.grow.width import plan_width

REPO = Path(__file__).resolve().parents[2]
VOCAB = 300
# The lead's acceptance case: non-integer width ratio 1.25, heads 4->5 (GQA 4/2 -> MHA 5/5), depth 2->3.
GROW = {"hidden_size": 40, "num_attention_heads": 5, "num_key_value_heads": 5, "intermediate_size": 80,
        "num_hidden_layers": 3}


@pytest.fixture
def exact_norms(monkeypatch):
    from transformers.models.gemma import modeling_gemma
    from transformers.models.gemma2 import modeling_gemma2
    from transformers.models.llama import modeling_llama
    from transformers.models.mistral import modeling_mistral
    from transformers.models.qwen2 import modeling_qwen2

    def plain(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))

    def offset(self, x):
        return (1 + self.weight) * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    for cls in (modeling_llama.LlamaRMSNorm, modeling_mistral.MistralRMSNorm, modeling_qwen2.Qwen2RMSNorm):
        monkeypatch.setattr(cls, "forward", plain)
    for cls in (modeling_gemma.GemmaRMSNorm, modeling_gemma2.Gemma2RMSNorm):
        monkeypatch.setattr(cls, "forward", offset)


def tiny(family: str = "llama", tied: bool = True, seed: int = 0, **shape):
    """A float64 random model of `family` with randomized norms/biases and one loud embedding channel."""
    from transformers import AutoConfig, AutoModelForCausalLM

    kw = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=tied, head_dim=8,
              bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if family == "gemma2":
        kw.update(query_pre_attn_scalar=16, attn_logit_softcapping=30.0, final_logit_softcapping=20.0,
                  sliding_window=4)
    kw.update(shape)
    config = AutoConfig.for_model(family, **kw)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float64)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5) if family in ("llama", "mistral", "qwen2") else p.uniform_(-0.5, 0.5)
            elif name.endswith("bias"):
                p.normal_(0, 0.3)
            else:
                p.normal_(0, 0.2)
        model.get_input_embeddings().weight[:, 3] *= 25
    return model.eval()


def input_ids(n: int = 2, length: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.randint(3, VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))


def max_logit_diff(a, b, ids) -> float:
    with torch.no_grad():
        return (a(ids).logits - b(ids).logits).abs().max().item()


def greedy(model, ids) -> torch.Tensor:
    with torch.no_grad():
        return model.generate(ids, max_new_tokens=8, do_sample=False, attention_mask=torch.ones_like(ids),
                              pad_token_id=0, eos_token_id=None)


FAMILIES = [("llama", True), ("llama", False), ("mistral", False), ("qwen2", True), ("gemma", True), ("gemma2", True)]


@pytest.mark.parametrize("family,tied", FAMILIES, ids=[f"{f}-{'tied' if t else 'untied'}" for f, t in FAMILIES])
def test_fpi_with_zero_layers_preserves_logits_and_greedy_generation(exact_norms, family, tied):
    source = tiny(family, tied)
    grown = grow_model(source, GROW, method="fpi", depth="zero", seed=3)
    ids = input_ids()
    assert grown.config.hidden_size == 40 and grown.config.num_hidden_layers == 3
    assert grown.dtype == torch.float64
    assert max_logit_diff(source, grown, ids) < 1e-8
    assert torch.equal(greedy(source, ids[:1]), greedy(grown, ids[:1]))


@pytest.mark.parametrize("heads,kv,new_heads,new_kv", [(9, 3, 12, 4), (6, 2, 8, 4)])
def test_fpi_exact_for_gqa_and_uneven_copies(exact_norms, heads, kv, new_heads, new_kv):
    # 9/3 -> 12/4 is SmolLM2's step (groups of 3 kept); 6/2 -> 8/4 splits groups of 3 into groups of 2.
    # Widths 36 -> 48 and FFN 50 -> 70 give every unit map uneven copy counts.
    src = {"hidden_size": heads * 4, "intermediate_size": 50, "num_attention_heads": heads,
           "num_key_value_heads": kv, "head_dim": 4}
    tgt = {"hidden_size": new_heads * 4, "intermediate_size": 70, "num_attention_heads": new_heads,
           "num_key_value_heads": new_kv}
    source = tiny(**src)
    grown = grow_model(source, tgt, method="fpi", depth="zero", seed=5)
    plan = plan_width(src, tgt, seed=5)
    # a copied query head still belongs to the kv group of the head it copies
    group_s, group_t = heads // kv, new_heads // new_kv
    assert (plan.q_heads.index // group_s == plan.kv_heads.index.repeat_interleave(group_t)).all()
    assert max_logit_diff(source, grown, input_ids()) < 1e-8


def test_hidden_states_are_the_predicted_scaled_copies(exact_norms):
    source = tiny()
    grown = grow_model(source, GROW, method="fpi", depth="zero", seed=3)
    plan = plan_width({"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4,
                       "num_key_value_heads": 2, "head_dim": 8}, GROW, seed=3)
    order = layer_order(2, 3, "zero")
    ids = input_ids()
    with torch.no_grad():
        hs = source(ids, output_hidden_states=True).hidden_states
        ht = grown(ids, output_hidden_states=True).hidden_states
    # RMSNorm-safe scales: copies of a unit copied c times carry sqrt(Dt / (Ds c)) of it.
    assert torch.allclose(plan.scale[:32][plan.hidden.counts[:32] == 1], torch.tensor(math.sqrt(40 / 32),
                                                                                      dtype=torch.float64))
    predicted = [hs[0]] + [hs[order[t] + 1] for t in range(3)]
    for k in range(3):  # the last entry is after the final norm; the logits test covers it
        expected = predicted[k][..., plan.hidden.index] * plan.scale
        assert (ht[k] - expected).abs().max().item() < 1e-9, f"hidden state {k}"
    assert (ht[1] - ht[2]).abs().max().item() < 1e-12  # the zero layer is the identity


def test_aki_new_units_come_from_the_layer_above_and_change_logits(exact_norms):
    source = tiny(num_hidden_layers=3)
    grown = grow_model(source, {**GROW, "num_hidden_layers": 3}, method="aki", depth="stack", seed=3)
    fpi = grow_model(source, {**GROW, "num_hidden_layers": 3}, method="fpi", depth="stack", seed=3)
    plan = plan_width({"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4,
                       "num_key_value_heads": 2, "head_dim": 8}, GROW, seed=3)
    g, f = plan.hidden, plan.ffn
    src_layers, new_layers = source.model.layers, grown.model.layers
    for layer, above in ((0, 1), (1, 2), (2, 2)):  # the last layer takes new units from itself
        gate = new_layers[layer].mlp.gate_proj.weight
        want_new = src_layers[above].mlp.gate_proj.weight[f.index[64:]][:, g.index] / g.counts
        want_old = src_layers[layer].mlp.gate_proj.weight[:, g.index] / g.counts
        assert torch.allclose(gate[64:], want_new) and torch.allclose(gate[:64], want_old)
        down = new_layers[layer].mlp.down_proj.weight  # new hidden rows, scaled residual writers
        want = src_layers[above].mlp.down_proj.weight[g.index[32:]][:, f.index] / f.counts
        assert torch.allclose(down[32:], want * plan.scale[32:, None])
        q = new_layers[layer].self_attn.q_proj.weight.view(5, 8, 40)  # head 4 is new
        want_q = src_layers[above].self_attn.q_proj.weight.view(4, 8, 32)[plan.q_heads.index[4]]
        assert torch.allclose(q[4], want_q[:, g.index] / g.counts)
    ids = input_ids()
    assert max_logit_diff(source, fpi, ids) < 1e-8
    assert max_logit_diff(source, grown, ids) > 1e-3


def test_depth_orders_and_stacked_layers_copy_the_top():
    assert layer_order(18, 22, "stack") == list(range(18)) + [14, 15, 16, 17]
    assert layer_order(30, 36, "stack") == list(range(30)) + list(range(24, 30))
    assert layer_order(2, 5, "stack") == [0, 1, 0, 1, 1]
    assert layer_order(2, 3, "interpolate") == [0, 0, 1]
    assert layer_order(30, 36, "interpolate") == sorted(layer_order(30, 36, "interpolate"))
    assert set(layer_order(30, 36, "interpolate")) == set(range(30))
    source = tiny(num_hidden_layers=3)
    grown = grow_model(source, {"num_hidden_layers": 5}, method="fpi", depth="stack")
    layers = grown.model.layers
    for target, src in ((3, 1), (4, 2)):
        assert torch.equal(layers[target].self_attn.o_proj.weight, source.model.layers[src].self_attn.o_proj.weight)
        assert layers[target].mlp.up_proj.weight.data_ptr() != layers[src].mlp.up_proj.weight.data_ptr()
    assert max_logit_diff(source, grown, input_ids()) > 1e-3
    zero = grow_model(source, {"num_hidden_layers": 5}, method="fpi", depth="zero")
    assert sum(int(layer.mlp.down_proj.weight.abs().sum() == 0) for layer in zero.model.layers) == 2


def _ffn_gate_grads(model, ids):
    model.zero_grad()
    out = model(ids, labels=ids)
    out.loss.backward()
    return model.model.layers[0].mlp.gate_proj.weight.grad


@pytest.mark.parametrize("tied", [True, False])
def test_noise_keeps_fpi_exact_and_gives_copies_different_gradients(exact_norms, tied):
    source = tiny(tied=tied)
    plain = grow_model(source, GROW, method="fpi", depth="zero", seed=3)
    noisy = grow_model(source, GROW, method="fpi", depth="zero", seed=3, noise=0.05)
    ids = input_ids()
    assert max_logit_diff(source, noisy, ids) < 1e-8
    assert not torch.equal(plain.model.layers[0].mlp.down_proj.weight, noisy.model.layers[0].mlp.down_proj.weight)
    ffn = plan_width({"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4,
                      "num_key_value_heads": 2, "head_dim": 8}, GROW, seed=3).ffn
    copy = 64  # first new FFN unit, and the source unit it duplicates
    original = int(ffn.index[copy])
    grad_plain, grad_noisy = _ffn_gate_grads(plain.train(), ids), _ffn_gate_grads(noisy.train(), ids)
    assert torch.allclose(grad_plain[copy], grad_plain[original], atol=1e-12)
    assert (grad_noisy[copy] - grad_noisy[original]).abs().max() > 1e-6


# ---------------------------------------------------------------- the command

def _grow_cli(*args: str) -> int | None:
    return align_status(["grow", *args])


def _spec(tmp_path: Path, content: dict, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(content))
    return path


def test_cli_writes_a_loadable_checkpoint_with_tokenizer_and_run_card(tmp_path, tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = _spec(tmp_path, {"hidden_size": 40, "num_attention_heads": 5, "num_key_value_heads": 5,
                            "intermediate_size": 80, "num_hidden_layers": 3})
    out = tmp_path / "grown"
    assert _grow_cli("--from", str(tiny_llama_dir), "--to", str(spec), "--method", "fpi", "--depth", "zero",
                     "--seed", "7", "--out", str(out)) == 0
    card = json.loads((out / "run_card.json").read_text())
    assert card["method"] == "fpi" and card["seed"] == 7 and card["layer_order"] == [0, 0, 1]
    assert card["parameters"]["target"] > card["parameters"]["source"]
    source = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    grown = AutoModelForCausalLM.from_pretrained(out)
    assert grown.dtype == source.dtype == torch.float32
    assert grown.lm_head.weight.data_ptr() == grown.model.embed_tokens.weight.data_ptr()  # tied stays tied
    template = AutoTokenizer.from_pretrained(tiny_llama_dir).chat_template
    assert AutoTokenizer.from_pretrained(out).chat_template == template
    ids = input_ids()
    assert max_logit_diff(source, grown, ids) < 1e-4  # float32 end to end
    # the saved weights are exactly what grow_model builds in memory
    again = grow_model(source, yaml.safe_load(spec.read_text()), method="fpi", depth="zero", seed=7)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), grown.state_dict().values()))


BAD_SPECS = [
    ({"hidden_size": 16}, "smaller than the source's 32"),
    ({"hidden_size": 40}, "does not give the source's head_dim 8"),
    ({"head_dim": 16}, "head_dim 16 differs from the source's 8"),
    ({"vocab_size": 100}, "vocab_size 100 differs"),
    ({"num_attention_heads": 6, "num_key_value_heads": 4}, "not divisible by num_key_value_heads 4"),
    ({"hidden_sise": 40}, "unknown key 'hidden_sise'"),
    ({"num_hidden_layers": "3"}, "must be a positive integer"),
    ({"num_key_value_heads": 1}, "smaller than the source's 2"),
]


@pytest.mark.parametrize("content,message", BAD_SPECS, ids=[m.split()[0] for _, m in BAD_SPECS])
def test_bad_spec_is_a_one_line_error_and_writes_nothing(tmp_path, tiny_llama_dir, capsys, content, message):
    out = tmp_path / "out"
    status = _grow_cli("--from", str(tiny_llama_dir), "--to", str(_spec(tmp_path, content)), "--out", str(out))
    err = capsys.readouterr().err
    assert status == 2 and message in err and "spec.yaml" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["spec.yaml"]


def test_unsupported_family_and_misuse_are_errors(tmp_path, capsys):
    from transformers import GPT2Config

    gpt2 = tmp_path / "gpt2"
    GPT2Config(n_embd=32, n_layer=1, n_head=4).save_pretrained(gpt2)
    spec = _spec(tmp_path, {"hidden_size": 64})
    assert _grow_cli("--from", str(gpt2), "--to", str(spec), "--out", str(tmp_path / "o")) == 2
    assert "model_type 'gpt2' is not supported" in capsys.readouterr().err
    assert _grow_cli("--to", str(REPO / "recipes/grow/series.yaml"), "--out", str(tmp_path / "o")) == 2
    assert "series file" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    assert _grow_cli("--from", str(gpt2), "--to", str(spec), "--out", str(busy)) == 2
    assert not (tmp_path / "o").exists() and (busy / "keep.txt").read_text() == "x"


def test_real_cli_exit_status_without_traceback(tmp_path, tiny_llama_dir):
    from conftest import run_cli

    spec = _spec(tmp_path, {"intermediate_size": 32})
    done = run_cli("-m", "align.cli", "grow", "--from", str(tiny_llama_dir), "--to", str(spec),
                   "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "intermediate_size 32 is smaller than the source's 64" in done.stderr


def test_series_dry_run_prints_counts_and_the_study_compute(capsys):
    assert _grow_cli("--dry-run", "--to", str(REPO / "recipes/grow/series.yaml")) == 0
    text = capsys.readouterr().out
    for name in ("1B", "2B", "4B", "8B"):
        assert name in text
    nominal = next(line for line in text.splitlines() if line.strip().startswith("nominal size")).split()
    assert nominal[2:4] == ["15.36", "20.40"]
    # 8B: 33 layers of (4·4096² + 3·4096·14336 + 2·4096) + final norm, plus untied 50257x4096 embeddings
    non_embedding = 33 * (4 * 4096 ** 2 + 3 * 4096 * 14336 + 2 * 4096) + 4096
    assert f"{non_embedding:,}" in text and f"{non_embedding + 2 * 50257 * 4096:,}" in text


def test_single_stage_dry_run_allocates_and_writes_nothing(tmp_path, tiny_llama_dir, capsys):
    spec = _spec(tmp_path, {"num_hidden_layers": 4})
    out = tmp_path / "o"
    assert _grow_cli("--from", str(tiny_llama_dir), "--to", str(spec), "--dry-run", "--out", str(out)) == 0
    text = capsys.readouterr().out
    assert "source" in text and "target" in text and not out.exists()


def test_save_load_round_trip_keeps_biases_dtype_and_function(tmp_path, exact_norms):
    from transformers import AutoModelForCausalLM

    source = tiny("qwen2", tied=False)
    grown = grow_model(source, GROW, method="aki", depth="interpolate", seed=2)
    grown.save_pretrained(tmp_path / "qwen2")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "qwen2", attn_implementation="eager")
    assert loaded.config.model_type == "qwen2" and len(loaded.config.layer_types) == 3
    assert loaded.dtype == torch.float64 and loaded.model.layers[2].self_attn.q_proj.bias.shape == (40,)
    assert max_logit_diff(grown, loaded, input_ids()) == 0.0
    half = grow_model(tiny().to(torch.bfloat16), GROW, method="fpi", depth="zero")
    assert half.dtype == torch.bfloat16
    assert half.lm_head.weight.data_ptr() == half.model.embed_tokens.weight.data_ptr()


def test_kv_groups_that_cannot_be_copied_whole_are_rejected():
    from align.grow.model import target_shape
    from align.plumbing.errors import UserError

    src = {"hidden_size": 48, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 6,
           "num_key_value_heads": 2, "head_dim": 8, "vocab_size": VOCAB}
    # 2 source groups of 3 heads need 2 target groups of 2 heads each: 4 kv heads, not 3
    with pytest.raises(UserError, match="num_key_value_heads 3 cannot hold the source's 2 kv groups"):
        target_shape(src, {"num_key_value_heads": 3}, "spec.yaml")
    assert target_shape(src, {"num_key_value_heads": 6}, "spec.yaml")["num_key_value_heads"] == 6
