"""Optional features and the pyproject.toml extra that installs each: a missing one is one line, not a traceback."""

from __future__ import annotations

import importlib.util

from align.plumbing.errors import UserError

# extra -> the modules it provides (pyproject.toml [project.optional-dependencies])
EXTRAS = {"deepspeed": ("deepspeed",), "serve": ("fastapi", "uvicorn"), "gguf": ("gguf",)}


def require_extra(extra: str, needed_for: str) -> None:
    """Raise a UserError naming what `needed_for` lacks and the extra to install, if any module is missing."""
    missing = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"{needed_for} needs {' and '.join(missing)}, which is not installed: install align's "
                        f"'{extra}' extra (pip install -e '.[{extra}]' in a clone; `make setup` does)")
