"""Checks on the checkpoints a measure reads, before anything loads."""

from __future__ import annotations

from pathlib import Path

from align.errors import UserError
from judges.measures.tasks import offline_flag

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
    if offline or path.count("/") != 1 or path.startswith((".", "/")):
        raise UserError(f"{flag} {path}: no such directory"
                        + (f" ({offline}=1: hub ids cannot load)" if offline else ""))
