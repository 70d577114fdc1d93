"""Continued pretraining: plain text -> TRL SFTTrainer in language-modelling mode -> checkpoint and run card.

    align cpt --config recipes/cpt/cpu-demo.yaml --model_name_or_path CKPT --output_dir DIR
    align cpt --accelerate_config zero3 --num_processes 8 --config recipes/cpt/staged-2b.yaml ...
    accelerate launch --config_file recipes/accelerate/zero3.yaml -m align.cpt --config ... [--key value ...]

Rows are plain text (the `text` column, or the one `text_column` names; TRL's `dataset_text_field`
is read the same way). TRL appends the tokenizer's eos to each document, tokenizes without a chat
template, and packs the token stream into `max_length` blocks (`packing_strategy: wrapped`: documents
run on across block boundaries, nothing is cut off or padded except the last block). Every token is
trained: labels are the input ids. `max_tokens` is a budget in tokens, turned into `max_steps`.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

from trl import SFTConfig

from align.errors import UserError, exit_on_user_error


@dataclass
class CPTConfig(SFTConfig):
    """TRL's SFTConfig with language-modelling defaults and the two keys continued pretraining needs."""

    text_column: str | None = field(default=None, metadata={
        "help": "column holding each document's text (alignment-handbook key); unset: dataset_text_field, 'text'"})
    max_tokens: int | None = field(default=None, metadata={
        "help": "tokens to train on; becomes max_steps = ceil(max_tokens / (global batch x max_length))"})
    packing: bool = field(default=True, metadata={
        "help": "pack documents into max_length blocks (continued pretraining: on)"})
    packing_strategy: str = field(default="wrapped", metadata={
        "help": "'wrapped': one token stream cut into max_length blocks, documents separated by eos (pretraining); "
                "'bfd'/'bfd_split': TRL's per-document packing"})
    completion_only_loss: bool | None = field(default=False, metadata={
        "help": "always false here: every token is trained"})

    def __post_init__(self):
        super().__post_init__()
        if self.assistant_only_loss or self.completion_only_loss:
            raise ValueError("continued pretraining trains every token: assistant_only_loss and "
                             "completion_only_loss must be false")
        if self.text_column is None:
            self.text_column = self.dataset_text_field
        self.dataset_text_field = "text"  # align's loader hands TRL each row's text under this name


def tokens_per_step(training_args) -> int:
    """Tokens one optimizer step trains on when every block is full: global batch x max_length."""
    return (training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
            * training_args.world_size * training_args.max_length)


def apply_token_budget(training_args, resolved: dict, cli_keys: set[str]) -> str | None:
    """`max_tokens` -> `max_steps` (rounded up). Returns the note saying so, or None without a budget."""
    from align.train.values import key_source

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


def load_text_tokenizer(model_args, training_args):
    """The checkpoint's own tokenizer, unchanged but for a pad token (= eos) when it has none: no chat template
    is added, the text is trained as it is."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision,
                                            trust_remote_code=training_args.trust_remote_code)
    except OSError as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(f"model_name_or_path {model_args.model_name_or_path!r}: no tokenizer ({first})") from None
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


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    from align.train.launch import run_recipe_command

    return run_recipe_command("cpt", argv)


if __name__ == "__main__":
    sys.exit(main())
