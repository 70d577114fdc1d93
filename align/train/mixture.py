"""One loader for dataset mixtures (alignment-handbook `dataset_mixture`, TRL CLI `datasets:`, the
handbook's older `dataset_mixer`) and for a single `dataset_name`.

A source is a hub id, a local .jsonl/.json/.parquet file, or a local directory (`<split>.jsonl`
in it, or anything `datasets.load_dataset` reads). Each source's rows are taken by its mixture's
rule, checked with the same row checks as a single dataset, concatenated and (with
`test_split_size`) split by `datasets.train_test_split` with the seed. The run card records every
source, its weight or fraction, the rows taken and a fingerprint (sha256 for local files).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from pathlib import Path

from align.plumbing.errors import UserError
from align.plumbing.files import file_sha256
from align.train.mixture_spec import Mixture, Source, mixture_from_args

KEEP_COLUMNS = {"chat": (("messages",), ("chat_template_kwargs",)),
                "preference": (("chosen", "rejected"), ("prompt", "chat_template_kwargs")),
                "text": (("text",), ())}  # text: the recipe's text_column stands in for "text"
LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")
log = logging.getLogger(__name__)


# ---------------------------------------------------------------------- reading one source

def local_file(source: Source) -> Path | None:
    """The local file a source names (the file itself, or <split>.jsonl|json|parquet in a directory)."""
    path = Path(source.path)
    if path.is_file():
        return path
    if path.is_dir() and source.data_files is None and source.data_dir is None:
        for folder in (path / source.name, path) if source.name else (path,):  # config "default": no folder
            for suffix in LOCAL_SUFFIXES:
                if (folder / f"{source.split}{suffix}").is_file():
                    return folder / f"{source.split}{suffix}"
    return None


def is_local(source: Source) -> bool:
    return Path(source.path).exists()


def read_source(source: Source, streaming: bool = False, limit: int | None = None, text_column: str | None = None
                ) -> tuple[list[tuple[str, dict]], str, list[dict] | None]:
    """(row label, row) pairs of one source, its fingerprint (sha256 of a local file) and, for a text corpus,
    its files (path, bytes, sha256). With `text_column` (text rows), a local .txt file or a folder is a text
    corpus: every file in it is read (text_files.py)."""
    from align.train.text_files import corpus_files, corpus_fingerprint, corpus_rows, file_card, read_local_rows

    file = local_file(source)
    path = Path(source.path)
    corpus = path.is_dir() if file is None else file.suffix == ".txt"
    if text_column and corpus and source.data_files is None and source.data_dir is None:
        cards = [file_card(f) for f in corpus_files(path, source.split)]
        rows = list(itertools.islice(corpus_rows([Path(c["path"]) for c in cards], text_column), limit))
        return rows, corpus_fingerprint(cards), cards
    if file is not None and file.suffix in (".jsonl", ".json"):
        rows = read_local_rows(file)
        for label, row in rows:
            if not isinstance(row, dict):
                raise UserError(f"{label}: expected a JSON object")
        return rows[:limit] if limit is not None else rows, "sha256:" + file_sha256(file), None
    ds = _load_dataset(source, file, streaming)
    if limit is not None:
        ds = ds.take(limit)
    where = str(file) if file is not None else source.label()
    rows = [(f"{where} row {i}", row) for i, row in enumerate(ds)]
    if file is not None:
        fingerprint = "sha256:" + file_sha256(file)
    else:
        fingerprint = getattr(ds, "_fingerprint", None) or _digest(rows)
    return rows, fingerprint, None


def _load_dataset(source: Source, file: Path | None, streaming: bool):
    import datasets

    try:
        if file is not None:
            if file.suffix not in LOCAL_SUFFIXES:
                raise UserError(f"{file}: unsupported data file type (expected one of {list(LOCAL_SUFFIXES)})")
            return datasets.load_dataset("parquet", data_files=str(file), split="train", streaming=streaming)
        return datasets.load_dataset(source.path, source.name, data_dir=source.data_dir, data_files=source.data_files,
                                     split=source.split, streaming=streaming)
    except (FileNotFoundError, ValueError, ConnectionError, datasets.exceptions.DatasetNotFoundError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"dataset {source.label()} could not be loaded: {first}") from None


def _digest(rows: list[tuple[str, dict]]) -> str:
    digest = hashlib.sha256()
    for _, row in rows:
        digest.update(json.dumps(row, sort_keys=True, default=str).encode())
    return "sha256:" + digest.hexdigest()


def shuffled_indices(n: int, seed: int) -> list[int]:
    """The order `datasets.Dataset.shuffle(seed=seed)` gives n rows (the handbook's subsampling)."""
    import datasets

    return datasets.Dataset.from_dict({"i": list(range(n))}).shuffle(seed=seed)["i"]


def taken_counts(mixture: Mixture, sizes: list[int]) -> list[int]:
    """Rows each source contributes, by the mixture's own rule."""
    if mixture.style == "trl":
        fractions = [s.fraction for s in mixture.sources]
        if fractions[0] is None:
            return sizes
        shares = [f / sum(fractions) for f in fractions]
        total = min(n / w for n, w in zip(sizes, shares, strict=True) if w > 0)
        return [round(w * total) for w in shares]
    return [n if s.weight is None else int(n * s.weight) for s, n in zip(mixture.sources, sizes, strict=True)]


def source_card(source: Source, available: int | None, taken: int, fingerprint: str,
                files: list[dict] | None = None) -> dict:
    card = {"source": source.path, "split": source.split, "config": source.name, "columns": source.columns,
            "rows_available": available, "rows_taken": taken, "fingerprint": fingerprint, "role": source.role}
    if files is not None:
        card["files"] = files
    if source.fraction is not None:
        card["fraction"] = source.fraction
    else:
        card["weight"] = source.weight
    if source.data_files is not None or source.data_dir is not None:
        card.update(data_files=source.data_files, data_dir=source.data_dir)
    return card


def mixture_rows(mixture: Mixture, kind: str, limit: int | None = None,
                 text_column: str = "text") -> tuple[list, list, list[dict]]:
    """Read and subsample every source -> (train pairs, eval pairs, source cards). Pairs are (label, row)."""
    required, optional = ((text_column,), ()) if kind == "text" else KEEP_COLUMNS[kind]
    read = []
    for s in mixture.sources:
        wanted = s.columns or list(required)
        missing = [c for c in required if c not in wanted]
        unused = [c for c in wanted if c not in required + optional]
        if missing or unused:
            raise UserError(f"{mixture.key}: {s.label()}: columns {wanted}: a {kind} dataset needs "
                            f"{list(required)} and may add {list(optional)}")
        streaming_limit = limit if mixture.streaming and len(mixture.sources) == 1 else None
        rows, fingerprint, files = read_source(s, mixture.streaming, streaming_limit,
                                               text_column if kind == "text" else None)
        for label, row in rows[:1]:
            absent = [c for c in wanted if c not in row]
            if absent:
                raise UserError(f"{label}: missing column(s) {absent} named in {mixture.key}")
        read.append(([(label, {c: row.get(c) for c in wanted}) for label, row in rows], fingerprint, files))
    counts = taken_counts(mixture, [len(rows) for rows, _, _ in read])
    train, evaluation, cards = [], [], []
    for s, (rows, fingerprint, files), count in zip(mixture.sources, read, counts, strict=True):
        if mixture.style == "handbook" and s.weight is not None:
            taken = [rows[i] for i in shuffled_indices(len(rows), mixture.seed)[:count]]
        else:
            taken = rows[:count]
        (evaluation if s.role == "eval" else train).extend(taken)
        cards.append(source_card(s, len(rows), len(taken), fingerprint, files))
    return train, evaluation, cards


def split_rows(mixture: Mixture, train: list, evaluation: list) -> tuple[list, list]:
    """The handbook shuffles the concatenation with its seed; then `test_split_size` cuts the eval set."""
    import datasets

    if mixture.style != "trl" and train:
        train = [train[i] for i in shuffled_indices(len(train), mixture.seed)]
    if mixture.test_split_size is None:
        return train, evaluation
    index = datasets.Dataset.from_dict({"i": list(range(len(train)))})
    try:
        parts = index.train_test_split(test_size=mixture.test_split_size, seed=mixture.seed)
    except ValueError as err:
        raise UserError(f"{mixture.key}: test_split_size {mixture.test_split_size} does not fit {len(train)} rows "
                        f"({str(err).splitlines()[0]})") from None
    return [train[i] for i in parts["train"]["i"]], evaluation + [train[i] for i in parts["test"]["i"]]


def describe(mixture: Mixture) -> dict:
    return {"style": mixture.style, "key": mixture.key, "seed": mixture.seed,
            "test_split_size": mixture.test_split_size, "streaming": mixture.streaming,
            "test_split_seed_note": None if mixture.style != "trl" or mixture.test_split_size is None else
            "TRL's CLI cuts its test split unseeded; align uses the recipe's seed so the split is repeatable"}


# ---------------------------------------------------------------------- checked rows -> datasets

def check_pairs(pairs: list, kind: str, invalid_rows: str, where: str,
                text_column: str = "text") -> tuple[list[dict], int, list[str]]:
    """Row checks of a single dataset, applied to (label, row) pairs -> (clean rows, skipped, examples)."""
    from align.train.data import check_rows

    kept, skipped, examples, _ = check_rows(pairs, kind, invalid_rows, text_column)
    if not kept and pairs:
        raise UserError(f"{where}: no valid {kind} rows (read {len(pairs)}, skipped {skipped})")
    return kept, skipped, examples


def _loaded(pairs: list, kind: str, invalid_rows: str, part: str, fingerprint: str, text_column: str = "text"):
    from align.train.data import LoadedData, _disk_backed

    rows, skipped, examples = check_pairs(pairs, kind, invalid_rows, f"dataset mixture ({part})", text_column)
    key = hashlib.sha256(json.dumps([kind, part, fingerprint, len(pairs), invalid_rows, text_column]).encode()
                         ).hexdigest()[:16]
    return LoadedData(_disk_backed(rows, f"mix-{kind}-{key}"), source=f"mixture ({part})", fingerprint=fingerprint,
                      rows_read=len(pairs), rows_kept=len(rows), rows_skipped=skipped, skipped_examples=examples)


def load_mixture(mixture: Mixture, *, kind: str, invalid_rows: str = "error", max_rows: int | None = None,
                 text_column: str = "text"):
    """Read, subsample, split and check a mixture -> (train LoadedData, eval LoadedData or None, card)."""
    train, evaluation, sources = mixture_rows(mixture, kind, limit=max_rows, text_column=text_column)
    train, evaluation = split_rows(mixture, train, evaluation)
    if max_rows is not None:
        train = train[:max_rows]
    if not train:
        raise UserError(f"{mixture.key}: the mixture has no training rows")
    fingerprint = "sha256:" + hashlib.sha256(json.dumps(
        [describe(mixture), [(c["fingerprint"], c["rows_taken"]) for c in sources], max_rows]).encode()).hexdigest()
    train_data = _loaded(train, kind, invalid_rows, "train", fingerprint, text_column)
    eval_data = _loaded(evaluation, kind, invalid_rows, "eval", fingerprint, text_column) if evaluation else None
    card = {**describe(mixture), "sources": sources, "rows_train": train_data.rows_kept,
            "rows_eval": eval_data.rows_kept if eval_data else 0}
    return train_data, eval_data, card


def load_training_data(data_args, training_args, kind: str, source: str):
    """The stage's train and eval data: a mixture, or the single `dataset_name` -> (train, eval, cards)."""
    from align.train.data import load_rows

    mixture = mixture_from_args(data_args, source, seed=training_args.seed)
    if mixture is None and kind == "text":  # a folder `align tokenize` wrote: blocks over its shards (issue 31)
        from align.train.shards import is_shard_folder

        if data_args.dataset_name and is_shard_folder(data_args.dataset_name):
            from align.train.token_blocks import load_token_blocks

            return load_token_blocks(data_args, training_args, source)
    if kind == "text":  # streaming: true, or a hub corpus with a token budget: an IterableDataset (issue 31)
        from align.train.text_stream import load_text_stream, wants_stream

        if wants_stream(data_args, training_args, mixture):
            return load_text_stream(data_args, training_args, mixture, source)
    want_eval = training_args.eval_strategy != "no"
    text_column = getattr(training_args, "text_column", None) or "text"  # text rows (CPT): the recipe's column
    if mixture is None:
        train = load_rows(data_args.dataset_name, kind=kind, config=data_args.dataset_config,
                          split=data_args.dataset_train_split, max_rows=data_args.max_train_rows,
                          invalid_rows=data_args.invalid_rows, text_column=text_column)
        cards = {"train": train.card()}
        if not want_eval:
            return train, None, cards
        evaluation = load_rows(data_args.dataset_name, kind=kind, config=data_args.dataset_config,
                               split=data_args.dataset_test_split, invalid_rows=data_args.invalid_rows,
                               text_column=text_column)
        return train, evaluation, {**cards, "eval": evaluation.card()}
    if data_args.dataset_name:
        log.warning("dataset_name %s is not used: %s gives the data (as in TRL's CLI and the handbook)",
                    data_args.dataset_name, mixture.key)
    train, evaluation, card = load_mixture(mixture, kind=kind, invalid_rows=data_args.invalid_rows,
                                           max_rows=data_args.max_train_rows, text_column=text_column)
    if want_eval and evaluation is None:
        strategy = getattr(training_args.eval_strategy, "value", training_args.eval_strategy)
        raise UserError(f"{source}: eval_strategy is {strategy} but {mixture.key} gives no eval rows: "
                        "set test_split_size (or eval_strategy: 'no')")
    cards = {"train": train.card(), "mixture": card}
    if evaluation is not None:
        cards["eval"] = evaluation.card()
    return train, evaluation if want_eval else None, cards
