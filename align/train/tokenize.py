"""`align tokenize`: a text corpus -> token shards, once, on every core; `align cpt` then trains from them.

    align tokenize --source CORPUS --tokenizer CKPT --out DIR [--max-tokens N] [--workers N] [--shards N]
    align tokenize --source HuggingFaceFW/fineweb-edu --config sample-10BT --tokenizer gpt2-ckpt \
        --max-tokens 40_000_000_000 --out data/fineweb-edu-40B

CORPUS is a .jsonl / .parquet / .txt file or a folder of them (a .txt file is one document), or a hub
dataset read as a stream. Each shard is written by one worker process (`encode_batch` over thousands of
documents, eos appended to each) under a temporary name and renamed when complete; a re-run of the
same command keeps the finished shards and does the rest. With --max-tokens each of the N shards takes
the first max_tokens/N tokens of its part of the source: only the documents the budget needs are read.
The layout is datatrove's (`.ds` + `.ds.index`), described in align/train/shards.py.

Why not datatrove itself (evaluated: datatrove 0.10.1 installs here): its executor splits work by
input file (one big .jsonl is one task on one core), its readers cap documents, not tokens, and it
writes its final file names in place (a killed task leaves a plausible .ds beside a completion log in
another folder). The format is kept, so its readers and nanotron read these shards.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

from align.plumbing.argtypes import positive_int
from align.plumbing.errors import UserError
from align.plumbing.files import atomic_write_json
from align.train.shards import FORMAT, METADATA, PLAN, read_json, same_tokenizer, shard_name, token_dtype

log = logging.getLogger("align")
PLAN_KEYS = ("source", "source_fingerprint", "text_column", "max_tokens", "shards_requested")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True,
                        help="a .jsonl/.parquet/.txt file, a folder of them, or a hub dataset id (streamed)")
    parser.add_argument("--tokenizer", required=True,
                        help="checkpoint (or tokenizer) folder, hub id, or packaged:smollm2-135m-instruct")
    parser.add_argument("--out", required=True, help="the shard folder (new, or this command's own to resume)")
    parser.add_argument("--config", default=None, help="hub dataset config name (e.g. sample-10BT)")
    parser.add_argument("--split", default="train",
                        help="split: a hub dataset's, or a local folder's files named for it (default: train)")
    parser.add_argument("--text-column", default="text", help="field/column holding each document (default: text)")
    parser.add_argument("--max-tokens", type=positive_int, default=None,
                        help="token budget: read only the documents it needs (default: the whole source)")
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="worker processes (default: every core this process may use)")
    parser.add_argument("--shards", type=positive_int, default=None,
                        help="shards to cut the source into (default: max(workers, one per 256 MB of text); "
                             "a re-run takes the folder's own plan)")
    parser.add_argument("--batch-docs", type=positive_int, default=4096,
                        help="documents per encode_batch call (default: 4096)")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _load_tokenizer(name: str):
    from transformers import AutoTokenizer

    from align.train.shards import tokenizer_identity

    if name == "packaged:smollm2-135m-instruct":  # the demo's models' tokenizer (align/plumbing/packaged.py)
        from align.plumbing.packaged import export_smollm2

        name = str(export_smollm2(tokenizer_only=True))
    try:
        tok = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as err:
        raise UserError(f"--tokenizer {name}: cannot load a tokenizer ({str(err).strip().splitlines()[0]})") from None
    identity = tokenizer_identity(tok, name)
    if tok.eos_token_id is None:
        raise UserError(f"--tokenizer {name}: no eos token (it separates documents in the shards)")
    return tok, identity


def _default_shards(source: str, split: str, workers: int) -> int:
    from align.train.text_sources import local_files

    files = local_files(source, split)
    size = sum(f.stat().st_size for f in files) if files else 0
    return max(workers, math.ceil(size / (256 << 20)))


def _check_folder(out: Path, identity: dict, wanted: dict) -> dict | None:
    """The folder's own plan when it is this command's resumable work; refusals otherwise."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    plan_file = out / PLAN
    if not plan_file.is_file():
        if any(out.iterdir()):
            raise UserError(f"--out {out}: not empty and not an align tokenize folder: choose a new folder")
        return None
    plan = read_json(plan_file, "token shard plan")
    if not same_tokenizer(plan.get("tokenizer", {}), identity):
        raise UserError(f"--out {out} holds shards of another tokenizer ({plan.get('tokenizer', {}).get('name')}, "
                        f"not {identity['name']}): choose a new folder")
    for key in PLAN_KEYS:
        if plan.get(key) != wanted[key]:
            raise UserError(f"--out {out} holds shards of another {key.replace('_', ' ')} "
                            f"({plan.get(key)!r}, not {wanted[key]!r}): choose a new folder")
    return plan


def _finished(out: Path, plan: dict) -> dict[int, dict]:
    """Shards a previous run completed (their record written last, their files whole)."""
    import numpy as np

    from align.train.shards import check_shard_file

    done = {}
    itemsize = np.dtype(plan["dtype"]).itemsize
    for i in range(len(plan["pieces"])):
        record_file = out / f"{Path(shard_name(i)).stem}.json"
        if record_file.is_file():
            record = read_json(record_file, "shard record")
            if check_shard_file(out / record["file"], itemsize, record["tokens"], record["documents"]) is None:
                done[i] = record
    for leftover in out.glob(".shard-*.tmp-*"):  # a killed run's unfinished shards (this command's own names)
        leftover.unlink(missing_ok=True)
    return done


def _run_pool(jobs: list[dict], workers: int, tokenizer_json: str, total: int | None, done_tokens: int) -> list:
    """Every job on a spawn pool (no fork of a process holding tokenizer threads), with one progress bar."""
    import multiprocessing as mp
    import queue

    from tqdm.auto import tqdm

    from align.train.tokenize_worker import start_worker, tokenize_shard

    ctx = mp.get_context("spawn")
    progress = ctx.Queue()
    records = []
    with tqdm(total=total, initial=done_tokens, unit="tok", unit_scale=True, desc="tokenizing", mininterval=1,
              disable=None) as bar, ctx.Pool(min(workers, len(jobs)), initializer=start_worker,
                                              initargs=(tokenizer_json, progress)) as pool:
        pending = [pool.apply_async(tokenize_shard, (job,)) for job in jobs]
        try:
            while pending:
                try:
                    bar.update(progress.get(timeout=0.5))
                except queue.Empty:
                    pass
                for result in [r for r in pending if r.ready()]:
                    pending.remove(result)
                    records.append(result.get())  # a worker's UserError is raised here
                    print(f"shard {records[-1]['file']} done: {records[-1]['tokens']:,} tokens "
                          f"({len(records)}/{len(jobs)})", flush=True)  # progress where no bar shows (logs)
        except BaseException:
            pool.terminate()
            raise
        while True:  # the last progress messages
            try:
                bar.update(progress.get_nowait())
            except queue.Empty:
                break
    return records


def run(args: argparse.Namespace) -> int:
    from align.plumbing.locks import output_lock
    from align.train.text_sources import plan_source

    started = time.time()
    out = Path(args.out)
    workers = args.workers or _cores()
    tok, identity = _load_tokenizer(args.tokenizer)
    dtype = token_dtype(identity["vocab_size"])
    created = not out.exists()
    with output_lock(out, "--out"):
        previous = read_json(out / PLAN, "token shard plan") if (out / PLAN).is_file() else {}
        shards = args.shards or previous.get("shards_requested") or _default_shards(args.source, args.split, workers)
        pieces, fingerprint = plan_source(args.source, args.config, args.split, shards)
        wanted = {"source": args.source, "source_fingerprint": fingerprint, "text_column": args.text_column,
                  "max_tokens": args.max_tokens, "shards_requested": shards}
        plan = _check_folder(out, identity, wanted)
        if plan is None:
            plan = {"format": FORMAT, **wanted, "config": args.config, "split": args.split,
                    "tokenizer": identity, "dtype": dtype, "pieces": pieces}
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(out / PLAN, plan)
        elif (out / METADATA).is_file():
            meta = read_json(out / METADATA, "token shard metadata")
            print(f"{out}: already tokenized ({meta.get('tokens'):,} tokens in {len(meta.get('files', []))} shards)")
            return 0
        try:
            return _tokenize(out, plan, args, tok, workers, started)
        except BaseException:
            if created and not any((out / f"{Path(shard_name(i)).stem}.json").exists()
                                   for i in range(len(plan["pieces"]))):
                shutil.rmtree(out, ignore_errors=True)  # nothing finished: leave no folder behind
            raise


def _tokenize(out: Path, plan: dict, args, tok, workers: int, started: float) -> int:
    done = _finished(out, plan)
    count = len(plan["pieces"])
    cap = math.ceil(plan["max_tokens"] / count) if plan["max_tokens"] else None
    jobs = [{"folder": str(out), "name": shard_name(i), "index": i, "pieces": plan["pieces"][i],
             "text_column": plan["text_column"], "cap": cap, "batch_docs": args.batch_docs, "dtype": plan["dtype"],
             "eos_token_id": plan["tokenizer"]["eos_token_id"]} for i in range(count) if i not in done]
    if done:
        print(f"resuming {out}: {len(done)} of {count} shards already finished")
    records = dict(done)
    if jobs:
        results = _run_pool(jobs, workers, tok.backend_tokenizer.to_str(), plan["max_tokens"],
                            sum(r["tokens"] for r in done.values()))
        records.update({int(Path(r["file"]).stem.split("-")[1]): r for r in results})
    files = [records[i] for i in range(count)]
    tokens = sum(r["tokens"] for r in files)
    if tokens == 0:
        raise UserError(f"--source {args.source}: no text in it (every document is empty): nothing to tokenize")
    meta = {"format": FORMAT, "source": plan["source"], "config": plan["config"], "split": plan["split"],
            "text_column": plan["text_column"], "source_fingerprint": plan["source_fingerprint"],
            "tokenizer": plan["tokenizer"], "vocab_size": plan["tokenizer"]["vocab_size"], "dtype": plan["dtype"],
            "bytes_per_token": 2 if plan["dtype"] == "uint16" else 4, "max_tokens": plan["max_tokens"],
            "tokens": tokens, "documents": sum(r["documents"] for r in files),
            "documents_empty_skipped": sum(r["documents_empty"] for r in files), "files": files,
            "fingerprint": "sha256:" + _digest([plan["source_fingerprint"], plan["tokenizer"]["fingerprint"],
                                                plan["max_tokens"], files]),
            "seconds": round(time.time() - started, 1), "workers": workers}
    atomic_write_json(out / METADATA, meta)  # last: the folder is complete
    print(f"wrote {out}: {tokens:,} tokens, {meta['documents']:,} documents in {count} shards ({plan['dtype']}), "
          f"{time.time() - started:.1f} s")
    return 0


def _digest(obj) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()
