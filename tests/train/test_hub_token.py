"""`--hub_token` never reaches a file a run writes: not training_args.bin (output_dir and every
checkpoint, which the Trainer pickles), not the run card, the logs or anything else."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli
from test_train import DPO_RECIPE, sft_args

TOKEN = "hf_NeverWriteMe0123456789abcdef"


def files_holding(folder: Path, secret: str) -> list[str]:
    return [str(p.relative_to(folder)) for p in sorted(folder.rglob("*")) if p.is_file()
            and secret.encode() in p.read_bytes()]


def test_hub_token_is_in_no_file_of_a_run(tiny_llama_dir, chat_jsonl, tmp_path, capfd, caplog):
    """In this process (no interpreter start): what it prints is what reaches this process's stdout and stderr
    (capfd: file descriptors, so child processes' too) and every log record, whatever handler would print it."""
    from align.sft import main

    out = tmp_path / "sft"
    assert main(sft_args(tiny_llama_dir, chat_jsonl, out, "--hub_token", TOKEN, "--save_strategy", "steps",
                         "--save_steps", "1")[2:]) == 0
    written = [p for p in out.rglob("*") if p.is_file()]
    assert (out / "training_args.bin").is_file() and (out / "checkpoint-2" / "training_args.bin").is_file()
    assert len(written) > 10
    assert files_holding(out, TOKEN) == []
    printed = capfd.readouterr()
    assert TOKEN not in printed.out + printed.err + caplog.text


@pytest.mark.slow  # the same code path as SFT's (stage.py), through DPOTrainer
def test_dpo_hub_token_is_in_no_file_of_a_run(tiny_llama_dir, pref_jsonl, tmp_path):
    out = tmp_path / "dpo"
    proc = run_cli("-m", "align.dpo", "--config", DPO_RECIPE, "--model_name_or_path", str(tiny_llama_dir),
                   "--dataset_name", str(pref_jsonl), "--output_dir", str(out), "--max_steps", "1",
                   "--max_length", "96", "--per_device_train_batch_size", "2", "--save_strategy", "steps",
                   "--save_steps", "1", "--hub_token", TOKEN, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "checkpoint-1" / "training_args.bin").is_file()
    assert files_holding(out, TOKEN) == []
