"""Checks on the checkpoints and devices a measure uses, before anything loads."""

from __future__ import annotations

import argparse
from pathlib import Path

from align.plumbing.errors import UserError
from align.plumbing.files import is_hub_id, offline_flag

WEIGHTS = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "pytorch_model*.bin.index.json")


def check_model_path(path: str, flag: str = "--model-path") -> None:
    """A local checkpoint directory (config.json and weights), or, online only, a hub id (org/name)."""
    local = Path(path).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise UserError(f"{flag} {path}: no config.json (not a transformers checkpoint)")
        if not any(next(local.glob(pattern), None) for pattern in WEIGHTS):
            raise UserError(f"{flag} {path}: no weights (*.safetensors, pytorch_model*.bin) beside config.json")
        return
    if local.exists():
        raise UserError(f"{flag} {path}: is a file, expected a checkpoint directory")
    offline = offline_flag()
    if offline or not is_hub_id(path):
        raise UserError(f"{flag} {path}: no such directory"
                        + (f" ({offline}=1: hub ids cannot load)" if offline else ""))


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0].rstrip(": ") if text else type(err).__name__


def load_tokenizer(path: str, flag: str = "--model-path"):
    """The checkpoint's own tokenizer; a checkpoint saved without one is a one-line UserError (lm-eval and
    `align heldout` would fail with a traceback, lm-eval only after it has started)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as err:  # transformers raises OSError, ValueError, TypeError... for a missing tokenizer
        raise UserError(f"{flag} {path}: cannot load its tokenizer ({_first_line(err)}); save the tokenizer "
                        "beside config.json (tokenizer.json, tokenizer_config.json)") from None


def device(text: str) -> str:
    """An argparse type: a device torch knows (cpu, cuda, cuda:N, mps, ...) and this machine has."""
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"{text!r}: not a device torch knows (cpu, cuda, cuda:N, mps, ...)") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (dev.index or 0) >= count:
            have = f"{count} CUDA device(s)" if count else "no CUDA device"
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {have} (torch {torch.__version__})")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: MPS is not available on this machine")
    return text
