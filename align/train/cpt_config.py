"""Continued pretraining's config: TRL's SFTConfig with language-modelling defaults and the keys a token
budget needs (the CPT entry of align/train/kinds.py names it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTConfig


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
