"""Every command README.md and the handbook (docs/*.md) show runs as written (issues 16, 33): training, growth,
answers, judging, the series.

The commands are read from the fenced code blocks of the handbook's pages, in mkdocs.yml's `nav` order, then
README's, at test time, so the test follows the pages as they are now. A command shown on several pages runs
once, where it first appears. Each runs with bash in a scratch directory (with `recipes/` linked in), in that
order, with `python` and `align` meaning this tree. Only model paths, data, hub ids and sizes are substituted, by
the explicit table SUBSTITUTIONS; judging goes to the fake OpenAI-compatible judge in tests/fakes.
A command that runs but must stop at a check this machine cannot pass (a GPU) is in STOPS_HERE, with the
exit status and message it must give.
Commands that cannot run here (GPU, vLLM, Slurm, a paid API, the test suite itself, a demo another test runs)
are listed in NOT_RUNNABLE with the reason, and the list must name exactly the commands that are skipped:
a new command on any page runs (and must pass) unless someone adds it there, with a reason.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, make_tiny_llama
from fakes.judge_server import FakeJudgeServer

README = REPO / "README.md"
MKDOCS = REPO / "mkdocs.yml"
COMMAND_BLOCK_LANGS = ("", "bash", "sh", "shell", "console")  # ```yaml etc. are files, not commands

# Command (as a page writes it, continuation lines joined, comment dropped) -> why it does not run here.
NOT_RUNNABLE = {
    "make demo": "runs `make setup` (creates .venv with pip) first; the demo itself is "
                 "`align series recipes/demo/series.yaml`, which runs here",
    "make test": "the test suite this test is part of",
    "make setup && . .venv/bin/activate": "creates .venv with pip; this test runs inside that environment already",
    "make demo-staged": "runs `make setup` first; the staged demo itself is `align series recipes/demo/staged.yaml`, "
                        "run end to end by tests/series/test_demo_staged.py",
    "align series recipes/demo/staged.yaml": "the staged demo, run end to end (and timed) by "
                                             "tests/series/test_demo_staged.py: not run a second time here",
    "make docs": "runs `make setup` first; the build itself (`mkdocs build --strict`) is tests/test_docs_build.py",
    "accelerate launch --config_file recipes/accelerate/zero3.yaml -m align.sft --config recipes/sft/ultrachat.yaml "
    "--model_name_or_path CKPT --output_dir outputs/2b-expanded/sft":
        "the study's recipe: bf16 on GPUs with DeepSpeed ZeRO-3, UltraChat-200k from the hub",
    "accelerate launch --config_file recipes/accelerate/zero3.yaml -m align.dpo "
    "--config recipes/dpo/ultrafeedback.yaml --model_name_or_path outputs/2b-expanded/sft "
    "--output_dir outputs/2b-expanded/dpo":
        "the study's recipe: bf16 on GPUs with DeepSpeed ZeRO-3, UltraFeedback from the hub",
    "align mtbench answer --model-path CKPT --model-id NAME --backend vllm": "vLLM needs a GPU (not installed here)",
    "align series FILE [--only prepare,grow,sft,dpo,answer,judge,pairwise,report] [--models NAME,...] [--dry-run]":
        "a usage synopsis ([optional] flags), not one command; its real forms above and below run",
    "OPENAI_API_KEY=... align series recipes/series/growth-vs-scratch.yaml":
        "the study itself: 2B-8B models trained on an 8-GPU node, judged by GPT-4 (paid API)",
}

# Commands that run here but stop, as they must, at a check this CPU-only, offline machine cannot pass:
# command -> (exit status, text the output must contain, why).
STOPS_HERE = {
    "align sft --accelerate_config zero3 --num_processes 8 --config recipes/sft/ultrachat.yaml "
    "--model_name_or_path CKPT --output_dir outputs/2b-expanded/sft":
        (2, "bf16: true needs a GPU", "the study's SFT on 8 GPUs: checked before accelerate launches anything"),
    "align cpt --accelerate_config zero3 --num_processes 8 --config recipes/cpt/staged-2b.yaml "
    "--model_name_or_path CKPT --output_dir outputs/staged-2b/cpt":
        (2, "bf16: true needs a GPU", "the study's staged 2B pretraining on 8 GPUs: checked before accelerate "
                                      "launches anything; its token shards come from `align tokenize` on the hub"),
    "align eval --model-path CKPT --out outputs/eval/base":
        (2, "HF_DATASETS_OFFLINE=1 but task(s) need the hub: lambada_openai", "the study's Table 1 tasks read "
                                                                          "their data from the hub: refused offline, "
                                                                          "before the model loads"),
    "align series recipes/series/staged-study.yaml --dry-run":
        (2, "bf16: true needs a GPU", "the plan and the study's pretraining budgets print (no weights loaded), then "
                                      "its recipes are checked against the machine: bf16 needs a GPU"),
    "align series recipes/series/growth-vs-scratch.yaml --dry-run":
        (2, "bf16: true needs a GPU", "the plan prints, then the study's recipes are checked against the machine: "
                                      "bf16 needs a GPU, UltraChat/UltraFeedback need the hub"),
}

# What each command that runs to the end must produce: the files it writes (relative to the scratch directory;
# each must be new) and a line of its output (stdout or stderr). None of these may be missing, and a command
# listed with no files (a dry run, a reader) must write nothing at all. An `export` line sets the environment.
PRODUCES = {
    "python -m align.train.demo_data --out outputs/demo-data":
        (["outputs/demo-data/chat.jsonl", "outputs/demo-data/prefs.jsonl", "outputs/demo-data/text.jsonl"],
         "wrote outputs/demo-data/chat.jsonl, outputs/demo-data/prefs.jsonl and outputs/demo-data/text.jsonl"),
    "python -c \"from align.plumbing.packaged import export_smollm2; print(export_smollm2('outputs/smollm2'))\"":
        (["outputs/smollm2/tokenizer.json", "outputs/smollm2/.complete"], "outputs/smollm2"),
    "align sft --config recipes/sft/cpu-demo.yaml --model_name_or_path outputs/smollm2 --output_dir outputs/cpu/sft":
        (["outputs/cpu/sft/model.safetensors", "outputs/cpu/sft/config.json", "outputs/cpu/sft/tokenizer.json",
          "outputs/cpu/sft/run_card.json", "outputs/cpu/sft/loss.png"],
         "run card outputs/cpu/sft/run_card.json"),
    "align dpo --config recipes/dpo/cpu-demo.yaml --model_name_or_path outputs/cpu/sft --output_dir outputs/cpu/dpo":
        (["outputs/cpu/dpo/model.safetensors", "outputs/cpu/dpo/config.json", "outputs/cpu/dpo/run_card.json"],
         "run card outputs/cpu/dpo/run_card.json"),
    "align sft --config R.yaml --output_dir OUT --dry_run true":
        ([], "not loaded (dry run)"),
    "align cpt --config recipes/cpt/cpu-demo.yaml --model_name_or_path outputs/smollm2 --output_dir outputs/cpu/cpt":
        (["outputs/cpu/cpt/model.safetensors", "outputs/cpu/cpt/run_card.json"],
         "run card outputs/cpu/cpt/run_card.json"),
    "align tokenize --source outputs/demo-data/text.jsonl --tokenizer packaged:smollm2-135m-instruct "
    "--out outputs/tokens/demo":
        (["outputs/tokens/demo/metadata.json", "outputs/tokens/demo/shard-00000.ds"], "wrote outputs/tokens/demo:"),
    "align cpt --config recipes/cpt/cpu-demo.yaml --dataset_name outputs/tokens/demo --model_name_or_path "
    "outputs/smollm2 --output_dir outputs/cpu/cpt-shards":
        (["outputs/cpu/cpt-shards/model.safetensors", "outputs/cpu/cpt-shards/run_card.json"],
         "run card outputs/cpu/cpt-shards/run_card.json"),
    "align grow --from CKPT --to recipes/grow/2b.yaml --method aki --depth stack --out outputs/grow/2b":
        (["outputs/grow/2b/model.safetensors", "outputs/grow/2b/config.json", "outputs/grow/2b/run_card.json"],
         "grown checkpoint: outputs/grow/2b"),
    "align grow --from CKPT --to SPEC.yaml --method fpi --depth zero --noise 0.01 --seed 1 --out DIR":
        (["outputs/grow/dir/model.safetensors", "outputs/grow/dir/config.json", "outputs/grow/dir/run_card.json"],
         "grown checkpoint: outputs/grow/dir"),
    "align grow --dry-run --to recipes/grow/series.yaml":
        ([], "compute, 6·N·D with D = 40·N tokens"),
    "align grow --dry-run --from CKPT --to SPEC.yaml":
        ([], "6·N·D at D = 40·N: source"),
    "align eval --model-path CKPT --tasks demo_mc --include-path recipes/eval/demo --heldout-text "
    "recipes/eval/demo/heldout.jsonl --out outputs/eval/demo":
        (["outputs/eval/demo/base_eval.json", "outputs/eval/demo/eval.run_card.json"],
         "wrote outputs/eval/demo/base_eval.json"),
    "align heldout --kind sft --model-path outputs/cpu/sft --data outputs/demo-data/chat.jsonl --rows 32 "
    "--out outputs/heldout/cpu-sft":
        (["outputs/heldout/cpu-sft/heldout.json", "outputs/heldout/cpu-sft/heldout.run_card.json"],
         "wrote outputs/heldout/cpu-sft/heldout.json"),
    "align heldout --kind dpo --model-path outputs/cpu/dpo --ref-model-path outputs/cpu/sft --data "
    "outputs/demo-data/prefs.jsonl --rows 32 --out outputs/heldout/cpu-dpo":
        (["outputs/heldout/cpu-dpo/heldout.json", "outputs/heldout/cpu-dpo/heldout.run_card.json"],
         "preference_accuracy: "),
    "align mtbench answer --model-path outputs/demo/smollm2-pretrained/dpo --model-id smollm2-dpo":
        (["outputs/mtbench/model_answer/smollm2-dpo.jsonl"], "answers: outputs/mtbench/model_answer/smollm2-dpo.jsonl"),
    "align mtbench answer --model-path MODEL_NAME --model-id NAME --backend openai --base-url "
    "http://127.0.0.1:8000/v1 --parallel 8":
        (["outputs/mtbench/model_answer/readme-openai.jsonl"],
         "answers: outputs/mtbench/model_answer/readme-openai.jsonl"),
    "align mtbench judge --answer-file outputs/mtbench/model_answer/*.jsonl --judge-model gpt-4 --parallel 8":
        (["outputs/mtbench/model_judgment/gpt-4_single.jsonl"],
         " 0 failed; 0 without a usable verdict (1-10 rating, score -1) -> "
         "outputs/mtbench/model_judgment/gpt-4_single.jsonl"),
    "python -m fastchat.llm_judge.show_result --input-file outputs/mtbench/model_judgment/gpt-4_single.jsonl "
    "--mode single":
        ([], "########## Average ##########"),
    "align mtbench judge --mode pairwise-all --answer-file outputs/mtbench/model_answer/*.jsonl --judge-model gpt-4":
        (["outputs/mtbench/model_judgment/gpt-4_pair.jsonl"],
         " 0 failed; 0 without a usable verdict ([[A]]/[[B]]/[[C]] in both games) -> "
         "outputs/mtbench/model_judgment/gpt-4_pair.jsonl"),
    "align mtbench agreement outputs/mtbench/model_judgment/gpt-4_pair.jsonl "
    "outputs/mtbench/model_judgment/gpt-4_single.jsonl --out outputs/agreement.json":
        (["outputs/agreement.json"], "Agreement (between two judges)"),
    "align mtbench report --input-file outputs/mtbench/model_judgment/gpt-4_single.jsonl --out-dir outputs/report "
    "--series recipes/demo/series.yaml":
        (["outputs/report/report.html", "outputs/report/table.md", "outputs/report/summary.json"],
         "### Δ vs scratch (judge: gpt-4)"),
    "align series recipes/demo/series.yaml":
        (["outputs/demo/manifest.json", "outputs/demo/table.md", "outputs/demo/report.html",
          "outputs/demo/summary.json", "outputs/demo/model_judgment/judgments.jsonl",
          "outputs/demo/smollm2-scratch/dpo/model.safetensors"],
         "series demo: everything finished"),
}

# The commands run in the pages' order, later ones reading earlier outputs: under pytest-xdist (-n) one worker runs
# them all, in order (xdist_group), except these, which read no other command's output and take minutes: they run
# beside the chain, on the other worker, in a workspace of their own.
STANDS_ALONE = {"align series recipes/demo/series.yaml"}

TINY_SPEC = "hidden_size: 48\nintermediate_size: 96\nnum_hidden_layers: 3\nnum_attention_heads: 6\n"
ANSWER_SIZES = "--question-end 2 --max-new-token 8"  # 2 of 80 questions, 8 of 1024 tokens per turn

# (regex, replacement) applied in order to each command; {tiny}, {spec}, {judge_url}, {demo_series} are
# filled in by the workspace. Only models, data, hub ids and sizes.
SUBSTITUTIONS = [
    # models: the packaged SmolLM2 export -> its tokenizer only (the model is the tiny Llama below)
    (r"export_smollm2\('outputs/smollm2'\)", "export_smollm2('outputs/smollm2', tokenizer_only=True)"),
    (r"--model_name_or_path outputs/smollm2\b", "--model_name_or_path {tiny}"),
    (r"\bCKPT\b", "{tiny}"),
    (r"--config recipes/sft/ultrachat\.yaml\b",  # data: the demo chat file for UltraChat from the hub
     "--config recipes/sft/ultrachat.yaml --dataset_name outputs/demo-data/chat.jsonl"),
    (r"--config R\.yaml\b", "--config recipes/sft/cpu-demo.yaml --model_name_or_path {tiny}"),  # a recipe
    (r"/ckpt/[\w-]+", "{tiny}"),  # ALIGN_CKPT_* exported for the real study
    (r"--model-path outputs/demo/smollm2-pretrained/dpo\b", "--model-path {tiny}"),
    (r"--model-path MODEL_NAME --model-id NAME\b", "--model-path tiny --model-id readme-openai"),
    # sizes: a tiny growth target, fewer questions and tokens, the demo series on tiny models
    (r"recipes/grow/2b\.yaml|\bSPEC\.yaml\b", "{spec}"),
    (r"--out DIR\b", "--out outputs/grow/dir"),
    (r"^(align mtbench answer .*)$", r"\1 " + ANSWER_SIZES),
    (r"^align series recipes/demo/series\.yaml$", "align series {demo_series}"),
    # endpoints: the fake OpenAI-compatible server stands in for OpenAI (gpt-4) and local servers
    (r"--base-url http://127\.0\.0\.1:8000/v1\b", "--base-url {judge_url}"),
    (r"--judge-model gpt-4\b", "--judge-model gpt-4 --base-url {judge_url}"),
]


def readme_commands(text: str) -> list[str]:
    """Commands in a page's fenced command blocks, in order: continuations joined, comments dropped."""
    commands = []
    for lang, body in re.findall(r"^```([\w-]*)\n(.*?)^```", text, flags=re.M | re.S):
        if lang not in COMMAND_BLOCK_LANGS:
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()  # the pages' commands carry no '#' inside arguments
            if line and not line.startswith("#"):
                commands.append(" ".join(line.split()))
    return commands


def substitute(command: str, values: dict[str, str]) -> str:
    for pattern, replacement in SUBSTITUTIONS:
        command = re.sub(pattern, lambda m, r=replacement: m.expand(r).format(**values), command)
    return command


def pages() -> list:
    """The handbook's pages in mkdocs.yml's nav order (later pages use earlier pages' outputs), then README."""
    nav = yaml.safe_load(MKDOCS.read_text(encoding="utf-8"))["nav"]
    return [REPO / "docs" / next(iter(entry.values())) for entry in nav] + [README]


def page_commands() -> list[str]:
    """Every page's commands in order, each once: where it first appears (README repeats the handbook's)."""
    return list(dict.fromkeys(c for page in pages() for c in readme_commands(page.read_text(encoding="utf-8"))))


COMMANDS = page_commands()
RUNNABLE = [c for c in COMMANDS if c not in NOT_RUNNABLE]


def test_not_runnable_list_is_exactly_what_is_skipped():
    """Every entry names a command a page shows today (a reworded command must be re-listed or run)."""
    skipped = {c for c in COMMANDS if c not in RUNNABLE}
    assert skipped == set(NOT_RUNNABLE), f"listed as not runnable, but no page shows: " \
                                         f"{sorted(set(NOT_RUNNABLE) - skipped)}"
    assert set(STOPS_HERE) <= set(RUNNABLE), sorted(set(STOPS_HERE) - set(RUNNABLE))
    assert len(RUNNABLE) >= 15  # the parser still finds the pages' commands
    assert len(RUNNABLE) == len(set(RUNNABLE))  # a command shown twice runs once
    assert all(reason for reason in NOT_RUNNABLE.values())
    assert STANDS_ALONE <= set(RUNNABLE)


def test_every_command_that_runs_says_what_it_must_produce():
    """A new command on a page needs its files and output line in PRODUCES (or a STOPS_HERE entry)."""
    runs_through = {c for c in RUNNABLE if c not in STOPS_HERE and not c.startswith("export ")}
    assert set(PRODUCES) == runs_through, {"no PRODUCES entry": sorted(runs_through - set(PRODUCES)),
                                           "no page shows": sorted(set(PRODUCES) - runs_through)}
    assert all(says for _, says in PRODUCES.values())


def test_parser_joins_continuations_and_skips_yaml():
    text = "x\n```\na --b \\\n    c   # note\n# only a comment\n```\n```yaml\nkey: 1\n```\n"
    assert readme_commands(text) == ["a --b c"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, smollm2_tokenizer_dir):
    """A scratch directory that README's relative paths work in, the tiny models and the fake judge."""
    root = tmp_path_factory.mktemp("readme")
    (root / "recipes").symlink_to(REPO / "recipes")
    tiny = make_tiny_llama(root / "tiny-llama", smollm2_tokenizer_dir)
    bin_dir = root / "bin"
    bin_dir.mkdir()
    # Wrappers, not symlinks: a symlinked venv interpreter would not find its venv.
    for tool, module in (("python", ""), ("align", "-m align.cli"),
                         ("accelerate", "-m accelerate.commands.accelerate_cli")):
        (bin_dir / tool).write_text(f'#!/bin/sh\nexec "{sys.executable}" {module} "$@"\n')
        (bin_dir / tool).chmod(0o755)
    spec = root / "tiny-spec.yaml"
    spec.write_text(TINY_SPEC)
    demo = yaml.safe_load((REPO / "recipes/demo/series.yaml").read_text())
    for entry in demo["models"]:
        if "path" in entry:
            entry["path"] = str(tiny)
    demo["judge"]["model"] = str(tiny)
    demo["answer"]["max_new_token"] = 4
    demo_series = root / "demo-series-tiny.yaml"
    demo_series.write_text(yaml.safe_dump(demo, sort_keys=False))
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(REPO),
               PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    # The study's series file reads its checkpoints from ALIGN_CKPT_*: model paths, here the tiny model.
    study = (REPO / "recipes/series/growth-vs-scratch.yaml").read_text()
    env.update({name: str(tiny) for name in re.findall(r"\$\{(ALIGN_CKPT_\w+)\}", study)})
    with FakeJudgeServer() as server:
        yield {"root": root, "env": env, "values": {"tiny": str(tiny), "spec": str(spec), "judge_url": server.base_url,
                                                     "demo_series": str(demo_series)}}


def written(root) -> set[str]:
    """Every file under the scratch directory (recipes/ is a link to the repository's: not followed)."""
    return {os.path.relpath(os.path.join(folder, name), root)
            for folder, _, names in os.walk(root) for name in names}


@pytest.mark.slow
@pytest.mark.parametrize("command", [
    pytest.param(c, id=f"{i:02d}-{'-'.join(c.split()[:3])}",
                 marks=() if c in STANDS_ALONE else pytest.mark.xdist_group("readme-commands"))
    for i, c in enumerate(RUNNABLE)])
def test_readme_command_runs(command, workspace):
    """In README's order (later commands use earlier outputs, so run the module whole): exit status 0, the
    files and the output line PRODUCES names (a command in STOPS_HERE: its status and message, nothing written)."""
    env = workspace["env"]
    runnable = substitute(command, workspace["values"])
    if runnable.startswith("export "):  # an environment line: later commands see it
        for assignment in shlex.split(runnable)[1:]:
            name, _, value = assignment.partition("=")
            env[name] = value
        return
    before = written(workspace["root"])
    proc = subprocess.run(["bash", "-c", runnable], cwd=workspace["root"], env=env, capture_output=True,
                          text=True, timeout=600)
    why = f"README: {command}\nran: {runnable}\nexit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    status, says, _ = STOPS_HERE.get(command, (0, "", ""))
    files, says = ([], says) if command in STOPS_HERE else PRODUCES[command]
    assert proc.returncode == status and says in proc.stdout + proc.stderr, why
    new = written(workspace["root"]) - before
    assert set(files) <= new if files else not new, \
        f"{command}\nmissing: {sorted(set(files) - new)}\nwrote: {sorted(new)[:20]}"
