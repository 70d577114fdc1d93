"""Training from token shards: fixed `max_length` blocks over memory-mapped shard files, in a seeded order.

    align cpt --config recipes/cpt/scratch-1b.yaml --dataset_name data/fineweb-edu-40B   (a folder
                                                                      `align tokenize` wrote)

The shards are one token stream (files in order, documents separated by eos); block b is tokens
[b*L, (b+1)*L) of it (a block may span two files; the last partial block is left out). Block i of the
run is block order[i], where `order` is a seeded pseudo-random permutation of all blocks computed per
index (a Feistel network with cycle-walking): one global order, no index array, so start-up and
memory do not grow with the corpus. The Trainer samples sequentially over that order; under several
processes accelerate gives each rank its own batches of it, and a resumed run skips the trained
batches by index (no block is read or re-tokenized). TRL gets ready `input_ids` blocks
(`skip_prepare_dataset`): no tokenize or pack map, nothing written to the datasets cache.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from align.plumbing.errors import UserError
from align.train.shards import TokenShards, open_shards, same_tokenizer, tokenizer_identity

log = logging.getLogger("align")
MASK64 = (1 << 64) - 1
ROUNDS = 4


def _mix(x: int) -> int:
    """splitmix64's finalizer: a well-spread 64-bit hash of x."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


class BlockOrder:
    """A seeded permutation of range(n), one index at a time: a balanced Feistel network on the smallest
    even number of bits that holds n (a bijection there), walked until the value falls below n."""

    def __init__(self, n: int, seed: int):
        self.n = n
        bits = max(2, (n - 1).bit_length())
        self.half = (bits + 1) // 2
        self.mask = (1 << self.half) - 1
        self.keys = [_mix((seed * 0x9E3779B97F4A7C15 + r + 1) & MASK64) for r in range(ROUNDS)]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        if not 0 <= i < self.n:
            raise IndexError(i)
        x = i
        while True:
            left, right = x >> self.half, x & self.mask
            for key in self.keys:
                left, right = right, left ^ (_mix(right ^ key) & self.mask)
            x = (left << self.half) | right
            if x < self.n:
                return x


class TokenBlocks(torch.utils.data.Dataset):
    """Map-style dataset: item i = {"input_ids": block order[i]} (int64), read from memory maps opened lazily
    (in each process that reads: the Trainer's dataloader workers included)."""

    def __init__(self, shards: TokenShards, block_length: int, seed: int):
        self.paths = [str(f.path) for f in shards.files]
        self.counts = [f.tokens for f in shards.files]
        self.starts = np.concatenate([[0], np.cumsum(self.counts, dtype=np.int64)])
        self.dtype = np.dtype(shards.dtype)
        self.block_length = block_length
        self.blocks = int(self.starts[-1]) // block_length
        self.order = BlockOrder(self.blocks, seed)
        self._maps: dict[int, np.memmap] = {}

    def __getstate__(self):  # memory maps are reopened, not pickled, in dataloader worker processes
        return {**self.__dict__, "_maps": {}}

    def __len__(self) -> int:
        return self.blocks

    def _map(self, f: int) -> np.memmap:
        if f not in self._maps:
            self._maps[f] = np.memmap(self.paths[f], dtype=self.dtype, mode="r", shape=(self.counts[f],))
        return self._maps[f]

    def block(self, b: int) -> np.ndarray:
        """Tokens [b*L, (b+1)*L) of the stream, across a file boundary when the block spans one."""
        start, end = b * self.block_length, (b + 1) * self.block_length
        parts = []
        f = int(np.searchsorted(self.starts, start, side="right")) - 1
        while start < end:
            take = min(end, int(self.starts[f + 1])) - start
            offset = start - int(self.starts[f])
            parts.append(self._map(f)[offset:offset + take])
            start += take
            f += 1
        return np.concatenate(parts).astype(np.int64) if len(parts) > 1 else parts[0].astype(np.int64)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.block(self.order[i])}


class ShardData:
    """What the loader hands the stage for token shards (LoadedData's fields the stage reads)."""

    def __init__(self, shards: TokenShards, blocks: TokenBlocks, seed: int):
        self.shards, self.dataset, self.seed = shards, blocks, seed
        self.source = str(shards.folder)
        self.fingerprint = shards.metadata["fingerprint"]
        self.rows_read = self.rows_kept = len(blocks)
        self.rows_skipped = 0

    def card(self) -> dict:
        return {**self.shards.card(), "block_length": self.dataset.block_length, "blocks": len(self.dataset),
                "tokens_in_blocks": len(self.dataset) * self.dataset.block_length,
                "tokens_left_out": self.shards.tokens - len(self.dataset) * self.dataset.block_length,
                "block_order": f"seeded permutation of block indices (Feistel, seed {self.seed}), one global "
                               "order; each process trains its own batches of it"}


def load_token_blocks(data_args, training_args, where: str):
    """A shard folder named by dataset_name -> (ShardData, no eval data, cards); one-line refusals for what
    does not apply to shards (an eval split, a row cap) and for a folder too small for one block."""
    folder = data_args.dataset_name
    if training_args.eval_strategy != "no":
        raise UserError(f"{where}: dataset_name {folder} is token shards, which hold no eval split: "
                        "set eval_strategy: 'no'")
    if data_args.max_train_rows is not None:
        raise UserError(f"{where}: max_train_rows does not apply to token shards ({folder}): set max_tokens "
                        "(or max_steps) instead")
    shards = open_shards(folder)
    length = training_args.max_length
    if length is None or length < 1:
        raise UserError(f"{where}: token shards need max_length (the block length)")
    seed = training_args.data_seed if training_args.data_seed is not None else training_args.seed
    blocks = TokenBlocks(shards, length, seed)
    if len(blocks) == 0:
        raise UserError(f"token shards {folder}: {shards.tokens} tokens do not fill one block of max_length {length}")
    data = ShardData(shards, blocks, seed)
    log.info("token shards %s: %d tokens in %d files -> %d blocks of %d", folder, shards.tokens, len(shards.files),
             len(blocks), length)
    return data, None, {"train": data.card()}


def prepare_shard_training(train, tokenizer, model_name: str, training_args, trainer_cls):
    """For token shards: the model's tokenizer must be the shards' (refused otherwise, one line), TRL
    skips its dataset preparation, the Trainer samples in the blocks' own order. Returns the trainer
    class to build (unchanged for text rows)."""
    if not isinstance(train, ShardData):
        return trainer_cls
    recorded = train.shards.metadata["tokenizer"]
    current = tokenizer_identity(tokenizer, model_name)
    if not same_tokenizer(recorded, current):
        raise UserError(f"token shards {train.source} were tokenized with {recorded['name']} (eos id "
                        f"{recorded['eos_token_id']}), not with {model_name}'s tokenizer (eos id "
                        f"{current['eos_token_id']}): run align tokenize --tokenizer {model_name}")
    training_args.dataset_kwargs = {**(training_args.dataset_kwargs or {}), "skip_prepare_dataset": True}
    training_args.train_sampling_strategy = "sequential"  # the blocks are already in their seeded order
    return block_trainer(trainer_cls)


def block_trainer(base: type) -> type:
    """`base` (an SFTTrainer) taking a TokenBlocks dataset: TRL accepts only `datasets` datasets, so it is
    built around a one-row placeholder (never prepared: skip_prepare_dataset) and then given the blocks."""

    class TokenBlockTrainer(base):
        def __init__(self, *args, train_dataset, **kwargs):
            import datasets

            placeholder = datasets.Dataset.from_dict({"input_ids": [[0] * train_dataset.block_length]})
            super().__init__(*args, train_dataset=placeholder, **kwargs)
            self.train_dataset = train_dataset

    TokenBlockTrainer.__name__ = TokenBlockTrainer.__qualname__ = f"TokenBlock{base.__name__}"
    return TokenBlockTrainer
