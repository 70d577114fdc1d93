"""lm-eval tasks for `align eval`: the study's Table 1, checks before any model loads, the held-out text task.

Task configs are read from lm-eval's own index (`TaskManager.task_index`: its built-in tasks plus
--include-path folders). A task whose `dataset_path` is a datasets builder for local files (json,
csv, text, parquet, arrow) or an existing local path runs offline; any other is a hub dataset, and
with HF_DATASETS_OFFLINE / HF_HUB_OFFLINE set it is refused before the model loads.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from align.plumbing.errors import UserError
from align.plumbing.files import numbered_json_lines, offline_flag

# The study's Table 1 (lm-eval names); wikitext gives word_perplexity, the rest acc / acc_norm.
TABLE1_TASKS = ("lambada_openai", "arc_easy", "arc_challenge", "winogrande", "piqa", "openbookqa", "hellaswag",
                "wikitext")
HELDOUT_TASK = "heldout_text"  # perplexity on the user's held-out text (FineWeb-Edu's validation sample)
LOCAL_BUILDERS = {"json", "csv", "text", "parquet", "arrow", "pandas"}
OUTPUT_TYPES = ("loglikelihood", "multiple_choice", "loglikelihood_rolling", "generate_until")  # lm-eval's
def leaf_tasks(index: dict, names: list[str]) -> dict[str, dict]:
    """Task name -> its config, for `names` with groups and tags expanded; unknown names are one error."""
    unknown = [n for n in names if n not in index]
    if unknown:
        raise UserError(f"--tasks: unknown lm-eval task(s) {', '.join(unknown)} (not among lm-eval's tasks "
                        "nor in --include-path)")
    found: dict[str, dict] = {}
    for name in names:
        _expand(index, name, found, seen=set())
    return found


def _expand(index: dict, name: str, found: dict[str, dict], seen: set[str]) -> None:
    if name in seen:  # a group that lists itself
        return
    seen.add(name)
    entry = index[name]
    kind = entry.kind.name
    if kind in ("TASK", "PY_TASK"):
        found[name] = entry.cfg or {}
    elif kind == "TAG":
        for member in sorted(entry.tags):
            _expand(index, member, found, seen)
    elif kind == "GROUP":
        members = (entry.cfg or {}).get("task") or []
        for member in members if isinstance(members, list) else [members]:
            if isinstance(member, str) and member in index:
                _expand(index, member, found, seen)
            elif isinstance(member, dict) and "task" in member:  # an inline task of the group
                found[str(member["task"])] = member
    else:
        found[name] = entry.cfg or {}


def hub_dataset(cfg: dict) -> str | None:
    """The hub dataset a task config reads, or None when its data is local."""
    path = cfg.get("dataset_path")
    if path is None:  # a Python task that loads data itself: assume the hub
        return str(cfg.get("class", "its own loader"))
    path = str(path)
    if path in LOCAL_BUILDERS or Path(path).expanduser().exists():
        return None
    return path


def missing_data_files(cfg: dict) -> list[str]:
    """Local data files a task names (`dataset_kwargs.data_files`) that do not exist."""
    files = ((cfg.get("dataset_kwargs") or {}).get("data_files")) if str(cfg.get("dataset_path")) in \
        LOCAL_BUILDERS else None
    if files is None:
        return []
    values = files.values() if isinstance(files, dict) else [files]
    flat = [f for v in values for f in (v if isinstance(v, list) else [v])]
    return [str(f) for f in flat if "*" not in str(f) and not Path(str(f)).expanduser().exists()]


def config_problem(cfg: dict) -> str | None:
    """What in a YAML task config lm-eval would stop on after the model loaded (a Python task, with
    `class`, defines these itself)."""
    if "class" in cfg:
        return None
    output_type = cfg.get("output_type", "generate_until")  # lm-eval's TaskConfig default
    if output_type not in OUTPUT_TYPES:
        return f"output_type {output_type!r} is not one of lm-eval's ({', '.join(OUTPUT_TYPES)})"
    if output_type == "multiple_choice" and cfg.get("doc_to_choice") is None and cfg.get("use_prompt") is None:
        return "output_type multiple_choice needs doc_to_choice (the list of answer choices)"
    return None


def check_tasks(index: dict, names: list[str]) -> dict[str, dict]:
    """Everything that would stop lm-eval after the model loaded, checked first: unknown names, hub
    datasets while offline, local data files that are not there, a bad output_type or a multiple-choice
    task without choices. Returns the leaf tasks' configs."""
    tasks = leaf_tasks(index, names)
    flag = offline_flag()
    if flag:
        hub = [f"{name} ({hub_dataset(cfg)})" for name, cfg in tasks.items() if hub_dataset(cfg)]
        if hub:
            raise UserError(f"{flag}=1 but task(s) need the hub: {', '.join(hub)}; run online, or give local "
                            "task YAMLs with --include-path and --tasks")
    for name, cfg in tasks.items():
        problem = config_problem(cfg)
        if problem:
            where = getattr(index.get(name), "yaml_path", None)
            raise UserError(f"task {name}{f' ({where})' if where else ''}: {problem}")
        missing = missing_data_files(cfg)
        if missing:
            raise UserError(f"task {name}: data file(s) not found: {', '.join(missing)}")
    return tasks


def check_text_rows(path: Path) -> int:
    """A held-out text file: .jsonl rows with a non-empty string `text`; returns the row count."""
    if not path.is_file():
        raise UserError(f"--heldout-text {path}: file not found (a .jsonl file of {{\"text\": ...}} rows)")
    count = 0
    for lineno, row in numbered_json_lines(path, torn_tail=False):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
            raise UserError(f"{path}:{lineno}: expected an object with a non-empty string \"text\"")
        count += 1
    if not count:
        raise UserError(f"--heldout-text {path}: no rows")
    return count


def write_heldout_task(text_file: Path, folder: Path) -> Path:
    """A loglikelihood_rolling task over `text_file` (lm-eval's own perplexity metrics), as a YAML in `folder`."""
    config = {
        "task": HELDOUT_TASK,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(text_file.resolve())}},
        "test_split": "test",
        "output_type": "loglikelihood_rolling",
        "doc_to_text": "",
        "doc_to_target": "{{text}}",
        "metric_list": [{"metric": m} for m in ("word_perplexity", "byte_perplexity", "bits_per_byte")],
        "metadata": {"version": 1.0},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{HELDOUT_TASK}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
