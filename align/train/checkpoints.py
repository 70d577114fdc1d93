"""Which checkpoint-N a resume can use: the newest one a save finished writing.

transformers 5.23's `Trainer._save_checkpoint` writes, in this order: the weights (`save_model`:
model.safetensors or shards + index, or a LoRA adapter), optimizer.pt + scheduler.pt (+ scaler.pt,
DeepSpeed's global_stepN/ and `latest`), rng_state*.pth, and trainer_state.json last. A kill during
a save leaves a checkpoint without trainer_state.json, or with a file cut short. Resuming from it
fails in `_load_from_checkpoint` (or silently restarts the schedule), so it is skipped with a reason.
"""

from __future__ import annotations

import json
import logging
import re
import struct
import zipfile
from pathlib import Path

log = logging.getLogger("align")
CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json", "adapter_model.safetensors", "adapter_model.bin")
TORCH_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "training_args.bin")  # torch.save zip archives


def safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file is cut short (header length + header + the data it declares), or None."""
    size = path.stat().st_size
    if size < 8:
        return f"{path.name} is truncated ({size} bytes)"
    with open(path, "rb") as fh:
        (header_len,) = struct.unpack("<Q", fh.read(8))
        if 8 + header_len > size:
            return f"{path.name} is truncated (header runs past the end)"
        try:
            header = json.loads(fh.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return f"{path.name} has an unreadable header"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    return f"{path.name} is truncated ({size} of {8 + header_len + end} bytes)" if size < 8 + header_len + end else None


def _weights_problem(ckpt: Path) -> str | None:
    present = [name for name in WEIGHT_FILES if (ckpt / name).is_file()]
    fsdp = any(p.name.startswith("pytorch_model_fsdp") for p in ckpt.iterdir())
    latest = ckpt / "latest"  # DeepSpeed names its own state folder here
    if latest.is_file() and not (ckpt / latest.read_text(encoding="utf-8", errors="replace").strip()).is_dir():
        return "DeepSpeed's `latest` names a missing folder"
    if not present and not fsdp and not latest.is_file():
        return "no model weights"
    for name in present:
        path = ckpt / name
        if name.endswith(".index.json"):
            try:
                shards = set(json.loads(path.read_text(encoding="utf-8"))["weight_map"].values())
            except (json.JSONDecodeError, KeyError, UnicodeDecodeError):
                return f"{name} is unreadable"
            missing = sorted(s for s in shards if not (ckpt / s).is_file())
            if missing:
                return f"weight shard {missing[0]} is missing"
            problems = [safetensors_problem(ckpt / s) for s in sorted(shards) if s.endswith(".safetensors")]
            if any(problems):
                return next(p for p in problems if p)
        elif name.endswith(".safetensors"):
            problem = safetensors_problem(path)
            if problem:
                return problem
    return None


def checkpoint_problem(ckpt: str | Path) -> str | None:
    """Why `ckpt` cannot be resumed from (a save cut short), or None when it is complete."""
    ckpt = Path(ckpt)
    state = ckpt / STATE_FILE
    if not state.is_file():
        return f"no {STATE_FILE} (written last by a save: the save was cut short)"
    try:
        json.loads(state.read_text(encoding="utf-8"))["global_step"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        return f"{STATE_FILE} is cut short or unreadable"
    problem = _weights_problem(ckpt)
    if problem:
        return problem
    for name in TORCH_FILES:
        if (ckpt / name).is_file() and not zipfile.is_zipfile(ckpt / name):
            return f"{name} is cut short"
    return None


def newest_complete_checkpoint(output_dir: str | Path) -> tuple[str | None, list[tuple[str, str]]]:
    """(newest complete checkpoint-N or None, [(skipped newer checkpoint, why)] newest first)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None, []
    found = sorted(((int(m.group(1)), p) for p in output_dir.iterdir()
                    if p.is_dir() and (m := CHECKPOINT_DIR.match(p.name))), reverse=True)
    skipped = []
    for _, path in found:
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path), skipped
        skipped.append((str(path), problem))
    return None, skipped


class _AlreadyAtTheEnd(Exception):
    """Raised from the trainer's on_train_begin: the resumed checkpoint already ended the training."""


def train_without_overshoot(trainer, resume: str | None) -> None:
    """`trainer.train(resume_from_checkpoint=resume)`, except for a checkpoint that is already the end of
    training (a run whose final save failed, e.g. disk full, after its last checkpoint). transformers 5.23
    resumes it into the middle of its epoch (`_run_epoch` skips the trained batches) and takes one more
    optimizer step before it compares global_step with max_steps, so the run would end at max_steps + 1.
    Here training stops at on_train_begin, when the checkpoint's weights, optimizer and state are loaded and
    no step is taken: the caller's final save then writes the checkpoint's model."""
    from transformers import TrainerCallback

    class StopAtTheEnd(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if resume is not None and state.max_steps > 0 and state.global_step >= state.max_steps:
                raise _AlreadyAtTheEnd

    guard = StopAtTheEnd()
    trainer.add_callback(guard)
    try:
        trainer.train(resume_from_checkpoint=resume)
    except _AlreadyAtTheEnd:
        log.info("%s is already step %d of %d: no further step; only the final save is redone", resume,
                 trainer.state.global_step, trainer.state.max_steps)
    finally:
        trainer.remove_callback(guard)
