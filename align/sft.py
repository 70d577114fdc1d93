"""Supervised fine-tuning: recipe -> TRL SFTTrainer -> checkpoint with chat template and run card.

    python -m align.sft --config recipes/sft/ultrachat.yaml --model_name_or_path CKPT --output_dir DIR
    accelerate launch --config_file recipes/accelerate/zero3.yaml -m align.sft --config ... [--key value ...]

The dataset is chat rows (`messages`); with `assistant_only_loss: true` (the study's setting)
only assistant tokens are trained. TRL does the tokenizing, collating and training.
"""

from __future__ import annotations

import sys

from align.common import exit_on_user_error


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    from align.train_common import run_training

    return run_training("sft", list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
