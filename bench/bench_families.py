"""Benchmark: the hf backend's answers per attention family, batch-1 loop vs ours, in one run.

Tiny random Llama, Gemma and Gemma 2 checkpoints of one shape (Gemma 2: sliding window 16, far below
MT-Bench prompt lengths, with its attention and final logit softcapping), plus the packaged
SmolLM2-135M-Instruct as the real-weights row. The 40 greedy MT-Bench questions (math, reasoning,
coding, extraction), both turns. Per family, in this one process, one after the other:
- batch-1 loop: one question at a time through `model.generate` (FastChat's loop; the hf backend's
  padded engine with --batch-size 1);
- ours: the hf backend's default engine (continuous batching, unpadded prefill, turn-2 cache reuse).
Each side's time covers loading the checkpoint and answering everything (`hf_answers` end to end), as
wall time and as this process's CPU time: with one torch thread, CPU time is the work done, which other
users of a shared machine change far less than the wall time (their load only stretches the wall clock).

    python bench/bench_families.py --max-new-token 48 --threads 1

Prints a JSON summary (and writes it to --out-dir/summary.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FAMILIES = ("llama", "gemma", "gemma2", "smollm2")
SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=4096)


def tiny_config(family: str, tok):
    from transformers import Gemma2Config, GemmaConfig, LlamaConfig

    shape = dict(SHAPE, vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                 pad_token_id=tok.pad_token_id)
    if family == "llama":
        return LlamaConfig(**shape, head_dim=16, tie_word_embeddings=True)
    if family == "gemma":
        return GemmaConfig(**shape, head_dim=16)
    return Gemma2Config(**shape, head_dim=16, sliding_window=16, query_pre_attn_scalar=16,
                        attn_logit_softcapping=50.0, final_logit_softcapping=30.0)


def checkpoint(family: str, out: Path) -> Path:
    """SmolLM2's packaged weights, or a tiny random checkpoint with SmolLM2's tokenizer and template."""
    from _fixtures import save_random_model  # the same tiny checkpoints as the tests
    from transformers import AutoTokenizer

    from align.plumbing.packaged import export_smollm2

    if family == "smollm2":
        return export_smollm2()
    tok = AutoTokenizer.from_pretrained(export_smollm2(tokenizer_only=True))
    return save_random_model(tiny_config(family, tok), tok, out / f"tiny-{family}")


def run_side(model_dir: Path, questions: list[dict], max_new_token: int, batch_1: bool) -> tuple[dict, dict, list]:
    """(wall and CPU seconds, turns by question id, generated tokens per turn)."""
    import judges.answers.backends.hf as hf

    settings = hf.Settings(max_new_token=max_new_token, batch_size=1 if batch_1 else 32, cache_reuse=not batch_1)
    wall, cpu = time.perf_counter(), time.process_time()
    out = {q["question_id"]: c[0] for q, c in hf.hf_answers(str(model_dir), questions, settings)}
    seconds = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
    lengths = [n for c in out.values() for n in c["turn_tokens"]]
    return seconds, {qid: c["turns"] for qid, c in out.items()}, lengths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--max-new-token", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared 2-core machine)")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--out-dir", default="outputs/bench/families")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    import logging

    import torch

    from judges.lengths import length_summary
    from judges.questions import GREEDY_BELOW, load_questions, temperature_for

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    out = (REPO / args.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    questions = [q for q in load_questions() if temperature_for(q["category"]) < GREEDY_BELOW]
    summary = {"questions": len(questions), "max_new_token": args.max_new_token, "threads": args.threads,
               "nproc": len(os.sched_getaffinity(0)), "shape": SHAPE, "families": {}}
    for family in args.families.split(","):
        model_dir = checkpoint(family, out)
        load_before = os.getloadavg()[0]
        t_single, single, _ = run_side(model_dir, questions, args.max_new_token, batch_1=True)
        t_ours, ours, lengths = run_side(model_dir, questions, args.max_new_token, batch_1=False)
        row = {"batch1_wall_s": round(t_single["wall"], 1), "ours_wall_s": round(t_ours["wall"], 1),
               "speedup_wall": round(t_single["wall"] / t_ours["wall"], 2),
               "batch1_cpu_s": round(t_single["cpu"], 1), "ours_cpu_s": round(t_ours["cpu"], 1),
               "speedup_cpu": round(t_single["cpu"] / t_ours["cpu"], 2),
               "turn1_identical": sum(single[q][0] == ours[q][0] for q in single),
               "turn2_identical": sum(single[q][1] == ours[q][1] for q in single),
               "answer_tokens": length_summary(lengths, args.max_new_token),
               "load_average_before": round(load_before, 1), "load_average_after": round(os.getloadavg()[0], 1)}
        summary["families"][family] = row
        print(family, json.dumps(row), flush=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
