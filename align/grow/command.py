"""`align grow`: bert2BERT width and depth growth of a Llama-family checkpoint.

    align grow --from CKPT --to SPEC.yaml --method fpi|aki --depth stack|interpolate|zero \
        [--noise S] [--seed N] --out DIR [--dry-run]

SPEC is a YAML of the config fields that change. The output directory is an ordinary checkpoint
(plain `from_pretrained`, no custom code) in the source's dtype, with the source's tokenizer files
and chat template, and a `run_card.json` written last. A SPEC with `stages:` is a series
(recipes/grow/series.yaml): `--dry-run` prints its parameter counts and compute accounting.

The growth itself is align/grow/model.py (shapes, state dict) over width.py and depth.py.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from align.grow.model import GROW_KEYS, family_of, grow_model, load_spec, source_shape, target_config, target_shape
from align.plumbing.accounting import TOKENS_PER_PARAMETER, count_config_parameters, count_parameters, training_flops
from align.plumbing.argtypes import non_negative_float, non_negative_int
from align.plumbing.errors import UserError
from align.plumbing.files import atomic_directory
from align.plumbing.outputs import check_new_output
from align.plumbing.runcard import write_run_card

log = logging.getLogger("align.grow")

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.json", "merges.txt", "tokenizer.model", "chat_template.jinja", "chat_template.json")


def study_flops(params: float) -> float:
    """6·N·D at the study's D = 40·N."""
    return training_flops(params, TOKENS_PER_PARAMETER * params)


def series_dry_run(spec: dict, spec_path: Path) -> int:
    from transformers import AutoConfig

    base = dict(spec.get("base") or {})
    model_type = base.pop("model_type", "llama")
    stages = spec.get("stages")
    if not isinstance(stages, list) or not stages:
        raise UserError(f"{spec_path}: `stages` must be a list of {{name, nominal_billions, spec}}")
    rows, prev = [], None
    for n, stage in enumerate(stages):
        where = f"{spec_path}: stages[{n}]"
        if not isinstance(stage, dict) or not {"name", "spec"} <= set(stage):
            raise UserError(f"{where}: expected keys name, spec (and nominal_billions)")
        stage_path = spec_path.parent / stage["spec"]
        changes = load_spec(stage_path)
        config = AutoConfig.for_model(model_type, **{**base, **changes})
        shape = source_shape(config)
        target_shape(shape, changes, str(stage_path))  # the stage file alone must be valid
        if prev is not None:
            target_shape(prev, {k: shape[k] for k in GROW_KEYS}, f"{where} (grown from {rows[-1]['name']})")
        prev = shape
        counts = count_config_parameters(config)
        rows.append({"name": stage["name"], "nominal": float(stage.get("nominal_billions", 0)) * 1e9, **counts,
                     "shape": shape})
    print(f"series {spec_path} ({model_type}, vocab {base.get('vocab_size')}, "
          f"tied embeddings {bool(base.get('tie_word_embeddings', False))})")
    print(f"{'stage':>6} {'hidden':>6} {'ffn':>6} {'layers':>6} {'heads':>5} {'total':>14} {'non-embedding':>14}")
    for r in rows:
        s = r["shape"]
        print(f"{r['name']:>6} {s['hidden_size']:>6} {s['intermediate_size']:>6} {s['num_hidden_layers']:>6} "
              f"{s['num_attention_heads']:>5} {r['total']:>14,} {r['non_embedding']:>14,}")
    print("compute, 6·N·D with D = 40·N tokens (2x Chinchilla), in ZFLOPs (1e21):")
    print(f"{'N counted as':>16} {'by growth (largest)':>20} {'each independently':>19} {'ratio':>6}")
    for label, key in (("nominal size", "nominal"), ("non-embedding", "non_embedding"), ("total", "total")):
        if not all(r[key] for r in rows):
            continue
        grown = study_flops(rows[-1][key]) / 1e21
        independent = sum(study_flops(r[key]) for r in rows) / 1e21
        print(f"{label:>16} {grown:>20.2f} {independent:>19.2f} {independent / grown:>6.3f}")
    return 0


# ---------------------------------------------------------------- the command

def add_arguments(parser) -> None:
    parser.add_argument("--from", dest="source", help="source checkpoint directory")
    parser.add_argument("--to", dest="spec", required=True,
                        help="YAML of the config fields that change (or a series file with `stages:` for --dry-run)")
    parser.add_argument("--method", choices=("fpi", "aki"), default="aki",
                        help="fpi: function preserving; aki: new units from the next layer up (default, the study's)")
    parser.add_argument("--depth", choices=("stack", "interpolate", "zero"), default="stack",
                        help="new layers: stack the top layers (default), interpolate, or zero-init copies")
    parser.add_argument("--noise", type=non_negative_float, default=0.0,
                        help="zero-sum noise on fan-out weights, relative to each weight's std (keeps FPI exact)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed for the unit maps and the noise")
    parser.add_argument("--out", help="output checkpoint directory (must not exist or be empty)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print parameter counts and compute accounting; allocate and write nothing")


def _copy_tokenizer_files(source: Path, dest: Path) -> list[str]:
    copied = []
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, dest / name)
            copied.append(name)
    return copied


def run(args) -> int:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    started = time.time()
    if not args.noise >= 0:
        raise UserError(f"--noise must be >= 0, got {args.noise!r}")
    spec_path = Path(args.spec)
    spec = load_spec(spec_path)
    if "stages" in spec:
        if not args.dry_run:
            raise UserError(f"{spec_path} is a series file: --dry-run prints it; grow one stage at a time "
                            f"with its stage file")
        return series_dry_run(spec, spec_path)
    if not args.source:
        raise UserError("--from CKPT is required (only a series file can be dry-run without one)")
    source = Path(args.source)
    if not args.dry_run:
        if not args.out:
            raise UserError("--out DIR is required")
        check_new_output(args.out, {"--from": source, "--to": spec_path})
    if not (source / "config.json").is_file():
        raise UserError(f"--from {source}: not a checkpoint directory (no config.json)")
    config = AutoConfig.from_pretrained(source)
    family_of(config)
    src = source_shape(config)
    tgt = target_shape(src, spec, str(spec_path))
    if args.dry_run:
        from align.grow.depth import layer_order

        new_config = target_config(config, tgt, layer_order(src["num_hidden_layers"], tgt["num_hidden_layers"],
                                                            args.depth))
        before, after = count_config_parameters(config), count_config_parameters(new_config)
        print(f"source {source}: {before['total']:,} parameters ({before['non_embedding']:,} non-embedding)")
        print(f"target {spec_path}: {after['total']:,} parameters ({after['non_embedding']:,} non-embedding)")
        print(f"6·N·D at D = 40·N: source {study_flops(before['total']):.3e} FLOPs, "
              f"target {study_flops(after['total']):.3e} FLOPs")
        return 0
    out = Path(args.out)
    log.info("loading %s", source)
    source_model = AutoModelForCausalLM.from_pretrained(source, dtype="auto")
    model = grow_model(source_model, spec, method=args.method, depth=args.depth, noise=args.noise,
                       seed=args.seed, where=str(spec_path))
    with atomic_directory(out) as tmp:  # `out` is absent or empty (checked above)
        log.info("saving to %s", out)
        model.save_pretrained(tmp)
        copied = _copy_tokenizer_files(source, tmp)
        write_run_card(tmp, {
            "stage": "grow", "source": str(source.resolve()), "spec_file": str(spec_path.resolve()), "spec": spec,
            "method": args.method, "depth": args.depth, "noise": args.noise, "seed": args.seed,
            "model_type": config.model_type, "dtype": str(model.dtype).removeprefix("torch."),
            "source_shape": src, "target_shape": tgt, "layer_order": model.growth_layer_order,
            "parameters": {"source": count_parameters(source_model), "target": count_parameters(model)},
            "tokenizer_files": copied, "torch_threads": torch.get_num_threads(),
        }, started=started)
    print(f"grown checkpoint: {out}")
    return 0
