"""Direct preference optimization: recipe -> TRL DPOTrainer -> checkpoint with chat template and run card.

    align dpo --accelerate_config zero3 --num_processes 8 --config recipes/... (launches accelerate)
    align dpo --config recipes/dpo/ultrafeedback.yaml --model_name_or_path SFT_DIR --output_dir DIR
    accelerate launch --config_file recipes/accelerate/zero3.yaml -m align.dpo --config ... [--key value ...]
    python -m align.dpo ...   (the same; align/dpo.py is an alias)

The dataset is preference rows (`chosen` / `rejected` conversations sharing the prompt); TRL
extracts the shared prompt, tokenizes with the checkpoint's chat template (the one SFT saved)
and trains. With `precompute_ref_log_probs: true` the reference log-probs are computed once
up front and no reference model is kept.
"""

from __future__ import annotations

import sys

from align.plumbing.errors import exit_on_user_error

KIND = "dpo"  # its entry in align/train/kinds.py


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    """`align dpo ARGS`: the recipe's env: block first (before torch and transformers are imported), then
    `accelerate launch` when launcher flags are given (align/train/launch.py), else the run in this process."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from align.train.compat import apply_recipe_env

    apply_recipe_env(argv)
    from align.train.launch import launch_if_asked
    from align.train.stage import run_training

    launched = launch_if_asked(KIND, argv)
    return launched if launched is not None else run_training(KIND, argv)


def make_parser():
    """`align dpo`'s recipe parser (TRL's TrlParser over the recipe's dataclasses): what its --help prints."""
    from align.train.kinds import KINDS
    from align.train.recipe import recipe_parser

    return recipe_parser(KINDS[KIND].config_class)


if __name__ == "__main__":
    sys.exit(main())
