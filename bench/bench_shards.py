"""`align cpt` from token shards: time to step 1, peak RSS and datasets cache at 5 MB vs 2 GB of shards, and
training tokens per CPU-second from shards vs from text rows on the same data.

    python bench/bench_shards.py [--big-gb 2] [--steps 30] [--out outputs/bench/shards]

Model: a small random Llama (hidden 64, 2 layers) with SmolLM2's tokenizer (49,152 ids: uint16 shards), so
that the data path, not the model, is what a difference would show. Each measurement is a fresh
subprocess running the real command in-process (`align.train.cpt.main`), with its own empty datasets cache:

- start-up: shards of random token ids written directly (5 MB and --big-gb GB, deleted after), max_steps 1,
  one 1024-token block:
  wall seconds from the process start to the end of step 1, peak RSS (ru_maxrss) at that point, bytes
  written to the datasets cache;
- throughput: synthetic text (bench_tokenize's generator) trained as text rows (TRL tokenizes and packs,
  wrapped) and as shards of the same text (`align tokenize`), --steps steps of batch 4 x 256 tokens:
  tokens per CPU-second (process time) from the end of step 1 to the end of the last step.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CPU = ["--bf16", "false", "--gradient_checkpointing", "false", "--report_to", "none", "--save_strategy", "no",
       "--logging_steps", "1000", "--dataloader_num_workers", "0", "--dataloader_pin_memory", "false",
       "--learning_rate", "3.0e-4"]


def tiny_model(out: Path) -> Path:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from align.plumbing.packaged import export_smollm2

    tok = AutoTokenizer.from_pretrained(export_smollm2(tokenizer_only=True))
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def random_shards(folder: Path, tokens: int, model: Path, files: int = 4, seed: int = 0) -> Path:
    """Shards of random ids (uniform over the vocabulary), a document end every 1000 tokens."""
    import numpy as np
    from transformers import AutoTokenizer

    from align.train.shards import FORMAT, shard_name, tokenizer_identity

    folder.mkdir(parents=True)
    identity = tokenizer_identity(AutoTokenizer.from_pretrained(model), str(model))
    rng = np.random.default_rng(seed)
    records = []
    for i in range(files):
        n = tokens // files
        with open(folder / shard_name(i), "wb") as out:
            for start in range(0, n, 1 << 25):
                out.write(rng.integers(0, identity["vocab_size"], min(1 << 25, n - start), dtype=np.uint16).tobytes())
        ends = np.append(np.arange(1000, n, 1000, dtype="<u8"), np.uint64(n))
        (folder / (shard_name(i) + ".index")).write_bytes(ends.tobytes())
        records.append({"file": shard_name(i), "tokens": n, "documents": len(ends)})
    meta = {"format": FORMAT, "dtype": "uint16", "tokenizer": identity, "files": records,
            "fingerprint": f"random:{seed}", "tokens": sum(r["tokens"] for r in records), "source": "random ids"}
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder


def child(mode: str, data: str, model: str, out: str, steps: int, started: float) -> None:
    """One `align cpt` run in this process; prints what the callback measured (JSON)."""
    from transformers import TrainerCallback

    from align.train.cpt import main
    from align.train.lean import LeanSFTTrainer

    marks = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks.append((time.time(), time.process_time(), state.num_input_tokens_seen,
                          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))

    train = LeanSFTTrainer.train

    def timed(self, *args, **kwargs):
        self.add_callback(Clock())
        return train(self, *args, **kwargs)

    LeanSFTTrainer.train = timed
    argv = ["--model_name_or_path", model, "--dataset_name", data, "--output_dir", out, "--max_steps", str(steps),
            "--per_device_train_batch_size", "4" if mode == "throughput" else "1",
            "--max_length", "256" if mode == "throughput" else "1024", *CPU]
    if mode == "throughput" and not Path(data).is_dir():
        argv += ["--max_train_rows", "1000000"]
    assert main(argv) == 0
    (t1, c1, n1, rss1), (t2, c2, n2, _) = marks[0], marks[-1]
    print(json.dumps({"seconds_to_step_1": t1 - started, "peak_rss_mb_at_step_1": rss1,
                      "tokens_per_cpu_second": (n2 - n1) / (c2 - c1) if len(marks) > 1 else None,
                      "tokens_per_second": (n2 - n1) / (t2 - t1) if len(marks) > 1 else None}))


def measure(mode: str, data: Path, model: Path, tmp: Path, steps: int) -> dict:
    cache = Path(tempfile.mkdtemp(dir=tmp, prefix="hf-datasets-"))
    out = Path(tempfile.mkdtemp(dir=tmp, prefix="run-"))
    env = dict(os.environ, HF_DATASETS_CACHE=str(cache), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    proc = subprocess.run([sys.executable, __file__, "--child", mode, str(data), str(model), str(out / "o"),
                           str(steps), repr(time.time())], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["datasets_cache_bytes"] = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-gb", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--text-mb", type=float, default=2.0)
    parser.add_argument("--out", default=str(REPO / "outputs" / "bench" / "shards"))
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, data, model, out, steps, started = args.child
        return child(mode, data, model, out, int(steps), float(started))
    results = {"load_average_at_start": os.getloadavg(), "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        model = tiny_model(tmp / "model")
        small = random_shards(tmp / "small", int(5e6 // 2), model)
        big = random_shards(tmp / "big", int(args.big_gb * 1e9 // 2), model)
        results["startup"] = {"5MB": measure("startup", small, model, tmp, 1),
                              f"{args.big_gb:g}GB": measure("startup", big, model, tmp, 1)}
        print(json.dumps(results["startup"]), flush=True)
        from bench_tokenize import write_corpus

        text = tmp / "text.jsonl"
        write_corpus(text, args.text_mb)
        subprocess.run([sys.executable, "-m", "align.cli", "tokenize", "--source", str(text), "--tokenizer",
                        str(model), "--out", str(tmp / "text-shards"), "--workers", "1"], check=True, cwd=REPO,
                       capture_output=True)
        rows = measure("throughput", text, model, tmp, args.steps)
        shards = measure("throughput", tmp / "text-shards", model, tmp, args.steps)
        results["throughput"] = {"text_rows": rows, "token_shards": shards,
                                 "shards_vs_rows_tokens_per_cpu_second":
                                     shards["tokens_per_cpu_second"] / rows["tokens_per_cpu_second"]}
        print(json.dumps(results["throughput"]), flush=True)
    results["load_average_at_end"] = os.getloadavg()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
