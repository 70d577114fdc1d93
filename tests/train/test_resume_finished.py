"""A run whose final save failed (disk full) after its last checkpoint, resumed with
`--resume_from_checkpoint true`, redoes the final save and trains no step past max_steps (issue 26.7).

transformers resumes a checkpoint at global_step == max_steps into the middle of an epoch and takes
one more optimizer step before it checks max_steps; align stops it before any step."""

from __future__ import annotations

import errno
import json

import pytest
from conftest import chat_rows, write_jsonl
from test_train import sft_args

from align.train import stage


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_resumed_finished_run_saves_without_another_step(tiny_llama_dir, tmp_path, monkeypatch):
    from align.sft import main

    # 16 rows, batch 2: 8 steps an epoch, so step 3 of max_steps 3 ends mid-epoch
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(16))
    out = tmp_path / "run"
    argv = sft_args(tiny_llama_dir, data, out, "--save_strategy", "steps", "--save_steps", "3")[2:]
    argv[argv.index("--max_steps") + 1] = "3"

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(stage, "save_outputs", disk_full)
        with pytest.raises(OSError, match="No space left"):
            main(argv)
    last = out / "checkpoint-3"
    assert json.loads((last / "trainer_state.json").read_text())["global_step"] == 3
    assert not (out / "run_card.json").exists()

    assert main([*argv, "--resume_from_checkpoint", "true"]) == 0
    card = json.loads((out / "run_card.json").read_text())
    assert card["resumed_from"] == str(last) and card["global_step"] == 3
    assert not (out / "checkpoint-4").exists()
    final, saved = _weights(out), _weights(last)
    assert final.keys() == saved.keys() and all((final[k] == saved[k]).all() for k in final)
