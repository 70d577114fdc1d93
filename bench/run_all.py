"""Run every benchmark of BENCHMARKS.md, one after the other, with the commands recorded there.

    python bench/run_all.py [--only sft,cpt,answer,linear,families,judge,grow,eval,demo] [--list]

Each benchmark compares against its own baseline inside its own run (this machine is shared and
noisy: ratios from one run are what counts). Results land under outputs/bench*/; this script
prints each benchmark's wall time and exit status, and exits non-zero if any failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# name -> arguments, as in BENCHMARKS.md (keep the two in step).
BENCHMARKS = {
    "sft": ["bench/bench_sft_throughput.py"],
    "cpt": ["bench/bench_cpt_throughput.py", "--steps", "3", "--rounds", "2", "--stock", "--threads", "1"],
    "answer": ["bench/bench_answer.py", "--per-category", "10", "--max-new-token", "256", "--threads", "1",
               "--batch-size", "80", "--concurrent", "--out-dir", "outputs/bench/answer-256-80q"],
    "linear": ["bench/bench_linear.py"],
    "families": ["bench/bench_families.py", "--max-new-token", "48", "--threads", "1"],
    "judge": ["bench/bench_judge.py"],
    "grow": ["bench/bench_grow.py"],
    "eval": ["bench/bench_eval.py"],
    "demo": ["bench/bench_demo.py"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--only", help="comma-separated subset of: " + ",".join(BENCHMARKS))
    parser.add_argument("--list", action="store_true", help="print the commands and stop")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"run_all: unknown benchmark {unknown[0]!r} (known: {', '.join(BENCHMARKS)})", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        cmd = [sys.executable, *BENCHMARKS[name]]
        print(f"== {name}: {' '.join(BENCHMARKS[name])}", flush=True)
        if args.list:
            continue
        start = time.perf_counter()
        rc = subprocess.call(cmd, cwd=REPO)
        print(f"== {name}: exit {rc} after {time.perf_counter() - start:.0f} s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"run_all: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
