"""The series file's low-level value checks: placeholders, mapping keys, files, checkpoints, numbers.

Each raises a one-line UserError naming the series file and the key; spec.py and spec_blocks.py build on
them. Nothing heavy is imported here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from align.plumbing.errors import UserError
from align.plumbing.files import is_hub_id

PACKAGED_PREFIX = "packaged:"
PACKAGED_MODELS = ("smollm2-135m-instruct",)
ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")  # ${VAR} or ${VAR:-default}


def expand_placeholders(value: Any, where: str, file: Path, extra: dict[str, str]) -> Any:
    """${ENV} and {output_dir}-style placeholders in strings, recursively; unset env vars are errors."""
    if isinstance(value, dict):
        return {k: expand_placeholders(v, f"{where}.{k}" if where else str(k), file, extra) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_placeholders(v, f"{where}[{i}]", file, extra) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def env(match: re.Match) -> str:
        var, default = match.group(1), match.group(2)
        if os.environ.get(var) in (None, "") and default is not None:
            return default
        if var not in os.environ:
            raise UserError(f"{file}: {where}: environment variable {var} is not set "
                            f"(set it, or write the value into the series file)")
        return os.environ[var]

    value = ENV_VAR.sub(env, value)
    for key, sub in extra.items():
        value = value.replace("{" + key + "}", sub)
    return value


def check_keys(obj: Any, allowed: set[str], where: str, file: Path, required: tuple[str, ...] = ()) -> dict:
    if obj is None:
        obj = {}
    if not isinstance(obj, dict):
        raise UserError(f"{file}: {where}: expected a mapping, got {type(obj).__name__}")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise UserError(f"{file}: {where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
    for key in required:
        if obj.get(key) in (None, ""):
            raise UserError(f"{file}: {where}: missing required key {key!r}")
    return obj


def check_file(path: str, where: str, file: Path) -> str:
    if not Path(path).is_file():
        raise UserError(f"{file}: {where}: file {path!r} not found")
    return path


def check_checkpoint(ref: str, where: str, file: Path) -> None:
    """A base checkpoint must be a local dir with config.json, a hub id, or packaged:NAME."""
    if ref.startswith(PACKAGED_PREFIX):
        if ref[len(PACKAGED_PREFIX):] not in PACKAGED_MODELS:
            raise UserError(f"{file}: {where}: unknown packaged model {ref!r} "
                            f"(known: {', '.join(PACKAGED_PREFIX + m for m in PACKAGED_MODELS)})")
        return
    if "<" in ref or ">" in ref:
        raise UserError(f"{file}: {where}: placeholder {ref!r} not filled in: write the checkpoint's path "
                        f"or hub id")
    path = Path(ref)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"{file}: {where}: {ref} has no config.json (expected a checkpoint directory)")
        return
    if is_hub_id(ref):
        return
    raise UserError(f"{file}: {where}: checkpoint {ref!r} not found (expected a local checkpoint directory, "
                    f"a hub id owner/name, or another entry's name)")


def check_number(value: Any, where: str, file: Path, kind: type = float) -> Any:
    """None passes; otherwise a number (a whole one for kind=int), never a bool or YAML's text '3e-5'."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise UserError(f"{file}: {where}: expected a {'whole ' if kind is int else ''}number, got {value!r} "
                        f"(YAML reads 3e-5 as text: write 3.0e-5)")
    return value
