"""Shared fixtures: tiny random Llama checkpoints and small chat/preference files.

The tokenizer and chat template come from the packaged SmolLM2-135M-Instruct (no model hub);
exported once per machine to the align cache (~10 s) and reused.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from slurm_cluster import slurm_cluster  # noqa: F401  (the Slurm tests' two-node cluster)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir() -> Path:
    """SmolLM2's tokenizer (ChatML template, pad = eos = <|im_end|>) as an ordinary directory."""
    from align.packaged import export_smollm2

    return export_smollm2(tokenizer_only=True)


def make_tiny_llama(out_dir: Path, tokenizer_dir: Path, *, hidden: int = 32, layers: int = 2, heads: int = 4,
                    kv_heads: int = 2, ffn: int = 64, seed: int = 0, chat_template: bool = True) -> Path:
    """A random LlamaForCausalLM of a few hundred k parameters with a real tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    if not chat_template:  # look like a base checkpoint (GPT-2 style): no template, no pad
        tok.chat_template = None
        tok.pad_token = None
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=ffn,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         max_position_embeddings=1024, tie_word_embeddings=True,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, smollm2_tokenizer_dir) -> Path:
    """Tiny random chat model (SmolLM2 tokenizer and ChatML template). Read-only: copy to modify."""
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), smollm2_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_base_llama_dir(tmp_path_factory, smollm2_tokenizer_dir) -> Path:
    """Tiny random *base* model: its tokenizer has no chat template and no pad token."""
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-base-llama"), smollm2_tokenizer_dir, chat_template=False)


TOPICS = ["the ocean", "prime numbers", "bread", "trains", "the moon", "chess", "rain", "python lists"]


def chat_rows(n: int = 24) -> list[dict]:
    """UltraChat-shaped rows: prompt, prompt_id, messages (extra columns are ignored by loaders)."""
    rows = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        msgs = [{"role": "user", "content": f"Tell me one fact about {topic}."},
                {"role": "assistant", "content": f"Here is a fact about {topic}: it is interesting ({i})."}]
        if i % 3 == 0:
            msgs += [{"role": "user", "content": "And another?"},
                     {"role": "assistant", "content": f"Another fact: {topic} appears in many stories."}]
        rows.append({"prompt": msgs[0]["content"], "prompt_id": f"p{i}", "messages": msgs})
    return rows


def preference_rows(n: int = 16) -> list[dict]:
    """UltraFeedback-binarized-shaped rows: chosen/rejected full conversations sharing the prompt."""
    rows = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        prompt = [{"role": "user", "content": f"Explain {topic} briefly."}]
        rows.append({
            "prompt": prompt[0]["content"], "prompt_id": f"q{i}",
            "chosen": prompt + [{"role": "assistant", "content": f"{topic.capitalize()} is worth learning about."}],
            "rejected": prompt + [{"role": "assistant", "content": "No."}],
            "messages": prompt + [{"role": "assistant", "content": f"{topic.capitalize()} is worth learning about."}],
            "score_chosen": 8.0, "score_rejected": 2.0,
        })
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def chat_jsonl(tmp_path) -> Path:
    return write_jsonl(tmp_path / "chat.jsonl", chat_rows())


@pytest.fixture
def pref_jsonl(tmp_path) -> Path:
    return write_jsonl(tmp_path / "prefs.jsonl", preference_rows())


def run_cli(*args: str, cwd: Path = REPO, timeout: int = 600, env: dict | None = None):
    """Run `python -m ...` or the align CLI in a subprocess; returns CompletedProcess (text)."""
    import subprocess

    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def one_line_exit_2(argv: list[str], capsys) -> str:
    """Run `align ARGV` in-process, expecting a user error: exit 2 and one `error:` line, no traceback."""
    from align.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line, no traceback
    return err
