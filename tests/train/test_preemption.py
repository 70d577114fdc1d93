"""A signal during training (a scheduler's SIGUSR1 lead warning, or SIGTERM) saves a checkpoint at the end of
the step in flight and exits PREEMPTED_EXIT; the resumed run trains every remaining step once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import REPO
from test_train import sft_args

from align.train.preemption import PREEMPTED_EXIT

STEPS = 30


def sft_until_signal(argv: list[str], sig: int, after_logs: int) -> tuple[int, str]:
    """Run `python -m align.sft ...`, send `sig` once `after_logs` loss logs were printed; (status, output)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    lines, sent = [], False
    for line in proc.stdout:
        lines.append(line)
        if not sent and sum("'loss'" in seen for seen in lines) >= after_logs:
            proc.send_signal(sig)
            sent = True
    return proc.wait(timeout=300), "".join(lines)


@pytest.mark.slow
def test_signal_checkpoints_the_step_in_flight_and_resume_trains_each_step_once(tiny_llama_dir, chat_jsonl, tmp_path):
    """SIGUSR1 here; SIGTERM (the same handler) in the Slurm test, where the runner passes it on."""
    out = tmp_path / "out"
    argv = sft_args(tiny_llama_dir, chat_jsonl, out, "--logging_steps", "1")
    argv[argv.index("--max_steps") + 1] = str(STEPS)  # save_strategy "no": only the signal's checkpoint
    code, log = sft_until_signal(argv, signal.SIGUSR1, after_logs=3)
    assert code == PREEMPTED_EXIT, log[-3000:]
    checkpoints = [p.name for p in out.glob("checkpoint-*")]
    assert len(checkpoints) == 1 and not (out / "run_card.json").exists(), (checkpoints, log[-2000:])
    stopped = int(checkpoints[0].split("-")[1])
    assert 3 <= stopped < STEPS and f"stopped on a signal after step {stopped}" in log

    again = subprocess.run([sys.executable, *argv, "--resume_from_checkpoint", "true"], cwd=REPO, text=True,
                           capture_output=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert sorted(h["step"] for h in history if "loss" in h) == list(range(1, STEPS + 1))
    assert json.loads((out / "run_card.json").read_text())["resumed_from"].endswith(checkpoints[0])
