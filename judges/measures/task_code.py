"""Task folders (`align eval --include-path`) read before lm-eval sees them: parse errors, and the Python
they would run.

lm-eval imports `helper.py` from a task's folder and runs it in this process for every
`!function helper.name` in the task's YAML (a `process_docs`, a metric, a whole task `class`). Two more
ways a task file runs Python: its Jinja templates render in an unsandboxed environment (`{{ cycler.
__init__.__globals__.os... }}` reaches the os module), and a metric lm-eval does not know is loaded with
HF `evaluate`, which runs that metric's script (from the hub, or a local path). A task folder looks like
data, so none of this runs unless the user allows it (`--allow-code`, a series' `eval.allow_code: true`):
helpers and unknown metrics are refused, templates that reach for `__` attributes are refused, and the
templates render in Jinja's sandbox for the run (`sandboxed_templates`).

The YAML files are parsed here with PyYAML's safe loader plus a constructor that records each
`!function` tag (file, line, reference) and imports nothing; lm-eval's own index is built later. A file
lm-eval cannot parse is reported with its file and line (lm-eval skips it silently and its tasks then
look unknown).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from align.plumbing.errors import UserError
from align.plumbing.files import file_sha256

IGNORED_DIRS = {"__pycache__", ".ipynb_checkpoints"}  # as lm-eval's own index walks a folder


@dataclass(frozen=True)
class FunctionRef:
    """One `!function` tag: where it is, what it names, and the file lm-eval would import for it."""

    yaml: Path
    line: int
    ref: str
    helper: Path | None  # `<yaml folder>/<module>.py` when it exists; else lm-eval imports the module by name

    def where(self) -> str:
        return f"{self.yaml}:{self.line}: !function {self.ref}"


@dataclass
class TaskFile:
    """A task YAML as lm-eval would read it (its `include:` files merged in), and what it would run."""

    path: Path
    config: dict
    files: list[Path] = field(default_factory=list)  # this file and every file it includes
    functions: list[FunctionRef] = field(default_factory=list)

    def names(self) -> set[str]:
        """The task, group and tag names this file defines."""
        tags = self.config.get("tag")
        found = {str(self.config[k]) for k in ("task", "group") if isinstance(self.config.get(k), str)}
        return found | {str(t) for t in (tags if isinstance(tags, list) else [tags] if tags else [])}

    def members(self) -> set[str]:
        """The task names a group file lists (a group runs them)."""
        listed = self.config.get("task") if "group" in self.config else None
        return {str(m) for m in (listed if isinstance(listed, list) else [listed] if listed else [])
                if isinstance(m, str)}


def helper_file(folder: Path, ref: str) -> Path | None:
    """The .py file lm-eval loads for `!function ref` in a YAML in `folder` (it looks there first)."""
    module = ref.rpartition(".")[0]
    path = (folder / f"{module.replace('.', '/')}.py").resolve() if module else None
    return path if path and path.is_file() else None


def _loader(path: Path, found: list[FunctionRef]) -> type[yaml.SafeLoader]:
    class Loader(yaml.SafeLoader):
        pass

    def function(loader: yaml.SafeLoader, node: yaml.Node) -> str:
        ref = str(loader.construct_scalar(node))  # type: ignore[arg-type]
        found.append(FunctionRef(path, node.start_mark.line + 1, ref, helper_file(path.parent, ref)))
        return f"!function {ref}"

    Loader.add_constructor("!function", function)
    return Loader


def _parse(path: Path, found: list[FunctionRef]) -> Any:
    try:
        with path.open("rb") as fh:
            return yaml.load(fh, Loader=_loader(path, found))  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{path}{line}: not valid YAML ({problem}); lm-eval would skip this task file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read this task file ({err.__class__.__name__})") from None


def read_task_file(path: Path, seen: tuple[Path, ...] = ()) -> TaskFile | None:
    """A task YAML with its includes merged (local keys win, as lm-eval merges them); None when the
    file is not a mapping (lm-eval ignores it too)."""
    path = path.expanduser().resolve()
    if path in seen:
        raise UserError(f"{path}: includes itself (through {seen[-1]})")
    functions: list[FunctionRef] = []
    config = _parse(path, functions)
    if not isinstance(config, dict):
        return None
    task = TaskFile(path, {}, [path], functions)
    includes = config.pop("include", None)
    for inc in includes if isinstance(includes, list) else [includes] if includes else []:
        inc_path = Path(str(inc)) if Path(str(inc)).is_absolute() else path.parent / str(inc)
        if not inc_path.is_file():
            raise UserError(f"{path}: include {inc}: file not found")
        included = read_task_file(inc_path, (*seen, path))
        if included is not None:
            included.config.pop("task_list", None)
            task.config.update(included.config)
            task.files += included.files
            task.functions += included.functions
    task.config.update(config)
    return task


def scan_folders(folders: list[str | os.PathLike]) -> list[TaskFile]:
    """Every task YAML under the folders (as lm-eval's index finds them), parsed without importing anything."""
    tasks = []
    for folder in folders:
        for path in sorted(Path(folder).glob("**/*.yaml"), key=lambda p: p.as_posix()):
            if not IGNORED_DIRS & set(path.parts) and path.is_file():
                task = read_task_file(path)
                if task is not None:
                    tasks.append(task)
    return tasks


def selected(tasks: list[TaskFile], names: list[str]) -> list[TaskFile]:
    """The files that define the requested names, and what their groups and tags pull in."""
    chosen: list[TaskFile] = []
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for task in tasks:
            if name in task.names() and task not in chosen:
                chosen.append(task)
                todo += sorted(task.members())
    return sorted(chosen, key=lambda t: t.path.as_posix())


def _strings(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(key path, string) for every string in a config."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{key}[{i}]")


def template_escapes(task: TaskFile) -> list[str]:
    """Template keys that reach for Python internals (`__class__`, `__globals__`, ...): how a Jinja
    template runs code; no data template needs them."""
    return [key for key, text in _strings(task.config) if ("{{" in text or "{%" in text) and "__" in text]


def unknown_metrics(task: TaskFile) -> list[str]:
    """Metrics lm-eval would load with HF `evaluate` (a script that runs): not in its registry, or asked for."""
    metrics = [m for m in task.config.get("metric_list") or [] if isinstance(m, dict)]
    if not metrics:
        return []
    import lm_eval.api.metrics  # noqa: F401 (fills the registry: lm-eval's own code, not the task folder's)
    from lm_eval.api.registry import metric_registry

    return [str(m.get("metric")) for m in metrics if isinstance(m.get("metric"), str)
            and (m.get("hf_evaluate") is True or m["metric"] not in metric_registry)]


def check_code(tasks: list[TaskFile], allow_code: bool, flag: str = "--allow-code") -> None:
    """Refuse whatever of the selected tasks would run Python, unless the user allowed it."""
    if allow_code:
        return
    how = f"task folders are data unless you allow their code: read it, then pass {flag}"
    functions = [f for task in tasks for f in task.functions]
    if functions:
        first = functions[0]
        what = f"imports {first.helper} and runs it" if first.helper else "imports a Python module and runs it"
        more = f" (and {len(functions) - 1} more)" if len(functions) > 1 else ""
        raise UserError(f"{first.where()}: this task {what} in the align process{more}; {how}")
    for task in tasks:
        escapes = template_escapes(task)
        if escapes:
            raise UserError(f"{task.path}: {escapes[0]}: a template that reaches Python internals (`__`) runs "
                            f"code; {how}")
        metrics = unknown_metrics(task)
        if metrics:
            raise UserError(f"{task.path}: metric {metrics[0]!r} is not one of lm-eval's: it would be loaded with "
                            f"HF evaluate, which runs the metric's Python; {how}")


@contextlib.contextmanager
def sandboxed_templates() -> Iterator[None]:
    """lm-eval's templates rendered in Jinja's sandbox for the block (no attribute that leads to code)."""
    import lm_eval.utils
    from jinja2.sandbox import SandboxedEnvironment

    plain = lm_eval.utils.env
    sandbox = SandboxedEnvironment(loader=plain.loader, undefined=plain.undefined,
                                   keep_trailing_newline=plain.keep_trailing_newline)
    sandbox.filters.update(plain.filters)
    lm_eval.utils.env = sandbox  # apply_template reads the module's `env` at each call
    try:
        yield
    finally:
        lm_eval.utils.env = plain


def provenance(tasks: list[TaskFile]) -> dict:
    """For the run card: each task file read (with sha256) and each Python helper it names."""
    files = sorted({f for task in tasks for f in task.files}, key=lambda p: p.as_posix())
    helpers: dict[str, dict] = {}
    for ref in sorted({f for task in tasks for f in task.functions}, key=lambda f: (str(f.yaml), f.line)):
        key = str(ref.helper) if ref.helper else ref.ref.rpartition(".")[0]
        entry = helpers.setdefault(key, {"path": str(ref.helper), "sha256": file_sha256(ref.helper)} if ref.helper
                                   else {"module": key})
        entry.setdefault("functions", []).append(ref.ref)
    return {"task_files": [{"path": str(f), "sha256": file_sha256(f)} for f in files],
            "python_helpers": list(helpers.values())}
