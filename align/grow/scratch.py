"""A checkpoint of another checkpoint's shape with fresh random weights: the `scratch` construction
when no from-scratch pre-trained model is at hand (the CPU demo). Same config, same tokenizer.

    align init --like CKPT --seed 0 --out DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from align.accounting import count_parameters
from align.argtypes import non_negative_int
from align.errors import UserError, exit_on_user_error
from align.files import atomic_directory
from align.outputs import check_new_output
from align.runcard import write_run_card


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--like", required=True, help="checkpoint whose config and tokenizer to use")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random init")
    parser.add_argument("--out", required=True, help="output checkpoint directory (must not exist or be empty)")


def run(args: argparse.Namespace) -> int:
    check_new_output(args.out, {"--like": args.like})
    if not (Path(args.like) / "config.json").is_file():
        raise UserError(f"{args.like}: no config.json (expected a checkpoint directory)")
    started = time.time()

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    config = AutoConfig.from_pretrained(args.like)
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_config(config)
    out = Path(args.out)
    with atomic_directory(out) as tmp:
        try:
            model.generation_config = GenerationConfig.from_pretrained(args.like)
        except OSError:
            pass  # no generation_config.json: keep the one built from the config
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(args.like).save_pretrained(tmp)
        params = count_parameters(model)
        write_run_card(tmp, {"stage": "init_scratch", "like": str(args.like), "seed": args.seed,
                             "parameters": params}, started)
    print(f"wrote {out}: {params:,} parameters, random init (seed {args.seed}) of {args.like}'s shape")
    return 0


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    from align.cli import COMMANDS, run_module

    return run_module(__name__, "align init", COMMANDS["init"][1], argv)


if __name__ == "__main__":
    sys.exit(main())
