"""A checkpoint of another checkpoint's shape with fresh random weights: the `scratch` construction
when no from-scratch pre-trained model is at hand (the CPU demo). Same config, same tokenizer.

    python -m align.init_scratch --like CKPT --seed 0 --out DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from align.common import UserError, atomic_directory, exit_on_user_error, write_run_card


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--like", required=True, help="checkpoint whose config and tokenizer to use")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
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
        params = sum(p.numel() for p in model.parameters())
        write_run_card(tmp, {"stage": "init_scratch", "like": str(args.like), "seed": args.seed,
                             "parameters": params}, started)
    print(f"wrote {out}: {params:,} parameters, random init (seed {args.seed}) of {args.like}'s shape")
    return 0


if __name__ == "__main__":
    sys.exit(main())
