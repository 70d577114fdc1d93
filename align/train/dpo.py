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


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    from align.train.launch import run_recipe_command

    return run_recipe_command("dpo", argv)


if __name__ == "__main__":
    sys.exit(main())
