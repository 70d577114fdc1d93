"""Continued pretraining: plain text -> TRL SFTTrainer in language-modelling mode -> checkpoint and run card.

    align cpt --config recipes/cpt/cpu-demo.yaml --model_name_or_path CKPT --output_dir DIR
    align cpt --accelerate_config zero3 --num_processes 8 --config recipes/cpt/staged-2b.yaml ...
    accelerate launch --config_file recipes/accelerate/zero3.yaml -m align.cpt --config ... [--key value ...]

Rows are plain text (the `text` column, or the one `text_column` names; TRL's `dataset_text_field`
is read the same way). TRL appends the tokenizer's eos to each document, tokenizes without a chat
template, and packs the token stream into `max_length` blocks (`packing_strategy: wrapped`: documents
run on across block boundaries, nothing is cut off or padded except the last block; `bfd` and
`packing: false` cut each document at max_length, said in the log and run card). Every token is
trained: labels are the input ids. `max_tokens` is a budget in tokens, turned into `max_steps`; a
budget the data cannot fill once is refused unless `allow_repeat_data: true`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from trl import SFTConfig

from align.plumbing.errors import exit_on_user_error


@dataclass
class CPTConfig(SFTConfig):
    """TRL's SFTConfig with language-modelling defaults and the two keys continued pretraining needs."""

    text_column: str | None = field(default=None, metadata={
        "help": "column holding each document's text (alignment-handbook key); unset: dataset_text_field, 'text'"})
    max_tokens: int | None = field(default=None, metadata={
        "help": "tokens to train on; becomes max_steps = ceil(max_tokens / (global batch x max_length))"})
    allow_repeat_data: bool = field(default=False, metadata={
        "help": "let a budget (max_tokens / max_steps) larger than the data repeat it; unset, such a run is refused"})
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


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    from align.train.launch import run_recipe_command

    return run_recipe_command("cpt", argv)


if __name__ == "__main__":
    sys.exit(main())
