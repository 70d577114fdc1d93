"""The `align` command: one subcommand per stage.

Each stage module exposes `add_arguments(parser)` and `run(args) -> int`, and keeps heavy
imports (torch, transformers) inside functions so `align --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from align.common import exit_on_user_error

COMMANDS = {
    "grow": ("align.grow", "grow a checkpoint wider/deeper (bert2BERT FPI/AKI)"),
    "series": ("align.series", "run a whole series: grow -> sft -> dpo -> answer -> judge -> report"),
}
MTBENCH_COMMANDS = {
    "answer": ("judges.answer", "generate MT-Bench answers (FastChat model_answer JSONL)"),
    "judge": ("judges.judge", "single-answer grading (FastChat model_judgment JSONL)"),
    "report": ("judges.report", "scores, confidence intervals, paired comparisons, table and plot"),
}


def _add(sub: argparse._SubParsersAction, name: str, module: str, help_text: str, load: bool) -> None:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    if load:  # only the chosen stage's module is imported
        mod = importlib.import_module(module)
        mod.add_arguments(parser)
        parser.set_defaults(_run=mod.run)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    words = [a for a in argv if not a.startswith("-")]
    chosen = words[0] if words else None
    step = words[1] if len(words) > 1 and chosen == "mtbench" else None
    parser = argparse.ArgumentParser(prog="align", description="Post-training alignment workbench.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        _add(sub, name, module, help_text, load=name == chosen)
    mtbench = sub.add_parser("mtbench", help="MT-Bench: answer, judge, report")
    mt_sub = mtbench.add_subparsers(dest="mtbench_command", required=True, metavar="STEP")
    for name, (module, help_text) in MTBENCH_COMMANDS.items():
        _add(mt_sub, name, module, help_text, load=chosen == "mtbench" and name == step)
    return parser


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
