"""Argparse value types shared by every `align` command: a number that means nothing is refused
while the command line is parsed (one line, exit 2), never clamped, defaulted or left to crash later.

    parser.add_argument("--first-n", type=positive_int)
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (`prog: error: ...`), exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see `{self.prog} --help`)", file=sys.stderr, flush=True)
        sys.exit(2)


def _number(kind: Callable[[str], float], text: str, expected: str) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}")
    return value


def int_at_least(low: int, expected: str | None = None) -> Callable[[str], int]:
    """A type: an integer >= low."""
    expected = expected or f"an integer of at least {low}"

    def parse(text: str) -> int:
        value = _number(int, text, expected)
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}")
        return value

    parse.__name__ = f"int_at_least_{low}"
    return parse


positive_int = int_at_least(1, "a positive integer")
non_negative_int = int_at_least(0, "a non-negative integer")


def positive_float(text: str) -> float:
    """A type: a finite number > 0 (a timeout of 0 or below would never succeed)."""
    value = _number(float, text, "a positive number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number")
    return value


def non_negative_float(text: str) -> float:
    """A type: a finite number >= 0."""
    value = _number(float, text, "a non-negative number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a non-negative number")
    return value


def option_args(mapping: dict, flags: dict[str, str]) -> list[str]:
    """['--flag', 'value'] for each key of `flags` (key -> flag) that `mapping` sets (not None): a
    config section handed on as another command's options."""
    return [arg for key, flag in flags.items() if mapping.get(key) is not None for arg in (flag, str(mapping[key]))]
