"""One training run per output_dir (issue 24.2): a second `align sft|dpo` into a directory another run is
writing is refused, exit 2, naming the other process, before anything in it is read or deleted."""

from __future__ import annotations

import os

from test_reliability import previous_run, tree
from test_train import in_process, sft_args

from align.plumbing.locks import output_lock


def test_second_run_into_a_busy_output_dir_is_refused(tiny_llama_dir, chat_jsonl, tmp_path, capsys):
    out = previous_run(tmp_path / "sft")  # what --overwrite_output_dir would delete
    before = tree(out)
    with output_lock(out, "output_dir"):  # the first run, still training
        code, err = in_process("align.sft", sft_args(tiny_llama_dir, chat_jsonl, out, "--overwrite_output_dir",
                                                     "true")[2:], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"output_dir {out} is in use by another align process (pid {os.getpid()} " in err
    assert tree(out) == before  # not deleted, not written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chat.jsonl", "sft"]  # and the lock is gone
