"""Text that streams: `align cpt` with `streaming: true`, or a hub `dataset_name` with a `max_tokens` budget.

TRL gets a `datasets.IterableDataset` of {"text"} rows and tokenizes and packs it lazily, a batch at a
time, so start-up does not grow with the corpus and no row list is ever built. A local file or folder
(read as `align cpt` reads one: a .txt file is one document) is cut into pieces (align/train/text_sources.py),
each a shard of the stream; a hub dataset streams its own data files. Empty documents are dropped.

Ranks: accelerate gives each process its own shards when the stream has at least as many shards as
processes (a local corpus is cut into at least 64 pieces; a hub dataset has one per data file), else
every process reads the whole stream and keeps its own batches. Resume: the Trainer re-reads and
re-tokenizes the consumed prefix of the stream and discards it (cost grows with the steps trained);
token shards (`align tokenize`) resume by index instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

from align.plumbing.errors import UserError
from align.plumbing.files import is_hub_id

log = logging.getLogger("align")
LOCAL_PIECES = 64  # at least this many stream shards from a local corpus (ranks x dataloader workers)


def wants_stream(data_args, training_args, mixture) -> bool:
    """`streaming: true` (a `datasets:` mixture's own key too), or a hub dataset_name with a token budget."""
    name = data_args.dataset_name
    if getattr(data_args, "streaming", False) or (mixture is not None and mixture.streaming):
        return True
    return mixture is None and bool(name) and not looks_local(name) \
        and getattr(training_args, "max_tokens", None) is not None


def looks_local(name: str) -> bool:
    """A path, not a hub id (`org/name` or `name`; align.plumbing.files.is_hub_id, as align/train/checks.py tells them
    apart). A missing local path is the row loader's to name."""
    return not is_hub_id(name, bare_name=True)


def _documents(pieces: list[dict], column: str):
    """Generator for IterableDataset.from_generator: `pieces` is this shard's list (datasets splits it)."""
    from align.train.text_sources import texts

    for piece in pieces:
        for text in texts([piece], column):
            if text.strip():
                yield {"text": text}


def _local_stream(name: str, split: str, column: str, world: int):
    import datasets

    from align.train.text_sources import local_files, local_fingerprint, plan_local

    files = local_files(name, split)
    pieces = [p for shard in plan_local(files, max(LOCAL_PIECES, world)) for p in shard]
    if not pieces:
        raise UserError(f"dataset_name {name}: only empty files: nothing to train on")
    features = datasets.Features({"text": datasets.Value("string")})
    stream = datasets.IterableDataset.from_generator(_documents, features=features,
                                                     gen_kwargs={"pieces": pieces, "column": column})
    return stream, local_fingerprint(files), len(pieces)


def _hub_stream(name: str, config: str | None, split: str, column: str, **files):
    import datasets

    try:
        stream = datasets.load_dataset(name, config, split=split, streaming=True, **files)
    except (FileNotFoundError, ValueError, ConnectionError, datasets.exceptions.DatasetNotFoundError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"dataset {name} (split {split!r}) could not be streamed: {first}") from None
    columns = stream.column_names
    if columns is not None and column not in columns:
        raise UserError(f"dataset {name}[{split}]: no column {column!r} (it has {columns}): set text_column")
    stream = stream.select_columns([column])
    if column != "text":
        stream = stream.rename_column(column, "text")
    return stream.filter(lambda row: bool(row["text"] and row["text"].strip())), "hub:" + name, stream.n_shards


class StreamData:
    """What the stage reads of a loaded dataset, for a stream (rows are not counted: they are not read yet)."""

    rows_read = rows_kept = rows_skipped = "streamed (not counted)"

    def __init__(self, dataset, source: str, fingerprint: str, shards: int):
        self.dataset, self.source, self.fingerprint, self.shards = dataset, source, fingerprint, shards

    def card(self) -> dict:
        return {"source": self.source, "kind": "text stream", "fingerprint": self.fingerprint,
                "stream_shards": self.shards,
                "note": "read lazily; rows not counted; a resumed run re-reads the consumed prefix"}


def _source_stream(path: str, config: str | None, split: str, column: str, world: int, **files):
    if Path(path).exists() and not files:
        return _local_stream(path, split, column, world)
    return _hub_stream(path, config, split, column, **files)


def load_text_stream(data_args, training_args, mixture, where: str):
    """(StreamData, no eval data, cards) for a streamed text source (dataset_name, or a `datasets:` mixture's
    sources one after another); one-line refusals for what a stream cannot do (no length: max_steps or
    max_tokens must end training; no eval split; no row cap)."""
    import datasets

    if training_args.max_steps is None or training_args.max_steps <= 0:
        raise UserError(f"{where}: a stream has no length: set max_tokens (or max_steps) to end training")
    if training_args.eval_strategy != "no":
        raise UserError(f"{where}: eval on a stream is not supported: set eval_strategy: 'no'")
    if data_args.max_train_rows is not None:
        raise UserError(f"{where}: max_train_rows does not apply to a stream: set max_tokens (or max_steps)")
    column = getattr(training_args, "text_column", None) or "text"
    world = training_args.world_size
    if mixture is None:
        sources = [(data_args.dataset_name, data_args.dataset_config, data_args.dataset_train_split, {})]
    else:
        if any(s.role != "train" or s.weight not in (None, 1.0) for s in mixture.sources):
            raise UserError(f"{where}: {mixture.key}: a streamed mixture takes every source whole, in order "
                            "(no weights, no eval splits)")
        sources = [(s.path, s.name, s.split, {k: v for k, v in (("data_files", s.data_files),
                                                                  ("data_dir", s.data_dir)) if v is not None})
                   for s in mixture.sources]
    streams, fingerprints, shards = [], [], 0
    for path, config, split, files in sources:
        stream, fingerprint, count = _source_stream(path, config, split, column, world, **files)
        streams.append(stream)
        fingerprints.append(fingerprint)
        shards += count
    stream = streams[0] if len(streams) == 1 else datasets.concatenate_datasets(streams)
    name = ", ".join(path for path, *_ in sources)
    log.info("streaming %s: %d stream shards, read as training goes", name, shards)
    data = StreamData(stream, name, fingerprints[0] if len(fingerprints) == 1 else str(fingerprints), shards)
    return data, None, {"train": data.card()}
