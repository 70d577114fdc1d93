"""Grow the packaged SmolLM2-135M-Instruct (hidden 576, 30 layers) to hidden 768 and 36 layers.

Measures, on whatever machine runs it:
- wall time of `align grow` end to end (load, grow, save) against a baseline measured in the
  same run: loading the source and saving it unchanged (the I/O floor);
- FPI + zero layers: max |logit difference| to the source on a few chat prompts, float32;
- held-out loss (mean token cross-entropy) of the source and the grown variants on the packaged
  dummy conversations rendered with the chat template.

    python bench/bench_grow.py [--conversations 32] [--max-tokens 256] [--out outputs/bench_grow]
    python bench/bench_grow.py --exactness-only     # FPI in float64 on the real model (~8 min on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from align.cli import main as align_main  # noqa: E402
from align.grow import grow_model  # noqa: E402
from align.plumbing.accounting import count_parameters  # noqa: E402
from align.plumbing.packaged import dummy_conversations, export_smollm2  # noqa: E402

SPEC = {"hidden_size": 768, "num_attention_heads": 12, "num_key_value_heads": 4, "intermediate_size": 2048,
        "num_hidden_layers": 36}
VARIANTS = [("fpi", "zero"), ("fpi", "stack"), ("fpi", "interpolate"), ("aki", "zero"), ("aki", "stack")]
PROMPTS = ["What is the capital of France?", "Write a haiku about autumn.",
           "Explain what a prime number is in one sentence.", "Give me three tips for learning to cook.",
           "How do I reverse a list in Python?"]


def chat_texts(tokenizer, n: int) -> list[str]:
    """The first n dummy conversations, ShareGPT roles mapped to chat roles, rendered with the template."""
    roles = {"human": "user", "gpt": "assistant"}
    rows = json.loads(Path(dummy_conversations()).read_text())[:n]
    return [tokenizer.apply_chat_template([{"role": roles[t["from"]], "content": t["value"]}
                                           for t in row["conversations"]], tokenize=False) for row in rows]


def batches(tokenizer, texts: list[str], max_tokens: int, size: int = 8):
    for i in range(0, len(texts), size):
        yield tokenizer(texts[i:i + size], return_tensors="pt", padding=True, truncation=True,
                        max_length=max_tokens)


@torch.no_grad()
def heldout_loss(model, tokenizer, texts: list[str], max_tokens: int) -> float:
    total, count = 0.0, 0
    for enc in batches(tokenizer, texts, max_tokens):
        logits = model(**enc).logits[:, :-1].float()
        labels = enc["input_ids"][:, 1:]
        mask = enc["attention_mask"][:, 1:].bool()
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
        total += float(losses[mask].sum())
        count += int(mask.sum())
    return total / count


@torch.no_grad()
def max_logit_diff(a, b, tokenizer) -> tuple[float, bool]:
    worst, same_greedy = 0.0, True
    for prompt in PROMPTS:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)["input_ids"]
        worst = max(worst, float((a(ids).logits - b(ids).logits).abs().max()))
        kw = dict(max_new_tokens=20, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        same_greedy &= torch.equal(a.generate(ids, **kw), b.generate(ids, **kw))
    return worst, same_greedy


def float64_exactness(source, tokenizer) -> dict:
    """FPI + zero layers on the real model in float64: with transformers' RMSNorm (which computes in
    float32 even for float64 inputs) and with an RMSNorm computed in float64 (the method's own error)."""
    from transformers.models.llama import modeling_llama

    wide = source.to(torch.float64)
    grown = grow_model(wide, SPEC, method="fpi", depth="zero", seed=0)
    result = {"float64_library_rmsnorm": max_logit_diff(wide, grown, tokenizer)[0]}
    original = modeling_llama.LlamaRMSNorm.forward

    def float64_norm(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))

    modeling_llama.LlamaRMSNorm.forward = float64_norm
    try:
        result["float64_float64_rmsnorm"] = max_logit_diff(wide, grown, tokenizer)[0]
    finally:
        modeling_llama.LlamaRMSNorm.forward = original
    return result


def timed_cli_growth(source: Path, spec_path: Path, work: Path) -> tuple[float, float]:
    """(baseline load+save seconds, `align grow` seconds), both measured now."""
    from transformers import AutoModelForCausalLM

    start = time.perf_counter()
    AutoModelForCausalLM.from_pretrained(source, dtype="auto").save_pretrained(work / "copy")
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    status = align_main(["grow", "--from", str(source), "--to", str(spec_path), "--method", "aki",
                         "--depth", "stack", "--out", str(work / "grown")])
    grow = time.perf_counter() - start
    assert status == 0 and (work / "grown" / "run_card.json").is_file()
    return baseline, grow


def plot(losses: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    names = list(losses)
    ax.barh(names, [losses[n] for n in names], color=["#555"] + ["#3b7dd8"] * (len(names) - 1))
    for y, name in enumerate(names):
        ax.text(losses[name], y, f" {losses[name]:.3f}", va="center")
    ax.set_xlim(0, max(losses.values()) * 1.15)
    ax.set_xlabel("held-out loss (nats/token, dummy conversations)")
    ax.set_title("SmolLM2-135M-Instruct grown to hidden 768, 36 layers")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--conversations", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--out", default="outputs/bench_grow")
    parser.add_argument("--exactness-only", action="store_true",
                        help="only the float64 FPI check (max |logit diff|), written to OUT/exactness.json")
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source_dir = export_smollm2()
    tokenizer = AutoTokenizer.from_pretrained(source_dir)
    source = AutoModelForCausalLM.from_pretrained(source_dir, dtype=torch.float32).eval()
    if args.exactness_only:
        exact = float64_exactness(source, tokenizer)
        (out / "exactness.json").write_text(json.dumps(exact, indent=2) + "\n")
        print(json.dumps(exact, indent=2))
        return 0
    results: dict = {"spec": SPEC, "nproc": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                     "conversations": args.conversations, "max_tokens": args.max_tokens}

    work = Path(tempfile.mkdtemp(prefix="bench-grow-"))
    try:
        spec_path = work / "spec.yaml"
        spec_path.write_text("".join(f"{k}: {v}\n" for k, v in SPEC.items()))
        baseline, grow = timed_cli_growth(source_dir, spec_path, work)
        results["wall_s"] = {"load_and_save_source": round(baseline, 2), "align_grow_aki_stack": round(grow, 2),
                             "ratio": round(grow / baseline, 2)}
        print(f"align grow (aki, stack) {grow:.1f} s; load+save source {baseline:.1f} s; ratio {grow / baseline:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    texts = chat_texts(tokenizer, args.conversations)
    losses = {"source": heldout_loss(source, tokenizer, texts, args.max_tokens)}
    print(f"source: held-out loss {losses['source']:.4f}", flush=True)
    results["grow_model_s"] = {}
    for method, depth in VARIANTS:
        start = time.perf_counter()
        grown = grow_model(source, SPEC, method=method, depth=depth, seed=0)
        results["grow_model_s"][f"{method}+{depth}"] = round(time.perf_counter() - start, 2)
        if (method, depth) == ("fpi", "zero"):
            diff, same = max_logit_diff(source, grown, tokenizer)
            results["fpi_zero_max_logit_diff_float32"] = diff
            results["fpi_zero_same_greedy_20_tokens"] = same
            print(f"fpi+zero: max |logit diff| {diff:.3e}, same greedy generation: {same}", flush=True)
        losses[f"{method}+{depth}"] = heldout_loss(grown, tokenizer, texts, args.max_tokens)
        print(f"{method}+{depth}: held-out loss {losses[f'{method}+{depth}']:.4f}", flush=True)
        results["parameters"] = count_parameters(grown)
        del grown
    results["heldout_loss"] = {k: round(v, 4) for k, v in losses.items()}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(losses, out / "heldout_loss.png")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
