"""`align mtbench answer`: MT-Bench answers in FastChat's model_answer JSONL.

Backends:
- `hf` (default): in-process transformers, questions batched (see judges/answers/backends/hf.py);
- `openai`: any OpenAI-compatible server (vLLM, SGLang, `transformers serve`), requests in parallel;
- `vllm`: in-process vLLM (GPU machines with vLLM installed).

Every backend uses the checkpoint's own chat template and FastChat's per-category temperatures.
Records are appended as questions finish; a re-run skips question_ids already in the answer file.
Generation settings go to `<answer-file>.meta.json`, not into records, so FastChat's tools still read them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import time
from pathlib import Path

from align.plumbing.argtypes import non_negative_int, positive_int
from align.plumbing.errors import UserError
from align.plumbing.files import (
    append_jsonl,
    atomic_write_json,
    atomic_write_jsonl,
    check_output_file,
    name_as_file_stem,
    read_jsonl,
    write_failure_is_one_line,
)
from align.plumbing.locks import output_lock
from align.plumbing.redact import redact_url
from align.plumbing.runcard import package_versions
from judges.api.client import resolve_api_key
from judges.file_kinds import ANSWER, check_file_kind, check_not_inputs, question_data_files
from judges.lengths import length_summary
from judges.questions import GREEDY_BELOW, load_questions
from judges.records import latest_per_slot

log = logging.getLogger(__name__)

DEFAULT_ANSWER_DIR = Path("outputs/mtbench/model_answer")
# Settings that change the answers: a resumed file must have been written with the same ones.
PINNED_SETTINGS = ("model_path", "max_new_token", "num_choices")
# --backend NAME -> its module; each exposes `answers(args, questions)` yielding (question, choices).
BACKENDS = {"hf": "judges.answers.backends.hf", "openai": "judges.answers.backends.openai_api",
            "vllm": "judges.answers.backends.vllm"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-path", required=True,
                        help="checkpoint directory (hf, vllm), or the model name the server knows (openai)")
    parser.add_argument("--model-id", required=True, help="a name for the model; names the default answer file")
    parser.add_argument("--answer-file", help="output JSONL (default: outputs/mtbench/model_answer/<model-id>.jsonl)")
    parser.add_argument("--question-begin", type=non_negative_int, help="first question index (0-based, like FastChat)")
    parser.add_argument("--question-end", type=non_negative_int, help="end question index (exclusive)")
    parser.add_argument("--max-new-token", type=positive_int, default=1024,
                        help="max new tokens per turn (FastChat: 1024)")
    parser.add_argument("--backend", choices=tuple(BACKENDS), default="hf")
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1",
                        help="OpenAI-compatible endpoint (openai backend)")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY",
                        help="environment variable holding the endpoint's API key (openai backend; required "
                             "unless the endpoint is on loopback; never logged or written)")
    parser.add_argument("--parallel", type=positive_int, default=8, help="concurrent requests (openai backend)")
    parser.add_argument("--batch-size", type=positive_int, default=32,
                        help="hf backend: conversations decoding together (padded engine: questions per batch)")
    parser.add_argument("--hf-engine", choices=("auto", "align", "generate_batch"), default="auto",
                        help="hf backend: auto (align's continuous batching, or padded batches for models whose "
                             "cache cannot be merged), align, or transformers' generate_batch; see README")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="sampling seed")
    parser.add_argument("--question-dir", help="FastChat data/mt_bench-style directory (default: packaged data)")
    parser.add_argument("--num-choices", type=positive_int, default=1, help="answers per question")
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
    # A killed writer's torn last record is skipped here; append_jsonl drops it before the next append.
    return {r["question_id"] for r in read_jsonl(answer_file) if "question_id" in r}


def check_meta(meta_file: Path, meta: dict) -> None:
    """Refuse to mix answers generated with different settings in one file."""
    if not meta_file.exists():
        return
    try:
        old = json.loads(meta_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        old = None
    if not isinstance(old, dict):  # an `if`, not an assert: python -O would drop it
        raise UserError(f"{meta_file}: not a JSON object (the settings the answers beside it were generated "
                        "with); restore it, or delete it together with the answer file")
    for key in PINNED_SETTINGS:
        if key in old and old[key] != meta[key]:
            raise UserError(f"{meta_file}: existing answers were generated with {key}={old[key]!r}, this run asks "
                            f"{meta[key]!r}; use another --answer-file or delete the old one")


def make_record(question: dict, model_id: str, choices: list[dict]) -> dict:
    import shortuuid  # FastChat's answer ids (fschat depends on it)

    return {"question_id": question["question_id"], "answer_id": shortuuid.uuid(), "model_id": model_id,
            "choices": choices, "tstamp": time.time()}


def sort_answer_file(answer_file: Path) -> None:
    """Like FastChat's reorg_answer_file: one record per question (its latest, records.latest_per_slot),
    by question_id (atomic rewrite)."""
    latest = latest_per_slot((r["question_id"], r) for r in read_jsonl(answer_file))
    with write_failure_is_one_line(answer_file):
        atomic_write_jsonl(answer_file, (latest[q] for q in sorted(latest)))


def record_lengths(meta_file: Path, meta: dict, lengths: dict) -> None:
    """The answer-length distribution of this run's turns, into the meta file and the log."""
    meta["answer_tokens_this_run"] = lengths
    with write_failure_is_one_line(meta_file):
        atomic_write_json(meta_file, meta)
    log.info("answer lengths (generated tokens per turn, this run): median %s, p90 %s, max %s; %d of %d turns hit "
             "--max-new-token", lengths["median"], lengths["p90"], lengths["max"], lengths["at_cap"], lengths["turns"])


# ---- entry point -----------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.backend == "openai":  # a missing key is refused before anything is loaded or written
        resolve_api_key(args.api_key_env, args.base_url)
    answer_file = check_output_file(
        args.answer_file or DEFAULT_ANSWER_DIR / f"{name_as_file_stem(args.model_id, '--model-id')}.jsonl",
        "--answer-file")
    meta_file = answer_file.with_name(answer_file.name + ".meta.json")
    questions = select_questions(args)
    with output_lock(answer_file, "--answer-file"):  # one writer per answer file, for the whole run
        check_not_inputs({"--answer-file": answer_file, "its settings file": meta_file},
                         {"--question-dir": question_data_files(args.question_dir)})
        check_file_kind(answer_file, ANSWER, "--answer-file")
        return write_answers(args, answer_file, meta_file, questions)


def write_answers(args: argparse.Namespace, answer_file: Path, meta_file: Path, questions: list[dict]) -> int:
    """Answer what the file lacks, append each record as it is done, sort the file once complete."""
    from tqdm import tqdm

    done = answered_ids(answer_file)
    todo = [q for q in questions if q["question_id"] not in done]
    meta = {"model_path": args.model_path, "model_id": args.model_id, "backend": args.backend,
            "max_new_token": args.max_new_token, "num_choices": args.num_choices, "seed": args.seed,
            "dtype": args.dtype, "batch_size": args.batch_size, "question_dir": args.question_dir,
            "hf_engine": getattr(args, "hf_engine", None) if args.backend == "hf" else None,
            "base_url": redact_url(args.base_url) if args.backend == "openai" else None,
            "temperatures": f"FastChat per category; greedy below {GREEDY_BELOW:g}",
            "versions": package_versions()}
    if done:
        check_meta(meta_file, meta)
    log.info("%s: %d of %d questions already answered, %d to go", answer_file,
             len(questions) - len(todo), len(questions), len(todo))
    if todo:
        stream = importlib.import_module(BACKENDS[args.backend]).answers(args, todo)
        lengths: list[int] = []  # generated tokens per turn, from backends that count them (hf)
        with tqdm(total=len(todo), desc=f"answers ({args.backend})", unit="q") as bar:
            for n, (question, choices) in enumerate(stream):
                for choice in choices:
                    lengths += choice.pop("turn_tokens", [])
                if n == 0:  # written with the first answer: a run that fails to start leaves nothing
                    # Written as is: base_url, the one field that may carry a secret, is redacted above.
                    with write_failure_is_one_line(meta_file):
                        atomic_write_json(meta_file, meta)
                append_jsonl(answer_file, make_record(question, args.model_id, choices))
                bar.update(1)
        if lengths:
            record_lengths(meta_file, meta, length_summary(lengths, args.max_new_token))
    if answered_ids(answer_file) >= {q["question_id"] for q in questions}:
        sort_answer_file(answer_file)
    print(f"answers: {answer_file}")
    return 0
