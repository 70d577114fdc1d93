"""The `align` command: one verb per stage.

    align sft --config RECIPE [--key value ...]       (also: python -m align.sft, accelerate launch -m align.sft)
    align sft --accelerate_config zero3 --num_processes 8 --config RECIPE ...   (runs `accelerate launch`)
    align dpo --config RECIPE [--key value ...]
    align cpt --config RECIPE [--key value ...]       continued pretraining on plain text or token shards
    align tokenize --source CORPUS --tokenizer CKPT --out DIR   text -> token shards, once, on every core
    align init --like CKPT --out DIR                  random weights in a checkpoint's shape
    align grow --from CKPT --to SPEC --out DIR        bert2BERT width/depth growth
    align series FILE                                 a whole series, resumable
    align eval --model-path CKPT --out DIR            lm-eval on a base checkpoint (the study's Table 1)
    align heldout --model-path CKPT --kind sft|dpo --data FILE --rows N --out DIR   held-out loss / preference accuracy
    align mtbench answer|judge|report|subset|agreement ...

Each verb's module exposes `add_arguments(parser)` and `run(args) -> int`; the training verbs take
recipe command lines (any recipe key as a flag) and expose `main(argv)`. Only the chosen verb's
module is imported, so `align --help` stays fast. Abbreviated flags are refused everywhere.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from align.plumbing.argtypes import OneLineParser
from align.plumbing.errors import exit_on_user_error

# verb -> (module, one-line help). Modules with add_arguments/run.
COMMANDS = {
    "init": ("align.grow.scratch", "a checkpoint of another's shape with fresh random weights"),
    "grow": ("align.grow.command", "grow a checkpoint wider/deeper (bert2BERT FPI/AKI)"),
    "tokenize": ("align.train.tokenize", "text corpus -> token shards (.ds + .ds.index), in parallel, resumable"),
    "series": ("align.series.runner", "run a whole series: grow -> sft -> dpo -> answer -> judge -> report"),
    "eval": ("judges.measures.base_eval", "lm-evaluation-harness on a base checkpoint (the study's Table 1)"),
    "heldout": ("judges.measures.heldout", "held-out SFT loss or DPO preference accuracy, per row"),
}
# Training verbs parse recipe command lines themselves (TRL's parser): argv goes through whole.
RECIPE_COMMANDS = {
    "sft": ("align.train.sft", "supervised fine-tuning with TRL's SFTTrainer (recipe + overrides)"),
    "dpo": ("align.train.dpo", "direct preference optimization with TRL's DPOTrainer (recipe + overrides)"),
    "cpt": ("align.train.cpt", "continued pretraining on plain text, packed, every token trained (recipe + overrides)"),
}
MTBENCH_COMMANDS = {
    "answer": ("judges.answers.command", "generate MT-Bench answers (FastChat model_answer JSONL)"),
    "judge": ("judges.judging.command", "judge answers (FastChat model_judgment JSONL)"),
    "report": ("judges.reporting.command", "scores, confidence intervals, paired comparisons, table and plot"),
    "subset": ("judges.answers.subset", "write a smaller MT-Bench (the first N questions of each category)"),
    "agreement": ("judges.trust.command", "how often two judges agree (FastChat's definitions, with and without ties)"),
}


def make_parser(module: str, prog: str, help_text: str) -> OneLineParser:
    """The parser of one verb, built by its module's `add_arguments` (for `python -m` entry points too)."""
    parser = OneLineParser(prog=prog, description=help_text, allow_abbrev=False)
    mod = importlib.import_module(module)
    mod.add_arguments(parser)
    parser.set_defaults(_run=mod.run)
    return parser


def _add(sub: argparse._SubParsersAction, name: str, module: str, help_text: str, load: bool) -> None:
    parser = sub.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
    if load:  # only the chosen verb's module is imported
        mod = importlib.import_module(module)
        mod.add_arguments(parser)
        parser.set_defaults(_run=mod.run)
        if module == MTBENCH_COMMANDS["report"][0]:
            _add_series_to_report(parser, mod.run)


def _add_series_to_report(parser: argparse.ArgumentParser, run) -> None:
    """`align mtbench report --series FILE`: the study table of a series file's `models:` (align.series builds
    it, the same table `align series` hands its reports), so the report itself never reads a series file."""
    parser.add_argument("--series", default=None,
                        help="series YAML: `models:` entries with name (model_id), size, construction")

    def run_with_series(args: argparse.Namespace) -> int:
        if args.series is not None:
            from align.plumbing.errors import UserError
            from align.series.study import study_of_series_file

            if args.study is not None:
                raise UserError("--series and --study: give one (both say what the table's models are)")
            args.study_entries = study_of_series_file(args.series)["entries"]
            args.study_source = f"--series {args.series}"
        return run(args)

    parser.set_defaults(_run=run_with_series)


def build_parser(argv: list[str]) -> OneLineParser:
    words = [a for a in argv if not a.startswith("-")]
    chosen = words[0] if words else None
    step = words[1] if len(words) > 1 and chosen == "mtbench" else None
    parser = OneLineParser(prog="align", description="Post-training alignment workbench.",
                                     allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in RECIPE_COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    for name, (module, help_text) in COMMANDS.items():
        _add(sub, name, module, help_text, load=name == chosen)
    mtbench = sub.add_parser("mtbench", help="MT-Bench: answer, judge, report, subset, agreement", allow_abbrev=False)
    mt_sub = mtbench.add_subparsers(dest="mtbench_command", required=True, metavar="STEP")
    for name, (module, help_text) in MTBENCH_COMMANDS.items():
        _add(mt_sub, name, module, help_text, load=chosen == "mtbench" and name == step)
    return parser


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in RECIPE_COMMANDS:
        return int(importlib.import_module(RECIPE_COMMANDS[argv[0]][0]).main(argv[1:]) or 0)
    args = build_parser(argv).parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
