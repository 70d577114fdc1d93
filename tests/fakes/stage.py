"""A stand-in for every series stage: writes the outputs the real stage would write, fast.

    python tests/fakes/stage.py STAGE ARGS...     (ARGS: the real stage's arguments)

    stage.main(STAGE, ARGS, env)                  (in-process: tests/fakes/series_runner.py's executor)

Each call is recorded as one JSON line in $FAKE_CALLS. FAKE_FAIL=<entry>:<stage> makes that stage
exit 3; FAKE_HANG=<entry>:<stage> makes a training stage save `checkpoint-1`, write its pid to
$FAKE_CALLS.pid and hang (to be killed); FAKE_SLEEP=<seconds>: every stage takes that long.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from judges.questions import load_questions

MEASURES = ("base_eval", "heldout_sft", "heldout_dpo")  # --out DIR, like base
OUTPUT_FLAG = {"sft": "--output_dir", "cpt": "--output_dir", "dpo": "--output_dir", "answer": "--answer-file",
               "judge": "--output-file",
               "report": "--out-dir"}


def option(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def options(argv: list[str], flag: str) -> list[str]:
    """The values after `flag` up to the next flag (nargs='+')."""
    rest = argv[argv.index(flag) + 1:]
    return rest[:next((i for i, a in enumerate(rest) if a.startswith("--")), len(rest))]


def write_checkpoint(out: Path, stage: str, argv: list[str], key: str, env: Mapping[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if env.get("FAKE_HANG") == key:
        ckpt = out / "checkpoint-1"  # complete as a trainer's save leaves it: weights, then the state last
        ckpt.mkdir(exist_ok=True)
        (ckpt / "pytorch_model.bin").write_bytes(b"weights")
        (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 1}))
        Path(env["FAKE_CALLS"] + ".pid").write_text(str(os.getpid()))
        print("step 1 saved; hanging", flush=True)
        time.sleep(600)
    (out / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (out / "run_card.json").write_text(json.dumps({"stage": stage, "argv": argv, "written": time.time()}))


def write_trainer_state(out: Path, argv: list[str]) -> None:
    """A cpt run's log: four steps trained to --max_tokens (default 4096), loss falling."""
    tokens = int(option(argv, "--max_tokens") or 4096)
    history = [{"step": s, "loss": 5.0 / s, "num_input_tokens_seen": tokens * s // 4} for s in range(1, 5)]
    (out / "trainer_state.json").write_text(json.dumps({"global_step": 4, "log_history": history}))


def write_answers(path: Path, argv: list[str]) -> None:
    begin, end = option(argv, "--question-begin"), option(argv, "--question-end")
    questions = load_questions(None, int(begin) if begin else None, int(end) if end else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        for q in questions:
            fh.write(json.dumps({"question_id": q["question_id"], "model_id": option(argv, "--model-id"),
                                 "tstamp": time.time(), "choices": [{"index": 0, "turns": ["a"] * len(q["turns"])}]})
                     + "\n")


def write_judgments(path: Path, argv: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        for answer_file in options(argv, "--answer-file"):
            for row in map(json.loads, Path(answer_file).read_text().splitlines()):
                for turn in range(1, len(row["choices"][0]["turns"]) + 1):
                    fh.write(json.dumps({"question_id": row["question_id"], "model": row["model_id"], "turn": turn,
                                         "score": 5, "tstamp": time.time()}) + "\n")


def write_measures(out: Path, stage: str, argv: list[str]) -> None:
    """base_eval: base_eval.json then eval.run_card.json; heldout_*: heldout.json then heldout.run_card.json."""
    out.mkdir(parents=True, exist_ok=True)
    result, card = ("base_eval.json", "eval.run_card.json") if stage == "base_eval" else \
        ("heldout.json", "heldout.run_card.json")
    (out / result).write_text(json.dumps({"measures": {}, "items": {}, "rows": {}, "argv": argv}))
    (out / card).write_text(json.dumps({"stage": stage, "argv": argv}))


def write_report(out: Path, argv: list[str]) -> None:
    json.loads(Path(option(argv, "--study")).read_text())  # the study table the runner wrote just before
    out.mkdir(parents=True, exist_ok=True)  # a later judge's report: <output_dir>/judges/<name>
    rows = [json.loads(line) for line in Path(option(argv, "--input-file")).read_text().splitlines()]
    models = sorted({r["model"] for r in rows})
    (out / "table.csv").write_text("model,n\n" + "".join(f"{m},{sum(r['model'] == m for r in rows)}\n"
                                                         for m in models))
    (out / "table.md").write_text("| model | judgments |\n|---|---|\n" + "".join(f"| {m} | x |\n" for m in models))


def main(stage: str, argv: list[str], env: Mapping[str, str] = os.environ) -> int:
    out = Path(option(argv, OUTPUT_FLAG.get(stage, "--out")))
    entry = option(argv, "--model-id") if stage == "answer" else (
        out.parent.name if stage in ("base", "cpt", "sft", "dpo", *MEASURES) else "_series")
    with open(env["FAKE_CALLS"], "a") as fh:
        fh.write(json.dumps({"stage": stage, "entry": entry, "argv": argv, "t": time.time()}) + "\n")
    time.sleep(float(env.get("FAKE_SLEEP", 0)))  # stages that take a while (jobs side by side)
    key = f"{entry}:{stage}"
    if env.get("FAKE_FAIL") == key:
        print("stand-in failure for", key)
        return 3
    if stage == "prepare":
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(" ".join(argv) + "\n")
    elif stage in ("base", "cpt", "sft", "dpo"):
        write_checkpoint(out, stage, argv, key, env)
        if stage == "cpt":
            write_trainer_state(out, argv)
    elif stage in MEASURES:
        write_measures(out, stage, argv)
    elif stage == "answer":
        write_answers(out, argv)
    elif stage == "judge":
        write_judgments(out, argv)
    elif stage == "report":
        write_report(out, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
