"""A series file's `judge:` as one mapping or a list of them (several judges: an open judge beside GPT-4).

The first judge is the reference (the main table); each later one is judged too, gets its own table and
its agreement with the first (align/series/judge_stages.py). Every judge after the first has a `name`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from align.plumbing.errors import UserError

JUDGE_NAME = re.compile(r"^[A-Za-z0-9][\w.-]{0,63}$")  # a folder name under model_judgment/ and judges/


def judge_list(obj: Any, file: Path, one_judge: Callable[..., dict]) -> list[dict]:
    """Every judge of `judge:`, each checked by `one_judge(obj, file, where)` (spec's judge block)."""
    if not isinstance(obj, list):
        return [one_judge(obj, file)]
    if not obj:
        raise UserError(f"{file}: judge: expected a mapping or a non-empty list of mappings")
    judges = [one_judge(j, file, f"judge[{i}]") for i, j in enumerate(obj)]
    names = [str(j.get("name") or f"judge-{i + 1}") for i, j in enumerate(judges)]
    for i, name in enumerate(names):
        if not JUDGE_NAME.match(name):
            raise UserError(f"{file}: judge[{i}].name: expected letters, digits, '.', '_' or '-' "
                            f"(a folder name), got {name!r}")
        if names.index(name) != i:
            raise UserError(f"{file}: judge[{i}].name: {name!r} names two judges")
        judges[i]["name"] = name
    models = [str(j["model"]) for j in judges]
    if len(set(models)) < len(models):  # the report tells judges apart by the model named in each record
        raise UserError(f"{file}: judge: two judges of the list have the same model {max(models, key=models.count)!r}")
    if any(j.get("mode", "single") != judges[0].get("mode", "single") for j in judges):
        raise UserError(f"{file}: judge: every judge of the list needs the same mode (their agreement compares "
                        "like with like)")
    return judges
