"""Token shards: the folder `align tokenize` writes and `align cpt` trains from (datatrove's file layout).

    DIR/shard-00000.ds          token ids of many documents, one after another, each ending in eos
                                (little-endian uint16 when every id of the tokenizer fits, else uint32)
    DIR/shard-00000.ds.index    little-endian uint64: where each document ends (in tokens, exclusive)
    DIR/shard-00000.json        written last for that shard: it is finished (tokens, documents)
    DIR/plan.json               the source, tokenizer and shard plan (written first: what a re-run resumes)
    DIR/metadata.json           written last of all: tokenizer, dtype, counts, source fingerprint, files

The `.ds` + `.ds.index` pair is what datatrove's DocumentTokenizer writes and its DatatroveFolderDataset
(and nanotron's Nanoset) read, so these shards also feed those engines. Opening a folder reads only the
metadata and the last 8 bytes of each index: nothing grows with the corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from align.plumbing.errors import UserError

FORMAT = "align-token-shards/1"
METADATA = "metadata.json"
PLAN = "plan.json"
INDEX_DTYPE = "<u8"


def shard_name(i: int) -> str:
    return f"shard-{i:05d}.ds"


def token_dtype(vocab_size: int) -> str:
    """uint16 when every id (0 .. vocab_size - 1) fits in 16 bits (GPT-2's 50,257 does), else uint32."""
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


def _encoding_parts(backend) -> dict:
    """The parts of a tokenizers.Tokenizer that decide which ids a text becomes (not padding, truncation
    or decoding, which `save_pretrained` may rewrite without changing a single id)."""
    spec = json.loads(backend.to_str())
    return {key: spec.get(key) for key in ("normalizer", "pre_tokenizer", "model", "added_tokens")}


def tokenizer_identity(tok, name: str) -> dict:
    """What the shards record about the tokenizer, and what a training run compares with its model's."""
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise UserError(f"tokenizer {name}: not a fast (tokenizers-backed) tokenizer; align tokenize needs one "
                        "(a tokenizer.json)")
    file = Path(name) / "tokenizer.json"
    parts = json.dumps(_encoding_parts(backend), sort_keys=True).encode()
    return {"name": str(name),
            "tokenizer_json_sha256": hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else None,
            "fingerprint": "sha256:" + hashlib.sha256(parts).hexdigest(),
            "vocab_size": len(tok), "eos_token": tok.eos_token, "eos_token_id": tok.eos_token_id}


def same_tokenizer(recorded: dict, current: dict) -> bool:
    return recorded.get("fingerprint") == current.get("fingerprint") and \
        recorded.get("eos_token_id") == current.get("eos_token_id")


def read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: unreadable {what} ({err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: {what} is not a JSON object")
    return data


def is_shard_folder(path: str | os.PathLike) -> bool:
    """A folder `align tokenize` finished (its metadata.json says the shard format)."""
    meta = Path(path) / METADATA
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


@dataclass
class ShardFile:
    path: Path
    tokens: int
    documents: int


@dataclass
class TokenShards:
    """An opened, checked shard folder: its metadata and each file's token count (nothing read yet)."""

    folder: Path
    metadata: dict[str, Any]
    files: list[ShardFile]

    @property
    def dtype(self) -> str:
        return self.metadata["dtype"]

    @property
    def tokens(self) -> int:
        return sum(f.tokens for f in self.files)

    def card(self) -> dict:
        """The run card's data entry: where the tokens came from, without the per-file list."""
        meta = {k: v for k, v in self.metadata.items() if k != "files"}
        return {"source": str(self.folder), "kind": "token shards", "fingerprint": self.metadata["fingerprint"],
                "shard_files": len(self.files), **meta}


def check_shard_file(path: Path, itemsize: int, tokens: int, documents: int) -> str | None:
    """Why a .ds/.ds.index pair is torn or inconsistent with its record, or None. Reads 8 bytes."""
    index = path.with_name(path.name + ".index")
    if not path.is_file() or not index.is_file():
        return f"{path if not path.is_file() else index} is missing"
    size, index_size = path.stat().st_size, index.stat().st_size
    if size % itemsize:
        return f"{path}: {size} bytes is not a whole number of {itemsize}-byte tokens (a torn write)"
    if size // itemsize != tokens:
        return f"{path}: holds {size // itemsize} tokens, its record says {tokens}"
    if index_size % 8 or index_size // 8 != documents:
        return f"{index}: {index_size} bytes is not the {documents} document ends (uint64) its record says"
    if documents:
        with open(index, "rb") as fh:
            fh.seek(index_size - 8)
            last = int.from_bytes(fh.read(8), "little")
        if last != tokens:
            return f"{index}: the last document ends at token {last}, the shard holds {tokens}"
    return None


def open_shards(folder: str | os.PathLike) -> TokenShards:
    """Metadata and files of a finished shard folder, each file checked against its record; a torn or
    inconsistent shard, or one with no tokens at all, is a one-line UserError."""
    folder = Path(folder)
    meta = read_json(folder / METADATA, "token shard metadata")
    if meta.get("format") != FORMAT:
        raise UserError(f"{folder / METADATA}: not align token shard metadata (format {meta.get('format')!r})")
    import numpy as np

    itemsize = np.dtype(meta["dtype"]).itemsize
    files = []
    for entry in meta["files"]:
        path = folder / entry["file"]
        problem = check_shard_file(path, itemsize, entry["tokens"], entry["documents"])
        if problem:
            raise UserError(f"token shards {folder}: {problem}: re-run align tokenize into a new folder")
        files.append(ShardFile(path, entry["tokens"], entry["documents"]))
    shards = TokenShards(folder, meta, files)
    if shards.tokens == 0:
        raise UserError(f"token shards {folder}: no tokens in them (the source was empty)")
    return shards
