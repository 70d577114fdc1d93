"""`align mtbench answer`: MT-Bench answers in FastChat's model_answer JSONL.

Backends:
- `hf` (default): in-process transformers, questions batched (see judges/generate.py);
- `openai`: any OpenAI-compatible server (vLLM, SGLang, `transformers serve`), requests in parallel;
- `vllm`: in-process vLLM (GPU machines with vLLM installed).

Every backend uses the checkpoint's own chat template and FastChat's per-category temperatures.
Records are appended as questions finish; a re-run skips question_ids already in the answer file.
Generation settings go to `<answer-file>.meta.json`, not into records, so FastChat's tools still read them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Iterator

from align.common import UserError, append_jsonl, atomic_write_text, package_versions, read_jsonl
from judges.questions import GREEDY_BELOW, load_questions, temperature_for

log = logging.getLogger(__name__)

DEFAULT_ANSWER_DIR = Path("outputs/mtbench/model_answer")
# Settings that change the answers: a resumed file must have been written with the same ones.
PINNED_SETTINGS = ("model_path", "max_new_token", "num_choices")
# The OpenAI client retries 429/5xx/timeouts itself, with exponential backoff and Retry-After.
OPENAI_MAX_RETRIES = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-path", required=True,
                        help="checkpoint directory (hf, vllm), or the model name the server knows (openai)")
    parser.add_argument("--model-id", required=True, help="a name for the model; names the default answer file")
    parser.add_argument("--answer-file", help="output JSONL (default: outputs/mtbench/model_answer/<model-id>.jsonl)")
    parser.add_argument("--question-begin", type=int, help="first question index (0-based, like FastChat)")
    parser.add_argument("--question-end", type=int, help="end question index (exclusive)")
    parser.add_argument("--max-new-token", type=int, default=1024, help="max new tokens per turn (FastChat: 1024)")
    parser.add_argument("--backend", choices=("hf", "openai", "vllm"), default="hf")
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1",
                        help="OpenAI-compatible endpoint (openai backend); key from $OPENAI_API_KEY")
    parser.add_argument("--parallel", type=int, default=8, help="concurrent requests (openai backend)")
    parser.add_argument("--batch-size", type=int, default=32, help="max questions per batch (hf backend)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--question-dir", help="FastChat data/mt_bench-style directory (default: packaged data)")
    parser.add_argument("--num-choices", type=int, default=1, help="answers per question")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                        help="auto: float32 on CPU, the checkpoint's dtype on GPU")


def select_questions(args: argparse.Namespace) -> list[dict]:
    everything = load_questions(args.question_dir)
    begin, end = args.question_begin, args.question_end
    for flag, value in (("--question-begin", begin), ("--question-end", end)):
        if value is not None and not 0 <= value <= len(everything):
            raise UserError(f"{flag} {value}: out of range (the question file has {len(everything)} questions)")
    chosen = everything[begin:end]
    if not chosen:
        raise UserError(f"--question-begin {begin} --question-end {end}: selects no questions "
                        f"(the question file has {len(everything)})")
    return chosen


def answered_ids(answer_file: Path) -> set[int]:
    if not answer_file.exists():
        return set()
    text = answer_file.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):  # a killed writer's torn record: drop it before appending after it
        atomic_write_text(answer_file, text[:text.rfind("\n") + 1])
    return {r["question_id"] for r in read_jsonl(answer_file) if "question_id" in r}


def check_meta(meta_file: Path, meta: dict) -> None:
    """Refuse to mix answers generated with different settings in one file."""
    if not meta_file.exists():
        return
    old = json.loads(meta_file.read_text())
    for key in PINNED_SETTINGS:
        if key in old and old[key] != meta[key]:
            raise UserError(f"{meta_file}: existing answers were generated with {key}={old[key]!r}, this run asks "
                            f"{meta[key]!r}; use another --answer-file or delete the old one")


def make_record(question: dict, model_id: str, choices: list[dict]) -> dict:
    import shortuuid  # FastChat's answer ids (fschat depends on it)

    return {"question_id": question["question_id"], "answer_id": shortuuid.uuid(), "model_id": model_id,
            "choices": choices, "tstamp": time.time()}


def sort_answer_file(answer_file: Path) -> None:
    """Like FastChat's reorg_answer_file: one record per question, by question_id (atomic rewrite)."""
    latest = {r["question_id"]: r for r in read_jsonl(answer_file)}
    atomic_write_text(answer_file, "".join(json.dumps(latest[q], ensure_ascii=False) + "\n" for q in sorted(latest)))


def api_temperature(question: dict) -> float:
    """FastChat's category temperature; servers take 0 as greedy."""
    temperature = temperature_for(question.get("category", ""))
    return 0.0 if temperature < GREEDY_BELOW else temperature


# ---- openai backend --------------------------------------------------------------------------

def openai_answers(args: argparse.Namespace, questions: list[dict]) -> Iterator[tuple[dict, list[dict]]]:
    """Each question is one worker: its turns go in order, questions run `--parallel` at a time."""
    import openai

    client = openai.OpenAI(base_url=args.base_url, api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"),
                           max_retries=OPENAI_MAX_RETRIES, timeout=600)

    def answer(question: dict) -> list[dict]:
        choices = []
        for choice in range(args.num_choices):
            messages, turns = [], []
            for text in question["turns"]:
                messages.append({"role": "user", "content": text})
                resp = client.chat.completions.create(
                    model=args.model_path, messages=messages, max_tokens=args.max_new_token,
                    temperature=api_temperature(question), seed=args.seed + choice)
                out = (resp.choices[0].message.content or "").strip()
                messages.append({"role": "assistant", "content": out})
                turns.append(out)
            choices.append({"index": choice, "turns": turns})
        return choices

    failures = []
    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        futures = {pool.submit(answer, q): q for q in questions}
        for fut in as_completed(futures):
            q = futures[fut]
            try:
                yield q, fut.result()
            except openai.OpenAIError as err:
                failures.append(q["question_id"])
                log.warning("question %s failed: %s", q["question_id"], str(err).splitlines()[0][:200])
    if failures:
        raise UserError(f"{len(failures)} question(s) got no answer from {args.base_url} "
                        f"(ids {sorted(failures)}); re-run to answer only those")


# ---- vllm backend ----------------------------------------------------------------------------

def vllm_answers(args: argparse.Namespace, questions: list[dict]) -> Iterator[tuple[dict, list[dict]]]:
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


# ---- entry point -----------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for flag, value in (("--max-new-token", args.max_new_token), ("--num-choices", args.num_choices),
                        ("--batch-size", args.batch_size), ("--parallel", args.parallel)):
        if value < 1:
            raise UserError(f"{flag} {value}: expected a positive integer")
    answer_file = Path(args.answer_file or DEFAULT_ANSWER_DIR / f"{args.model_id}.jsonl")
    meta_file = answer_file.with_name(answer_file.name + ".meta.json")
    questions = select_questions(args)
    done = answered_ids(answer_file)
    todo = [q for q in questions if q["question_id"] not in done]
    meta = {"model_path": args.model_path, "model_id": args.model_id, "backend": args.backend,
            "max_new_token": args.max_new_token, "num_choices": args.num_choices, "seed": args.seed,
            "dtype": args.dtype, "batch_size": args.batch_size, "question_dir": args.question_dir,
            "base_url": args.base_url if args.backend == "openai" else None,
            "temperatures": "FastChat per category; greedy below %g" % GREEDY_BELOW,
            "versions": package_versions()}
    if done:
        check_meta(meta_file, meta)
    log.info("%s: %d of %d questions already answered, %d to go", answer_file,
             len(questions) - len(todo), len(questions), len(todo))
    if todo:
        if args.backend == "vllm":
            stream = vllm_answers(args, todo)
        elif args.backend == "openai":
            stream = openai_answers(args, todo)
        else:
            from judges.generate import Settings, hf_answers

            stream = hf_answers(args.model_path, todo, Settings(
                max_new_token=args.max_new_token, batch_size=args.batch_size, seed=args.seed,
                num_choices=args.num_choices, dtype=args.dtype))
        with tqdm(total=len(todo), desc=f"answers ({args.backend})", unit="q") as bar:
            for n, (question, choices) in enumerate(stream):
                if n == 0:  # written with the first answer: a run that fails to start leaves nothing
                    # Plain JSON (no key-name redaction: `max_new_token` is no secret, and none is in here).
                    atomic_write_text(meta_file, json.dumps(meta, indent=2, sort_keys=True) + "\n")
                append_jsonl(answer_file, make_record(question, args.model_id, choices))
                bar.update(1)
    if answered_ids(answer_file) >= {q["question_id"] for q in questions}:
        sort_answer_file(answer_file)
    print(f"answers: {answer_file}")
    return 0
