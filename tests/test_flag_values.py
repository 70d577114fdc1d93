"""Every numeric flag of every `align` command refuses a value that means nothing while parsing:
one line naming the flag, exit status 2 (issue 26.9)."""

from __future__ import annotations

import pytest

from align.cli import build_parser

REQUIRED = {
    "mtbench answer": ["--model-path", "m", "--model-id", "m"],
    "mtbench judge": ["--answer-file", "a.jsonl"],
    "mtbench report": ["--input-file", "j.jsonl", "--out-dir", "out"],
    "mtbench subset": ["--out", "out"],
    "grow": ["--to", "spec.yaml"],
    "init": ["--like", "ckpt", "--out", "out"],
}

MEANINGLESS = [
    ("mtbench answer", "--question-begin", "-1"),
    ("mtbench answer", "--question-end", "-1"),
    ("mtbench answer", "--max-new-token", "0"),
    ("mtbench answer", "--parallel", "0"),
    ("mtbench answer", "--batch-size", "-2"),
    ("mtbench answer", "--seed", "-1"),
    ("mtbench answer", "--num-choices", "0"),
    ("mtbench judge", "--first-n", "-3"),
    ("mtbench judge", "--first-n", "0"),
    ("mtbench judge", "--timeout", "0"),
    ("mtbench judge", "--timeout", "-1"),
    ("mtbench judge", "--timeout", "nan"),
    ("mtbench judge", "--max-retries", "-1"),
    ("mtbench judge", "--parallel", "0"),
    ("mtbench judge", "--max-tokens", "0"),
    ("mtbench report", "--bootstrap", "99"),
    ("mtbench report", "--min-ci-questions", "0"),
    ("mtbench report", "--seed", "-1"),
    ("mtbench subset", "--per-category", "0"),
    ("grow", "--noise", "-0.5"),
    ("grow", "--noise", "inf"),
    ("grow", "--seed", "-1"),
    ("init", "--seed", "-1"),
    ("mtbench judge", "--first-n", "three"),
]


def _parse(command: str, extra: list[str]):
    argv = command.split() + REQUIRED[command] + extra
    return build_parser(argv).parse_args(argv)


@pytest.mark.parametrize("command,flag,value", MEANINGLESS)
def test_meaningless_number_is_refused_while_parsing(command, flag, value, capsys):
    with pytest.raises(SystemExit) as exc:
        _parse(command, [flag, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert flag in err and value in err


@pytest.mark.parametrize("command,flag,value", [
    ("mtbench judge", "--max-retries", "0"), ("mtbench judge", "--timeout", "0.5"),
    ("mtbench judge", "--first-n", "3"), ("mtbench answer", "--question-begin", "0"),
    ("mtbench answer", "--seed", "0"), ("grow", "--noise", "0"), ("mtbench report", "--bootstrap", "100"),
])
def test_meaningful_edge_values_pass(command, flag, value):
    args = _parse(command, [flag, value])
    assert getattr(args, flag.lstrip("-").replace("-", "_")) == type(getattr(args, flag.lstrip("-").replace(
        "-", "_")))(value)


def test_demo_data_limit_must_be_positive(capsys):
    from align.train.demo_data import main

    with pytest.raises(SystemExit) as exc:
        main(["--out", "x", "--limit", "0"])
    assert exc.value.code == 2
    assert "--limit" in capsys.readouterr().err
