"""`align` with the fake judge server standing in for `transformers serve` (for signal tests).

    python tests/fakes/local_judge.py LATENCY mtbench judge --judge-model ANY_DIR ...

judges.api.serve starts tests/fakes/judge_server.py (answering after LATENCY seconds) where it would
start `transformers serve`, the same way: its own process group, dying with its parent. The stand-in
prints its base URL and pid first thing, into the server log (`<output>.server.log`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import judges.api.serve
from align.cli import main

FAKE_SERVER = Path(__file__).with_name("judge_server.py")


def fake_serve_command(latency: str):
    def command(model_path: str, port: int, extra_args) -> list[str]:
        return [sys.executable, str(FAKE_SERVER), latency, str(port)]
    return command


if __name__ == "__main__":
    judges.api.serve.serve_command = fake_serve_command(sys.argv[1])
    sys.exit(main(sys.argv[2:]))
