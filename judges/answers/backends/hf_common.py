"""What every `hf` engine shares: the prompt, the seed of a batch, the answer cut from generated tokens.

The engines (hf.py's padded path, hf_rows.py, hf_cb.py) import from here; nothing here imports them.
"""

from __future__ import annotations

import hashlib


def render(tok, messages: list[dict]) -> str:
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def batch_seed(seed: int, choice: int, turn: int, question_ids: list[int]) -> int:
    """A seed fixed by the batch's contents, so a re-run with the same batches samples the same text."""
    key = f"{seed}:{choice}:{turn}:{','.join(map(str, question_ids))}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little")


def answer_text(tok, row: list[int], stop_ids: list[int]) -> tuple[str, int]:
    """The answer in generated tokens `row` (cut at the first stop token), and where it was cut."""
    cut = next((i for i, t in enumerate(row) if t in stop_ids), len(row))
    return tok.decode(row[:cut], skip_special_tokens=True).strip(), cut
