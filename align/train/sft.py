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


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    from align.train.launch import run_recipe_command

    return run_recipe_command("sft", argv)


if __name__ == "__main__":
    sys.exit(main())
