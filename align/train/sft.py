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

from align.errors import exit_on_user_error


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    from align.train.compat import apply_recipe_env

    argv = list(sys.argv[1:] if argv is None else argv)
    apply_recipe_env(argv)  # the recipe's env: block, before torch / transformers are imported
    from align.train.launch import launch_if_asked
    from align.train.stage import run_training

    launched = launch_if_asked("sft", argv)  # --accelerate_config / accelerate's flags: `accelerate launch`
    return launched if launched is not None else run_training("sft", argv)


if __name__ == "__main__":
    sys.exit(main())
