"""Supervised fine-tuning: recipe -> TRL SFTTrainer -> checkpoint with chat template and run card.

    align sft --accelerate_config zero3 --num_processes 8 --config recipes/... (launches accelerate)
    align sft --config recipes/sft/ultrachat.yaml --model_name_or_path CKPT --output_dir DIR
    accelerate launch --config_file recipes/accelerate/zero3.yaml -m align.sft --config ... [--key value ...]
    python -m align.sft ...   (the same; align/sft.py is an alias)

The dataset is chat rows (`messages`); with `assistant_only_loss: true` (the study's setting)
only assistant tokens are trained. TRL does the tokenizing, collating and training.
"""

from __future__ import annotations

import sys

from align.plumbing.errors import exit_on_user_error

KIND = "sft"  # its entry in align/train/kinds.py


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    """`align sft ARGS`: the recipe's env: block first (before torch and transformers are imported), then
    `accelerate launch` when launcher flags are given (align/train/launch.py), else the run in this process."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from align.train.compat import apply_recipe_env

    apply_recipe_env(argv)
    from align.train.launch import launch_if_asked
    from align.train.stage import run_training

    launched = launch_if_asked(KIND, argv)
    return launched if launched is not None else run_training(KIND, argv)


def make_parser():
    """`align sft`'s recipe parser (TRL's TrlParser over the recipe's dataclasses): what its --help prints."""
    from align.train.kinds import KINDS
    from align.train.recipe import recipe_parser

    return recipe_parser(KINDS[KIND].config_class)


if __name__ == "__main__":
    sys.exit(main())
