"""What continued pretraining adds to a training run (align/train/cpt.py is the command and its config):
the token budget turned into steps, the text tokenizer, the run card's CPT part. Separate from the
command so the recipe parser and the shared stage code use them without importing the launcher."""

from __future__ import annotations

import math

from align.errors import UserError
from align.train.values import key_source


def tokens_per_step(training_args) -> int:
    """Tokens one optimizer step trains on when every block is full: global batch x max_length."""
    return (training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
            * training_args.world_size * training_args.max_length)


def apply_token_budget(training_args, resolved: dict, cli_keys: set[str]) -> str | None:
    """`max_tokens` -> `max_steps` (rounded up). Returns the note saying so, or None without a budget."""
    budget = getattr(training_args, "max_tokens", None)
    if budget is None:
        return None
    where = key_source("max_tokens", resolved, cli_keys)
    if budget < 1:
        raise UserError(f"{where}: max_tokens must be at least 1, got {budget}")
    if training_args.max_steps != -1:
        raise UserError(f"{where}: max_tokens ({budget}) and max_steps ({training_args.max_steps}) both set the "
                        "length of training: keep one")
    if training_args.max_length is None:
        raise UserError(f"{where}: max_tokens needs max_length (the block size packing fills)")
    per_step = tokens_per_step(training_args)
    training_args.max_steps = math.ceil(budget / per_step)
    return (f"max_tokens: {budget} -> max_steps: {training_args.max_steps} ({per_step} tokens per step = "
            f"{training_args.per_device_train_batch_size} per device x {training_args.gradient_accumulation_steps} "
            f"accumulation x {training_args.world_size} processes x max_length {training_args.max_length})")


def checkpoint_tokenizer(model_args, training_args):
    """The checkpoint's tokenizer as it is saved; a checkpoint without one is a one-line error."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision,
                                             trust_remote_code=training_args.trust_remote_code)
    except OSError as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(f"model_name_or_path {model_args.model_name_or_path!r}: no tokenizer ({first})") from None


def load_text_tokenizer(model_args, training_args):
    """The checkpoint's own tokenizer, unchanged but for a pad token (= eos) when it has none: no chat template
    is added, the text is trained as it is."""
    tok = checkpoint_tokenizer(model_args, training_args)
    eos = training_args.eos_token or tok.eos_token
    if eos is None:
        raise UserError(f"{model_args.model_name_or_path}: the tokenizer has no eos token (it separates documents): "
                        "set eos_token in the recipe")
    if tok.pad_token is None:
        tok.pad_token = eos  # only the last, short block is padded; the collator masks padding by attention mask
    return tok


def run_card_extra(training_args) -> dict:
    """What a CPT run card adds: the token budget and how documents became blocks."""
    return {"cpt": {"max_tokens": training_args.max_tokens, "tokens_per_step": tokens_per_step(training_args),
                    "text_column": training_args.text_column, "packing": training_args.packing,
                    "packing_strategy": training_args.packing_strategy if training_args.packing else None,
                    "block_length": training_args.max_length,
                    "loss": "every token (labels = input ids; eos appended to each document)"}}
