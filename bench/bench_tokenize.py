"""`align tokenize` against the tokenizer's own `encode_batch`, and 2 workers against 1, on synthetic text.

    python bench/bench_tokenize.py [--sizes-mb 5,50,500] [--out outputs/bench/tokenize]

Text: synthetic English-like documents (Zipf-distributed words, sentences, 300-3000 words each) written as
one .jsonl per size, generated here and deleted after. Tokenizer: SmolLM2's (49,152 ids: uint16 shards),
exported offline from the packaged GGUF. For each size, in this order:

- encode_batch: a subprocess with one rayon thread reads the same documents and calls
  `Tokenizer.encode_batch` on batches of 4096, timing only the encode calls: the tokenizer's own throughput
  on one core; then `encode_batch_fast` the same way (the same ids without character offsets: what an
  `align tokenize` worker calls);
- align tokenize --workers 1 --shards 2: the whole command, wall time (start-up, reading, writing included);
- align tokenize --workers 2 --shards 2: the same, two worker processes.

Reported: MB/s and tokens/s of each, tokenize-1 / encode_batch (per core: the whole command, and inside its
worker: reading + encoding + writing, the command's fixed start-up left out), tokenize-2 / tokenize-1, bytes of
shard per token, and the load average at the start and end (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SYLLABLES = ["an", "be", "con", "de", "er", "for", "ge", "in", "ing", "la", "men", "ni", "o", "per", "re", "sta",
             "ter", "tion", "un", "ver", "wa", "y", "al", "com", "ex", "pro", "ly", "ment", "ous", "the"]


def vocabulary(rng: random.Random, n: int = 20000) -> list[str]:
    common = ("the of and to a in is that for it as was with on by be are this from at or an which have not "
              "but they their one all were we can more has been its also other these some when there than").split()
    return common + ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(n)]


def write_corpus(path: Path, megabytes: float, seed: int = 0) -> int:
    """Documents of Zipf-distributed words until `megabytes` are written; returns the document count."""
    rng = random.Random(seed)
    words = vocabulary(rng)
    weights = [1 / (rank + 1) for rank in range(len(words))]
    target, written, docs = int(megabytes * 1e6), 0, 0
    with open(path, "w", encoding="utf-8") as out:
        while written < target:
            tokens = rng.choices(words, weights, k=rng.randint(300, 3000))
            sentences, i = [], 0
            while i < len(tokens):
                n = rng.randint(6, 24)
                sentences.append(" ".join(tokens[i:i + n]).capitalize() + rng.choice([".", ".", ".", "?", ","]))
                i += n
            line = json.dumps({"text": " ".join(sentences)}) + "\n"
            out.write(line)
            written += len(line.encode())
            docs += 1
    return docs


def encode_batch_child(path: str, tokenizer_dir: str) -> None:
    """One core: read the documents, time only encode_batch over batches of 4096 (prints JSON)."""
    os.environ["RAYON_NUM_THREADS"] = "1"
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json"))
    with open(path, encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in fh]
    result = {}
    for method in ("encode_batch", "encode_batch_fast"):
        tokens, seconds = 0, 0.0
        for start in range(0, len(texts), 4096):
            t0 = time.perf_counter()
            encoded = getattr(tok, method)(texts[start:start + 4096], add_special_tokens=False)
            seconds += time.perf_counter() - t0
            tokens += sum(len(e.ids) + 1 for e in encoded)  # + eos, as the shards count
        result[method] = {"tokens": tokens, "seconds": seconds}
    print(json.dumps(result))


def run_tokenize(path: Path, tokenizer_dir: str, out: Path, workers: int) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "align.cli", "tokenize", "--source", str(path), "--tokenizer",
                           tokenizer_dir, "--out", str(out), "--workers", str(workers), "--shards", "2"],
                          cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    meta = json.loads((out / "metadata.json").read_text())
    size = sum((out / f["file"]).stat().st_size for f in meta["files"])
    shutil.rmtree(out)
    return {"tokens": meta["tokens"], "seconds": seconds, "shard_bytes_per_token": size / meta["tokens"],
            "worker_seconds": sum(f["seconds"] for f in meta["files"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", default="5,50,500")
    parser.add_argument("--out", default=str(REPO / "outputs" / "bench" / "tokenize"))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return encode_batch_child(*args.child)
    from align.plumbing.packaged import export_smollm2

    tokenizer_dir = str(export_smollm2(tokenizer_only=True))
    results = {"load_average_at_start": os.getloadavg(), "cores": os.cpu_count(), "sizes": []}
    with tempfile.TemporaryDirectory() as tmp:
        for mb in [float(s) for s in args.sizes_mb.split(",")]:
            corpus = Path(tmp) / f"text-{mb:g}mb.jsonl"
            docs = write_corpus(corpus, mb)
            child = subprocess.run([sys.executable, __file__, "--child", str(corpus), tokenizer_dir],
                                   capture_output=True, text=True, check=True)
            timed = json.loads(child.stdout.strip().splitlines()[-1])
            encode, fast = timed["encode_batch"], timed["encode_batch_fast"]
            one = run_tokenize(corpus, tokenizer_dir, Path(tmp) / "w1", 1)
            two = run_tokenize(corpus, tokenizer_dir, Path(tmp) / "w2", 2)
            row = {"megabytes": mb, "documents": docs, "tokens": one["tokens"],
                   "encode_batch_1core_tokens_per_s": encode["tokens"] / encode["seconds"],
                   "encode_batch_fast_1core_tokens_per_s": fast["tokens"] / fast["seconds"],
                   "tokenize_1_worker_tokens_per_s": one["tokens"] / one["seconds"],
                   "tokenize_2_workers_tokens_per_s": two["tokens"] / two["seconds"],
                   "tokenize_1_worker_mb_per_s": mb / one["seconds"],
                   "shard_bytes_per_token": one["shard_bytes_per_token"]}
            row["tokenize_1_worker_vs_encode_batch"] = (row["tokenize_1_worker_tokens_per_s"]
                                                        / row["encode_batch_1core_tokens_per_s"])
            row["tokenize_1_worker_in_worker_vs_encode_batch"] = (one["tokens"] / one["worker_seconds"]
                                                                  / row["encode_batch_1core_tokens_per_s"])
            row["2_workers_vs_1"] = row["tokenize_2_workers_tokens_per_s"] / row["tokenize_1_worker_tokens_per_s"]
            results["sizes"].append(row)
            print(json.dumps(row), flush=True)
            corpus.unlink()
    results["load_average_at_end"] = os.getloadavg()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
