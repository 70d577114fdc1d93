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

from align.plumbing.errors import exit_on_user_error

KIND = "cpt"  # its entry in align/train/kinds.py


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    """`align cpt ARGS`: the recipe's env: block first (before torch and transformers are imported), then
    `accelerate launch` when launcher flags are given (align/train/launch.py), else the run in this process."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from align.train.compat import apply_recipe_env

    apply_recipe_env(argv)
    from align.train.launch import launch_if_asked
    from align.train.stage import run_training

    launched = launch_if_asked(KIND, argv)
    return launched if launched is not None else run_training(KIND, argv)


def make_parser():
    """`align cpt`'s recipe parser (TRL's TrlParser over the recipe's dataclasses): what its --help prints."""
    from align.train.kinds import KINDS
    from align.train.recipe import recipe_parser

    return recipe_parser(KINDS[KIND].config_class)


if __name__ == "__main__":
    sys.exit(main())
