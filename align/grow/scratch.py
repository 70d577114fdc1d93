"""A checkpoint of another checkpoint's shape with fresh random weights: the `scratch` construction
when no from-scratch pre-trained model is at hand (the CPU demo). Same config, same tokenizer.
With `--shape SPEC.yaml` (config fields, as `align grow --to` reads them) the model takes that shape
instead, still with CKPT's tokenizer: a scratch model of any size (the staged demo's tiny one).

    align init --like CKPT --seed 0 --out DIR
    align init --like CKPT --shape recipes/demo/tiny-small.yaml --out DIR
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from align.plumbing.accounting import count_parameters
from align.plumbing.argtypes import non_negative_int
from align.plumbing.errors import UserError
from align.plumbing.files import atomic_directory
from align.plumbing.outputs import check_new_output
from align.plumbing.runcard import write_run_card


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--like", required=True, help="checkpoint whose config and tokenizer to use")
    parser.add_argument("--shape", default=None,
                        help="YAML of config fields (hidden_size, num_hidden_layers, ...) the model takes instead "
                             "of CKPT's; a model_type there starts from that architecture's defaults")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random init")
    parser.add_argument("--out", required=True, help="output checkpoint directory (must not exist or be empty)")


def run(args: argparse.Namespace) -> int:
    check_new_output(args.out, {"--like": args.like})
    if not (Path(args.like) / "config.json").is_file():
        raise UserError(f"{args.like}: no config.json (expected a checkpoint directory)")
    started = time.time()

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    config = shaped_config(AutoConfig.from_pretrained(args.like), args.shape)
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


def shaped_config(config, shape: str | None):
    """`config` with the fields of the YAML file `shape` (None: unchanged). Another model_type there builds
    that architecture's config with the tokenizer's special token ids kept."""
    from transformers import AutoConfig

    from align.plumbing.files import read_yaml_mapping

    if shape is None:
        return config
    fields = dict(read_yaml_mapping(shape, "--shape"))
    kind = fields.pop("model_type", config.model_type)
    if kind != config.model_type:
        ids = {k: getattr(config, k, None) for k in ("bos_token_id", "eos_token_id", "pad_token_id", "vocab_size")}
        fields = {**{k: v for k, v in ids.items() if v is not None}, **fields}
        try:
            return AutoConfig.for_model(kind, **fields)
        except ValueError as err:
            raise UserError(f"--shape {shape}: model_type {kind!r}: {err}") from None
    config.update(fields)
    return config
