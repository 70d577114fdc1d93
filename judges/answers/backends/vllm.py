"""`--backend vllm`: in-process vLLM (GPU machines with vLLM installed)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from align.plumbing.errors import UserError
from judges.questions import api_temperature


def answers(args: argparse.Namespace, questions: list[dict]) -> Iterator[tuple[dict, list[dict]]]:
    """All turn 1s in one vLLM call, then all turn 2s; records follow once both are done."""
    try:
        import vllm
    except ImportError:
        raise UserError("vllm is not installed (GPU only): use --backend hf or openai") from None
    if not Path(args.model_path).exists():
        raise UserError(f"--model-path {args.model_path}: no such checkpoint directory")
    llm = vllm.LLM(model=args.model_path, dtype=args.dtype, seed=args.seed)
    results = {q["question_id"]: [[] for _ in range(args.num_choices)] for q in questions}
    for choice in range(args.num_choices):
        conversations = {q["question_id"]: [] for q in questions}
        for turn in range(max(len(q["turns"]) for q in questions)):
            active = [q for q in questions if turn < len(q["turns"])]
            for q in active:
                conversations[q["question_id"]].append({"role": "user", "content": q["turns"][turn]})
            params = [vllm.SamplingParams(temperature=api_temperature(q), max_tokens=args.max_new_token,
                                          seed=args.seed + choice) for q in active]
            outs = llm.chat([conversations[q["question_id"]] for q in active], params, use_tqdm=True)
            for q, out in zip(active, outs):
                text = out.outputs[0].text.strip()
                conversations[q["question_id"]].append({"role": "assistant", "content": text})
                results[q["question_id"]][choice].append(text)
    for q in questions:
        yield q, [{"index": c, "turns": results[q["question_id"]][c]} for c in range(args.num_choices)]
