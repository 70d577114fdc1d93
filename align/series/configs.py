"""What model an entry is, from config.json files and growth/shape specs only (no weights): the
dry run's estimates and the pretraining token budgets both read it."""

from __future__ import annotations

import json
from pathlib import Path

from align.plumbing.files import read_yaml_mapping
from align.series.spec import PACKAGED_PREFIX, Entry, Series

SMOLLM2_135M = {"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                "num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": True}


def checkpoint_config(series: Series, ref: str) -> dict | None:
    if series.is_entry(ref):
        return entry_config(series, series.entry(ref))
    if ref.startswith(PACKAGED_PREFIX):
        return dict(SMOLLM2_135M)
    config = Path(ref) / "config.json"
    return json.loads(config.read_text(encoding="utf-8")) if config.is_file() else None


def entry_config(series: Series, entry: Entry) -> dict | None:
    if entry.path is not None:
        return checkpoint_config(series, entry.path)
    source = checkpoint_config(series, str(entry.source))
    if source is None and entry.init and entry.init.get("shape"):
        source = {}  # a hub checkpoint's config is not read here: the shape says what the model is
    if source is None:
        return None
    if entry.grow:
        source = {**source, **read_yaml_mapping(entry.grow["spec"])}
    elif entry.init.get("shape"):
        source = {**source, **read_yaml_mapping(entry.init["shape"])}
    return source
