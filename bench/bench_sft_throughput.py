"""SFT throughput on this CPU: padded batches vs length grouping vs packing, same data, same steps.

    python bench/bench_sft_throughput.py [--steps 12] [--rows 400] [--max-length 512] [--out outputs/bench/sft]

A tiny random Llama (SmolLM2 tokenizer, ChatML template) trains with TRL's SFTTrainer on
synthetic chat rows whose token lengths follow a long-tailed (log-normal) spread like
UltraChat's, scaled down to fit a 2-core CPU. Setups, each for the same number of optimizer steps:

- padded: random batches of 8 conversations, padded to the longest in the batch (TRL's default);
- grouped: the same, with transformers' `group_by_length` sampler (less padding, same math);
- packed: TRL's BFD packing (padding-free: sequences concatenated, position_ids restart per
  sequence, attention kept inside each sequence); batch sized so a step holds about as many
  real tokens as a padded step.

Throughput = non-padding tokens trained / train runtime (the trainer's own count; the pad token
is made distinct from eos so every real token is counted). The packed setup's attention
isolation is checked numerically before timing.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def make_rows(tokenizer, n: int, max_length: int, seed: int = 0) -> list[dict]:
    """Chat rows with log-normal token lengths (median ~ max_length / 4, long tail clipped at max_length)."""
    from align.plumbing.packaged import dummy_conversations

    words = " ".join(t["value"] for c in json.loads(Path(dummy_conversations()).read_text())
                     for t in c["conversations"]).split()
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        target = int(min(max_length - 32, max(24, rng.lognormvariate(math.log(max_length / 4), 0.7))))
        user_words = max(4, target // 8)
        answer_words = max(4, int(target * 0.7))  # ~1.2 tokens per word; the template adds ~15
        start = rng.randrange(len(words) - user_words - answer_words - 1)
        rows.append({"messages": [
            {"role": "user", "content": " ".join(words[start:start + user_words])},
            {"role": "assistant", "content": " ".join(words[start + user_words:start + user_words + answer_words])},
        ]})
    return rows


def check_packed_attention(model_dir: Path) -> float:
    """Max logit difference between two sequences packed with restarting position_ids and run separately."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    a, b = torch.randint(0, 1000, (1, 9)), torch.randint(0, 1000, (1, 6))
    with torch.no_grad():
        packed = model(input_ids=torch.cat([a, b], 1), use_cache=False,
                       position_ids=torch.cat([torch.arange(9), torch.arange(6)])[None]).logits
        alone = torch.cat([model(input_ids=a).logits, model(input_ids=b).logits], 1)
    return float((packed - alone).abs().max())


def run_setup(name: str, model_dir: Path, tokenizer, dataset, steps: int, max_length: int, batch: int,
              workdir: Path, **extra) -> dict:
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(output_dir=str(workdir / name), max_steps=steps, per_device_train_batch_size=batch,
                     max_length=max_length, learning_rate=3.0e-4, bf16=False, gradient_checkpointing=False,
                     logging_steps=steps, save_strategy="no", report_to="none", dataloader_num_workers=0,
                     include_num_input_tokens_seen="non_padding", seed=0, disable_tqdm=True,
                     model_init_kwargs={"attn_implementation": "sdpa", "dtype": "float32"}, **extra)
    trainer = SFTTrainer(model=str(model_dir), args=args, train_dataset=dataset, processing_class=tokenizer)
    started = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - started
    tokens = int(trainer.state.num_input_tokens_seen)
    runtime = result.metrics["train_runtime"]
    return {"setup": name, "steps": trainer.state.global_step, "batch": batch, "tokens": tokens,
            "train_runtime_s": round(runtime, 2), "wall_s": round(wall, 2),
            "tokens_per_s": round(tokens / runtime, 1), "final_loss": round(result.training_loss, 3)}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    names = [r["setup"] for r in results]
    values = [r["tokens_per_s"] for r in results]
    ax.bar(names, values, color=["#999999", "#6a9fd4", "#2f6db5"][:len(names)])
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.0f} ({v / values[0]:.2f}x)", ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("non-padding tokens / s")
    ax.set_title("SFT throughput, tiny Llama, 2-core CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", default=str(REPO / "outputs/bench/sft_throughput"))
    args = parser.parse_args()

    import os

    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from align.plumbing.packaged import export_smollm2
    from align.train.chat import prepare_tokenizer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-sft-"))
    tokenizer = AutoTokenizer.from_pretrained(export_smollm2(tokenizer_only=True))
    tokenizer.pad_token = "<|endoftext|>"  # distinct from eos (<|im_end|>), so no real token is counted as padding
    prepare_tokenizer(tokenizer, assistant_only_loss=True)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=256, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=args.max_length,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    model_dir = workdir / "model"
    LlamaForCausalLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)

    leak = check_packed_attention(model_dir)
    assert leak < 1e-4, f"packed sequences attend across boundaries (max logit diff {leak})"

    rows = make_rows(tokenizer, args.rows, args.max_length)
    lengths = [len(tokenizer.apply_chat_template(r["messages"], return_dict=True)["input_ids"]) for r in rows]
    mean_len = sum(lengths) / len(lengths)
    dataset = Dataset.from_list(rows)
    packed_batch = max(1, round(args.batch * mean_len / args.max_length))
    common = dict(model_dir=model_dir, tokenizer=tokenizer, dataset=dataset, steps=args.steps,
                  max_length=args.max_length, workdir=workdir, assistant_only_loss=True)
    results = [
        run_setup("padded", batch=args.batch, **common),
        run_setup("grouped", batch=args.batch, train_sampling_strategy="group_by_length", **common),
        run_setup("packed", batch=packed_batch, packing=True, packing_strategy="bfd", **common),
    ]
    base = results[0]["tokens_per_s"]
    for r in results:
        r["ratio_vs_padded"] = round(r["tokens_per_s"] / base, 2)
    summary = {"machine": {"nproc": os.cpu_count(), "torch_threads": torch.get_num_threads()},
               "data": {"rows": args.rows, "mean_tokens": round(mean_len, 1), "max_tokens": max(lengths),
                        "min_tokens": min(lengths), "max_length": args.max_length},
               "packed_attention_max_logit_diff": leak, "results": results}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(results, out / "throughput.png")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
