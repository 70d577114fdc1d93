"""Benchmark: 160 MT-Bench judgments against a local judge server with injected latency,
`align mtbench judge --parallel 8` vs `--parallel 1`, same run, each timed as a whole process and,
as the server sees it, from the first request in to the last reply out (the judging phase, without
the ~2-4 s of Python and `openai` start-up that both runs pay once).

    python bench/bench_judge.py [--latency 0.5] [--parallel 8] [--out outputs/bench/judge]

The server (tests/fakes/judge_server.py) sleeps `--latency` seconds per request, as a remote judge
API would; answers are synthetic (the judge step does not care who wrote them). Checks that both
runs wrote all 160 judgments, none failed, and with the same scores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _fixtures import fake_judge_server  # noqa: E402

from align.plumbing.files import atomic_write_jsonl  # noqa: E402
from judges.questions import load_questions  # noqa: E402


def write_answers(path: Path) -> int:
    questions = load_questions()
    atomic_write_jsonl(path, ({"question_id": q["question_id"], "answer_id": str(q["question_id"]),
                               "model_id": "bench-model", "tstamp": 0.0,
                               "choices": [{"index": 0, "turns": [f"A synthetic answer to: {t[:60]}"
                                                                  for t in q["turns"]]}]} for q in questions))
    return sum(len(q["turns"]) for q in questions)


def timed_judge(answers: Path, output: Path, server, parallel: int) -> tuple[float, float]:
    """(whole-process seconds, judging seconds: first request in to last reply out, seen by the server)."""
    base_url = server.base_url
    seen = len(server.timeline)
    for stale in (output, Path(str(output) + ".failed.jsonl")):
        stale.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "align.cli", "mtbench", "judge", "--answer-file", str(answers),
           "--base-url", base_url, "--parallel", str(parallel), "--output-file", str(output)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"judge run failed (parallel {parallel}):\n{proc.stderr[-2000:]}")
    spans = server.timeline[seen:]
    return elapsed, max(done for _, done in spans) - min(start for start, _ in spans)


def scores(path: Path) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {(r["model"], r["question_id"], r["turn"]): r["score"] for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds the fake judge takes per request")
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--out", default="outputs/bench/judge")
    args = parser.parse_args()

    out = REPO / args.out
    answers = out / "model_answer" / "bench-model.jsonl"
    expected = write_answers(answers)
    with fake_judge_server(latency=args.latency) as server:
        sequential, sequential_judging = timed_judge(answers, out / "sequential.jsonl", server, 1)
        parallel, parallel_judging = timed_judge(answers, out / "parallel.jsonl", server, args.parallel)
        requests = server.requests
    seq_scores, par_scores = scores(out / "sequential.jsonl"), scores(out / "parallel.jsonl")
    failed = [p for p in (out / "sequential.jsonl.failed.jsonl", out / "parallel.jsonl.failed.jsonl") if p.exists()]
    result = {
        "judgments_expected": expected, "sequential_judgments": len(seq_scores), "parallel_judgments": len(par_scores),
        "server_requests": requests, "failed_files": [str(p) for p in failed],
        "same_scores": seq_scores == par_scores, "latency_s": args.latency, "parallel": args.parallel,
        "sequential_s": round(sequential, 2), "parallel_s": round(parallel, 2),
        "speedup": round(sequential / parallel, 2), "sequential_judging_s": round(sequential_judging, 2),
        "parallel_judging_s": round(parallel_judging, 2),
        "judging_speedup": round(sequential_judging / parallel_judging, 2),
        "nproc": os.cpu_count(),
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = (len(seq_scores) == len(par_scores) == expected and not failed and result["same_scores"])
    print(f"{expected} judgments, latency {args.latency} s: sequential {sequential:.1f} s, "
          f"--parallel {args.parallel} {parallel:.1f} s -> {result['speedup']:.2f}x as whole processes; "
          f"judging phase {sequential_judging:.1f} s vs {parallel_judging:.1f} s -> {result['judging_speedup']:.2f}x; "
          f"nothing lost: {ok}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
