"""How long `align eval` takes per model on the offline demo tasks, against lm-eval's own CLI on the same tasks.

Models: a tiny random Llama (hidden 32, 2 layers, SmolLM2's 49k vocabulary; what the tests use) and the
packaged SmolLM2-135M-Instruct. Tasks: recipes/eval/demo (12 multiple-choice questions = 48 loglikelihood
requests, and 6 held-out documents for word/byte perplexity). Each model runs `align eval` and then
`lm_eval --model hf ... --tasks demo_mc,heldout_text --include_path ...` on the same tasks: the ratio says
what `align eval` adds (its checks, base_eval.json, the run card) over lm-eval itself.

    python bench/bench_eval.py [--out outputs/bench_eval] [--models tiny,smollm2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

DEMO = REPO / "recipes" / "eval" / "demo"


def build_models(out: Path, names: list[str]) -> dict[str, Path]:
    from conftest import make_tiny_llama

    from align.plumbing.packaged import export_smollm2

    models = {}
    if "tiny" in names:
        models["tiny"] = make_tiny_llama(out / "tiny", export_smollm2(tokenizer_only=True))
    if "smollm2" in names:
        models["smollm2"] = Path(export_smollm2(str(out / "smollm2")))
    return models


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def bench_model(name: str, model: Path, out: Path, env: dict) -> dict:
    """One model: align eval (wall and run-card time), then lm_eval's CLI on the same two tasks."""
    eval_dir = out / f"eval-{name}"
    ours = timed([sys.executable, "-m", "align.cli", "eval", "--model-path", str(model), "--tasks", "demo_mc",
                  "--include-path", str(DEMO), "--heldout-text", str(DEMO / "heldout.jsonl"), "--device", "cpu",
                  "--out", str(eval_dir)], env)
    card = json.loads((eval_dir / "eval.run_card.json").read_text())
    tasks = out / f"tasks-{name}"  # lm_eval takes one --include_path: the demo task and the one align eval built
    tasks.mkdir(exist_ok=True)
    for yaml_file in (DEMO / "demo_mc.yaml", eval_dir / "lm_eval" / "tasks" / "heldout_text.yaml"):
        shutil.copy(yaml_file, tasks)
    theirs = timed([str(Path(sys.executable).with_name("lm_eval")), "--model", "hf", "--model_args",
                    f"pretrained={model},dtype=float32", "--tasks", "demo_mc,heldout_text", "--include_path",
                    str(tasks), "--device", "cpu", "--output_path", str(out / f"lm_eval-{name}")], env)
    return {"model": name, "align_eval_s": round(ours, 1), "run_card_wall_s": card["wall_time_s"],
            "lm_eval_cli_s": round(theirs, 1), "ratio": round(ours / theirs, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench_eval")
    parser.add_argument("--models", default="tiny,smollm2")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO))
    models = build_models(args.out, [m.strip() for m in args.models.split(",")])
    rows = [bench_model(name, path, args.out, env) for name, path in models.items()]
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")
    print("| model | `align eval` wall | its run card's wall_time_s | `lm_eval` CLI, same tasks | ratio |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['model']} | {row['align_eval_s']} s | {row['run_card_wall_s']} s | {row['lm_eval_cli_s']} s "
              f"| {row['ratio']}x |")
    (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
