"""Benchmark: `align mtbench answer` (hf backend) vs transformers' generate_batch vs FastChat's batch-1 loop.

Same model (the packaged SmolLM2-135M-Instruct), same questions, same --max-new-token, every side timed
as a whole process (start-up and model loading included), one after the other in one run:
- `align-hf`: `align mtbench answer --hf-engine align` (continuous batching, turn-2 cache reuse);
- `generate_batch`: the same command with `--hf-engine generate_batch` (transformers' continuous
  batching, paged attention);
- `fastchat-batch1`: FastChat's own answer loop, one question at a time.

The baseline is FastChat's own `get_model_answers` from `fastchat.llm_judge.gen_model_answer`
(fschat 0.2.36), run with the changes it needs on this machine, and nothing else:
- `fastchat.llm_judge.common` imports the `anthropic` SDK (for its Claude judge, unused here): an
  empty module stands in for it;
- it hard-codes CUDA (`load_model(device="cuda")`, `tensor.cuda()`): loaded with FastChat's own
  `load_model(device="cpu")`, and `.cuda()` made a no-op;
- its template registry does not know SmolLM2 (unknown names silently get a generic template):
  it is given a FastChat ChatML `Conversation` with SmolLM2's system prompt, which renders exactly
  the checkpoint's chat template (checked below before timing).

    python bench/bench_answer.py --per-category 10 --max-new-token 256 --threads 1 --batch-size 80 --concurrent \
        --out-dir outputs/bench/answer-256-80q

Prints a JSON summary (and writes it to --out-dir/summary.json): each side's seconds, the load average
around it, the answer lengths (re-tokenized from the answer files, so all sides count alike), and for
the two batched sides the ratio to FastChat and how many greedy turns are identical to its text.
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
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def chatml_conversation():
    from fastchat.conversation import Conversation, SeparatorStyle

    return Conversation(name="smollm2-chatml", system_template="<|im_start|>system\n{system_message}",
                        system_message=SMOLLM2_SYSTEM, roles=("<|im_start|>user", "<|im_start|>assistant"),
                        messages=[], sep_style=SeparatorStyle.CHATML, sep="<|im_end|>", stop_token_ids=[2],
                        stop_str="<|im_end|>")


def check_template(model_path: str) -> None:
    """FastChat's rendering must equal the checkpoint's chat template, turn 1 and turn 2."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    conv = chatml_conversation()
    msgs = []
    for user, assistant in (("Hi there?", "Hello! How can I help?"), ("Tell me more.", None)):
        conv.append_message(conv.roles[0], user)
        conv.append_message(conv.roles[1], None)
        msgs.append({"role": "user", "content": user})
        ours = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        if conv.get_prompt() != ours:
            raise SystemExit(f"FastChat's ChatML rendering differs from the chat template:\n{conv.get_prompt()!r}\n"
                             f"{ours!r}")
        if assistant:
            conv.update_last_message(assistant)
            msgs.append({"role": "assistant", "content": assistant})
    ids = tok(["x"]).input_ids[0]
    if ids != tok("x", add_special_tokens=False).input_ids:
        raise SystemExit("the tokenizer adds special tokens: FastChat's and our prompts would differ")


def fastchat_worker(args: argparse.Namespace) -> None:
    """Run FastChat's real batch-1 answer loop (see the module docstring for the three patches)."""
    import types

    import torch

    # fastchat.llm_judge.common imports `anthropic` at the top for its Claude judge, which the answer loop
    # never calls; an empty module satisfies the import without installing an SDK nobody uses here.
    sys.modules.setdefault("anthropic", types.ModuleType("anthropic"))
    import fastchat.llm_judge.gen_model_answer as gen
    from fastchat.model import load_model as fastchat_load_model

    torch.Tensor.cuda = lambda self, *a, **k: self  # CPU machine: FastChat calls .cuda() on inputs
    gen.load_model = lambda path, **kw: fastchat_load_model(path, **{**kw, "device": "cpu", "dtype": torch.float32})
    gen.get_conversation_template = lambda model_id: chatml_conversation()
    gen.run_eval(model_path=args.model_path, model_id="fastchat-batch1", question_file=args.question_file,
                 question_begin=None, question_end=None, answer_file=args.answer_file,
                 max_new_token=args.max_new_token, num_choices=1, num_gpus_per_model=1, num_gpus_total=1,
                 max_gpu_memory=None, dtype=torch.float32, revision="main")
    gen.reorg_answer_file(args.answer_file)


def subset(questions: list[dict], per_category: int) -> list[dict]:
    seen: dict[str, int] = {}
    chosen = []
    for q in questions:
        seen[q["category"]] = seen.get(q["category"], 0) + 1
        if seen[q["category"]] <= per_category:
            chosen.append(q)
    return chosen


def start(cmd: list[str], log_path: Path, threads: int | None) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    with open(log_path, "w") as log:
        return subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)


def finish(proc: subprocess.Popen, started: float, log_path: Path, status: int, usage) -> dict:
    """Wall seconds and the process's own CPU seconds (user + system). With one thread per side, CPU time
    is the work done; other users of a shared machine stretch the wall clock far more than it."""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{proc.args[:4]} failed with status {proc.returncode}: see {log_path}")
    return {"wall": time.perf_counter() - started, "cpu": usage.ru_utime + usage.ru_stime}


def compare(ours: Path, theirs: Path, questions: list[dict]) -> dict:
    from judges.questions import GREEDY_BELOW, temperature_for

    a = {r["question_id"]: r["choices"][0]["turns"] for r in map(json.loads, ours.read_text().splitlines())}
    b = {r["question_id"]: r["choices"][0]["turns"] for r in map(json.loads, theirs.read_text().splitlines())}
    greedy = [q["question_id"] for q in questions if temperature_for(q["category"]) < GREEDY_BELOW]
    out = {"answered_ours": len(a), "answered_fastchat": len(b), "greedy_questions": len(greedy)}
    for turn in (0, 1):
        out[f"greedy_turn{turn + 1}_identical"] = sum(a[q][turn] == b[q][turn] for q in greedy)
    out["differing_greedy_question_ids"] = [q for q in greedy if a[q] != b[q]]
    return out


# Whole processes, timed one after the other: FastChat's batch-1 loop (the baseline), transformers' own
# continuous batching (`generate_batch`, through our hf backend's --hf-engine generate_batch), and ours.
SIDES = ("fastchat-batch1", "generate_batch", "align-hf")


def side_command(side: str, args: argparse.Namespace, model: str, question_dir: Path, question_file: Path,
                 answers: Path) -> list[str]:
    if side == "fastchat-batch1":
        return [sys.executable, __file__, "--fastchat-worker", "--model-path", model, "--question-file",
                str(question_file), "--answer-file", str(answers), "--max-new-token", str(args.max_new_token)]
    engine = {"generate_batch": "generate_batch", "align-hf": "align"}[side]
    return [sys.executable, "-m", "align.cli", "mtbench", "answer", "--model-path", model, "--model-id", side,
            "--answer-file", str(answers), "--question-dir", str(question_dir), "--max-new-token",
            str(args.max_new_token), "--batch-size", str(args.batch_size), "--hf-engine", engine]


def turn_lengths(answers: Path) -> list[int]:
    """Answer lengths in tokens per turn (SmolLM2's tokenizer), whoever wrote the file."""
    from transformers import AutoTokenizer

    from align.plumbing.packaged import export_smollm2

    tok = AutoTokenizer.from_pretrained(export_smollm2(tokenizer_only=True))
    rows = [json.loads(line) for line in answers.read_text().splitlines() if line.strip()]
    return [len(tok(turn, add_special_tokens=False)["input_ids"]) for r in rows for turn in r["choices"][0]["turns"]]


def length_record(answers: Path) -> dict:
    from judges.lengths import length_summary

    return {"answer_tokens_retokenized": length_summary(turn_lengths(answers), None)}


def side_result(side: str, proc: subprocess.Popen, started: float, out: Path, status: int, usage) -> dict:
    seconds = finish(proc, started, out / f"{side}.log", status, usage)
    print(f"{side}: {seconds['wall']:.1f} s wall, {seconds['cpu']:.1f} s CPU", flush=True)
    return {"wall_s": round(seconds["wall"], 1), "cpu_s": round(seconds["cpu"], 1),
            "load_average_after": round(os.getloadavg()[0], 1), **length_record(out / f"{side}.jsonl")}


def plot(summary: dict, out: Path) -> Path:
    """answer_speed.png: CPU seconds per side (ratio to FastChat's loop on each bar), and the distribution
    of our answers' lengths per turn."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sides = [side for side in SIDES if "cpu_s" in summary.get(side, {})]
    fig, (speed, lengths) = plt.subplots(1, 2, figsize=(11, 3.6))
    bars = speed.barh(sides[::-1], [summary[side]["cpu_s"] for side in sides[::-1]], color="tab:blue")
    base = summary.get("fastchat-batch1", {}).get("cpu_s")
    if base:
        speed.bar_label(bars, [f"{base / summary[side]['cpu_s']:.2f}x" for side in sides[::-1]], padding=3)
    speed.set_xlabel("CPU seconds (whole process)")
    speed.set_title(f"{summary['questions']} MT-Bench questions, {summary['max_new_token']} new tokens")
    ours = out / "align-hf.jsonl"
    counts = turn_lengths(ours) if ours.exists() else None
    if counts:
        lengths.hist(counts, bins=32, color="tab:green")
        lengths.set_xlabel("answer tokens per turn, re-tokenized (align engine)")
        lengths.set_ylabel("turns")
        meta = out / "align-hf.jsonl.meta.json"  # the exact count of generated tokens, when the run wrote it
        exact = json.loads(meta.read_text()).get("answer_tokens_this_run", {}) if meta.exists() else {}
        at_cap = exact.get("at_cap", sum(c >= summary["max_new_token"] for c in counts))
        lengths.set_title(f"{at_cap} of {len(counts)} turns hit --max-new-token")
    else:
        lengths.set_axis_off()
    fig.tight_layout()
    fig.savefig(out / "answer_speed.png", dpi=100)
    plt.close(fig)
    return out / "answer_speed.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--per-category", type=int, default=10,
                        help="the first K questions of each of the 8 categories (10 = all 80)")
    parser.add_argument("--max-new-token", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None,
                        help="OMP_NUM_THREADS for both processes (on a shared 2-core machine 1 avoids spin-waiting)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out-dir", default="outputs/bench/answer")
    parser.add_argument("--sides", default=",".join(SIDES),
                        help=f"which processes to time, in order (comma-separated subset of {','.join(SIDES)}); "
                             "results merge into --out-dir/summary.json when the settings match")
    parser.add_argument("--concurrent", action="store_true",
                        help="start every side at once (compare CPU seconds then, not wall time)")
    parser.add_argument("--fastchat-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--question-file", help=argparse.SUPPRESS)
    parser.add_argument("--answer-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fastchat_worker:
        return fastchat_worker(args)

    sys.path.insert(0, str(REPO))
    from align.plumbing.files import atomic_write_jsonl
    from align.plumbing.packaged import export_smollm2
    from judges.questions import load_questions

    model = str(export_smollm2())
    check_template(model)
    out = (REPO / args.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # The chosen questions as a FastChat data/mt_bench directory: every side reads the same file.
    questions = subset(load_questions(), args.per_category)
    question_dir = out / "mt_bench"
    question_dir.mkdir(exist_ok=True)
    question_file = question_dir / "question.jsonl"
    atomic_write_jsonl(question_file, questions)
    summary_file = out / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    settings = {"questions": len(questions), "per_category": args.per_category, "max_new_token": args.max_new_token,
                "batch_size": args.batch_size, "threads": args.threads, "concurrent": args.concurrent}
    if any(summary.get(k) != v for k, v in settings.items()):
        summary = {}  # another configuration's results: start over
    summary.update(settings, nproc=len(os.sched_getaffinity(0)))
    sides = args.sides.split(",")
    running = {}
    for side in sides:
        answers = out / f"{side}.jsonl"
        for path in (answers, answers.with_name(answers.name + ".meta.json")):
            path.unlink(missing_ok=True)
        summary[side] = {"started": time.strftime("%H:%M:%S"), "load_average_before": round(os.getloadavg()[0], 1)}
        cmd = side_command(side, args, model, question_dir, question_file, answers)
        running[side] = (start(cmd, out / f"{side}.log", args.threads), time.perf_counter())
        while running and (not args.concurrent or side == sides[-1]):  # sequential: wait before the next side
            pid, status, usage = os.wait4(-1, 0)  # whichever side ends first
            done = next(name for name, (proc, _) in running.items() if proc.pid == pid)
            proc, started = running.pop(done)
            summary[done].update(side_result(done, proc, started, out, status, usage))
            summary_file.write_text(json.dumps(summary, indent=2) + "\n")
    base = out / "fastchat-batch1.jsonl"
    for side in SIDES[1:]:
        if side in summary and "fastchat-batch1" in summary and base.exists() and (out / f"{side}.jsonl").exists():
            for clock in ("wall", "cpu"):
                ratio = summary["fastchat-batch1"][f"{clock}_s"] / summary[side][f"{clock}_s"]
                summary[side][f"speedup_vs_fastchat_{clock}"] = round(ratio, 2)
            summary[side].update(compare(out / f"{side}.jsonl", base, questions))
    summary_file.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"plot: {plot(summary, out)}")


if __name__ == "__main__":
    main()
