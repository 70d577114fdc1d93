"""One `align tokenize` worker process: read a shard's documents, encode them in batches of thousands
with the tokenizer's own batch encoder (`encode_batch_fast`: encode_batch's ids without character offsets;
one thread: every worker is one core), append eos, and write
the shard's files under temporary names, renamed into place only when the shard is complete.

Imports no torch and no transformers: a worker starts in a fraction of a second.
"""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path

from align.plumbing.files import atomic_write_json

_state: dict = {}  # per worker process: the tokenizer, the progress queue


def start_worker(tokenizer_json: str, progress) -> None:
    """Pool initializer: one rayon thread for encode_batch (the pool is the parallelism), the tokenizer."""
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["RAYON_RS_NUM_CPUS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer

    _state["tokenizer"] = Tokenizer.from_str(tokenizer_json)
    _state["progress"] = progress


def _batches(docs, first: int, size_for):
    """Batches of documents; after each batch `size_for()` says how many the next one needs."""
    size = first
    while True:
        batch = list(itertools.islice(docs, size))
        if not batch:
            return
        yield batch
        size = size_for()
        if size <= 0:
            return


def tokenize_shard(job: dict) -> dict:
    """Write shard `job["index"]`; returns its record {file, tokens, documents, documents_empty}."""
    import time

    import numpy as np

    from align.train.text_sources import texts

    started = time.perf_counter()

    tokenizer, progress = _state["tokenizer"], _state.get("progress")
    folder, name = Path(job["folder"]), job["name"]
    eos, dtype, cap, batch_docs = job["eos_token_id"], np.dtype(job["dtype"]), job["cap"], job["batch_docs"]
    tmp = folder / f".{name}.tmp-{os.getpid()}"
    tmp_index = folder / f".{name}.index.tmp-{os.getpid()}"
    ends: list[np.ndarray] = []
    tokens = documents = empty = 0

    def next_size() -> int:
        """All of a batch when there is no budget; near the end of one, about the documents still needed."""
        if cap is None:
            return batch_docs
        left = cap - tokens
        if left <= 0:
            return 0
        per_doc = tokens / max(documents, 1)
        return max(1, min(batch_docs, math.ceil(1.2 * left / max(per_doc, 1.0))))

    # the same ids as encode_batch, without the character offsets nothing here reads (tokenizers >= 0.21)
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    docs = texts(job["pieces"], job["text_column"])
    try:
        with open(tmp, "wb") as out:
            for batch in _batches(docs, batch_docs if cap is None else min(batch_docs, 64), next_size):
                kept = [t for t in batch if t.strip()]
                empty += len(batch) - len(kept)
                flat: list[int] = []
                lengths = []
                for enc in encode(kept, add_special_tokens=False):
                    ids = enc.ids
                    flat.extend(ids)
                    flat.append(eos)
                    lengths.append(len(ids) + 1)
                    if cap is not None and tokens + len(flat) >= cap:
                        break  # the budget is reached at this document's end: the rest is not needed
                out.write(np.asarray(flat, dtype=dtype).tobytes())
                ends.append(tokens + np.cumsum(np.asarray(lengths, dtype=np.uint64)))
                tokens += len(flat)
                documents += len(lengths)
                if progress is not None:
                    progress.put(len(flat))
        index = np.concatenate(ends) if ends else np.zeros(0, dtype=np.uint64)
        tmp_index.write_bytes(index.astype("<u8").tobytes())
        os.replace(tmp_index, folder / f"{name}.index")
        os.replace(tmp, folder / name)
    finally:
        for leftover in (tmp, tmp_index):
            leftover.unlink(missing_ok=True)
    record = {"file": name, "tokens": tokens, "documents": documents, "documents_empty": empty,
              "seconds": round(time.perf_counter() - started, 3)}  # reading, encoding and writing this shard
    atomic_write_json(folder / f"{Path(name).stem}.json", record)  # last: the shard is finished
    return record
