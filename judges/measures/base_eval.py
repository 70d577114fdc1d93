"""`align eval`: lm-evaluation-harness on a base checkpoint (the study's Table 1), judge-free evidence.

Usage:
    align eval --model-path CKPT --out DIR [--tasks T1,T2] [--include-path TASK_DIR [--allow-code]]
               [--heldout-text FILE] [--limit N] [--batch-size 1|auto|auto:N] [--device cpu] [--dtype float32]
               [--overwrite]

Runs lm-eval's `simple_evaluate` with its `hf` model (`pretrained=CKPT,dtype=...`), exactly as
`lm_eval --model hf --model_args pretrained=CKPT,dtype=float32 --tasks ... --include_path ...` does, and
writes into DIR:
    lm_eval/<model>/results_<time>.json, samples_<task>_<time>.jsonl   lm-eval's own files (its tracker)
    lm_eval/tasks/heldout_text.yaml      the task built for --heldout-text (a loglikelihood_rolling task)
    base_eval.json                       {measures: {task/metric: {value, stderr, n}}, items: per doc id}
    eval.run_card.json                   what produced it (written last)
Default tasks: the study's Table 1. Unknown tasks, and hub tasks while HF_DATASETS_OFFLINE or
HF_HUB_OFFLINE is set, are refused (one line, exit 2) before the model loads; so are task YAMLs that do
not parse or name a bad output_type, and `!function` helpers (Python from a task folder) without
--allow-code. DIR must be new, empty or an earlier `align eval` output (replaced only with --overwrite);
one writer per DIR; the files are swapped in together when the evaluation has succeeded.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path

from align.plumbing.argtypes import positive_int
from align.plumbing.errors import UserError
from align.plumbing.file_set import replaced_together
from align.plumbing.files import atomic_write_json, check_output_dir, file_sha256
from align.plumbing.locks import output_lock
from align.plumbing.redact import redact
from align.plumbing.runcard import write_run_card
from judges.measures.lm_summary import summarize
from judges.measures.model_checks import check_model_path, device, load_tokenizer
from judges.measures.outputs import EVAL, check_measure_output
from judges.measures.task_code import check_code, provenance, sandboxed_templates, scan_folders, selected
from judges.measures.tasks import HELDOUT_TASK, TABLE1_TASKS, check_tasks, check_text_rows, write_heldout_task

log = logging.getLogger(__name__)
RUN_CARD = "eval.run_card.json"
DTYPES = ("float32", "bfloat16", "float16", "auto")


def _task_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated lm-eval task names")
    return names


def _batch_size(text: str) -> str:
    count = text[len("auto:"):] if text.startswith("auto:") else text
    if text == "auto" or (count.isascii() and count.isdigit() and int(count) > 0):
        return text  # N, auto, or auto:N (lm-eval recomputes the automatic size N times)
    raise argparse.ArgumentTypeError(f"{text!r}: expected a positive integer, 'auto' or 'auto:N'")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-path", required=True, help="checkpoint directory (or hub id, online)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--tasks", type=_task_list, default=list(TABLE1_TASKS),
                        help=f"comma-separated lm-eval tasks/groups/tags (default: {','.join(TABLE1_TASKS)})")
    parser.add_argument("--include-path", action="append", default=[], metavar="DIR",
                        help="a folder of lm-eval task YAMLs (repeatable), as lm_eval --include_path")
    parser.add_argument("--allow-code", action="store_true",
                        help="let the tasks run Python from their folders (lm-eval `!function` helpers); "
                             "refused without it")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the earlier align eval result in --out (refused without it)")
    parser.add_argument("--heldout-text", type=Path, metavar="FILE",
                        help=f"a .jsonl of {{\"text\"}} rows: adds task {HELDOUT_TASK} (word/byte perplexity)")
    parser.add_argument("--limit", type=positive_int, help="only the first N documents of each task (testing)")
    parser.add_argument("--batch-size", type=_batch_size, default="1", help="lm-eval batch size (default 1)")
    parser.add_argument("--device", type=device, default=None,
                        help="cpu, cuda, cuda:0, mps, ... (default: cuda when available)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="weights dtype (default float32)")


def _lm_eval(args: argparse.Namespace, manager, names: list[str], out_dir: Path) -> tuple[dict, dict]:
    """lm-eval's simple_evaluate + its tracker's files in `out_dir`; returns (results, samples)."""
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    # lm-eval's hf model asks for cuda when no device is given, even on a CPU-only torch
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tracker = EvaluationTracker(output_path=str(out_dir))
    batch = int(args.batch_size) if args.batch_size.isdigit() else args.batch_size  # lm-eval takes "auto:N" as is
    results = simple_evaluate(model="hf", model_args={"pretrained": args.model_path, "dtype": args.dtype},
                              tasks=names, batch_size=batch, device=args.device, limit=args.limit,
                              log_samples=True, evaluation_tracker=tracker, task_manager=manager)
    if results is None:  # only on non-zero ranks of a multi-process run
        raise RuntimeError("lm-eval returned no results")
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task in results["configs"]:
        tracker.save_results_samples(task_name=task, samples=samples[task])
    if not list(out_dir.glob("*/results_*.json")):  # lm-eval's tracker logs a failed save and goes on
        raise RuntimeError(f"lm-eval wrote no results file under {out_dir}")
    return results, samples


def run(args: argparse.Namespace) -> int:
    """Everything that can be wrong with the input is checked before the model or lm-eval's index loads."""
    started = time.time()
    check_model_path(args.model_path)
    heldout_rows = check_text_rows(args.heldout_text) if args.heldout_text else None
    for folder in args.include_path:
        if not Path(folder).is_dir():
            raise UserError(f"--include-path {folder}: not a directory")
    names = list(dict.fromkeys(args.tasks + ([HELDOUT_TASK] if args.heldout_text else [])))
    task_files = selected(scan_folders(args.include_path), names)  # parsed here: lm-eval imports nothing yet
    check_code(task_files, args.allow_code)
    inputs = {"--model-path": args.model_path, "--heldout-text": args.heldout_text,
              **{"--include-path" + (f" #{i + 1}" if i else ""): f for i, f in enumerate(args.include_path)}}
    check_output_dir(args.out, "--out")
    with output_lock(args.out, "--out"):  # one writer per folder, for the whole evaluation
        out = check_measure_output(args.out, EVAL, inputs, args.overwrite)
        return _evaluate(args, out, names, task_files, heldout_rows, started)


def _evaluate(args: argparse.Namespace, out: Path, names: list[str], task_files: list, heldout_rows: int | None,
              started: float) -> int:
    from jinja2.exceptions import SecurityError
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import make_table

    with tempfile.TemporaryDirectory(prefix="align-eval-tasks-") as built:
        include = list(args.include_path)
        if args.heldout_text:
            write_heldout_task(args.heldout_text, Path(built))
            include.append(built)
        manager = TaskManager(include_path=include or None)
        tasks = check_tasks(manager.task_index, names)
        load_tokenizer(args.model_path)  # lm-eval would fail on a checkpoint saved without one only later
        log.info("evaluating %s on %s", args.model_path, ", ".join(tasks))
        # staged inside --out and swapped in together: a failure leaves the previous result (or nothing)
        with replaced_together(out, EVAL.names, "--out", folders=EVAL.folders) as staging:
            (staging / "lm_eval").mkdir()
            sandbox = sandboxed_templates() if args.include_path and not args.allow_code else contextlib.nullcontext()
            try:
                with sandbox:
                    results, samples = _lm_eval(args, manager, names, staging / "lm_eval")
            except SecurityError as err:  # a task template reached for code the checks did not see
                raise UserError(f"--include-path: a task template tried to run code ({err}); task folders are "
                                "data unless you allow their code: read it, then pass --allow-code") from None
            if args.heldout_text:
                shutil.copytree(built, staging / "lm_eval" / "tasks")
            summary = summarize(results, samples)
            results_file = sorted((staging / "lm_eval").glob("*/results_*.json"))[-1]
            atomic_write_json(staging / "base_eval.json",
                              redact({"model_path": args.model_path,  # as given: maybe a URL
                                      "lm_eval_results": str(results_file.relative_to(staging)), **summary}))
            card = {"stage": "eval", "output_file": str(out / "base_eval.json"), "model_path": args.model_path,
                    "tasks": {name: cfg.get("dataset_path") for name, cfg in tasks.items()},
                    "include_path": args.include_path, "allow_code": args.allow_code, **provenance(task_files),
                    "limit": args.limit, "batch_size": args.batch_size, "device": args.device, "dtype": args.dtype,
                    "lm_eval_version": metadata.version("lm_eval")}
            if args.heldout_text:
                card["heldout_text"] = {"path": str(args.heldout_text), "sha256": file_sha256(args.heldout_text),
                                        "rows": heldout_rows}
            write_run_card(staging, card, started=started, name=RUN_CARD)
    print(make_table(results))
    print(f"wrote {out / 'base_eval.json'} ({len(summary['measures'])} measures) and lm-eval's files in "
          f"{out / 'lm_eval'}")
    return 0
