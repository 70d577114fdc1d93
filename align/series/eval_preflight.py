"""The judge-free stages' inputs, checked before anything trains (`align series` and its `--dry-run`).

What `align eval` and `align heldout` check before loading a model, run up front for the series' `eval:`
block, so a misspelt task or a missing held-out file stops the series in seconds, not after SFT and DPO:
every task named (lm-eval's index, with the block's include paths), the held-out text, and the held-out
SFT / DPO data files (they exist and their rows parse). A file that a prepare step of the series makes is
checked once that step has run (`prepared=True`); a hub dataset is only refused while offline (checking
it online would download it).
"""

from __future__ import annotations

from pathlib import Path

from align.plumbing.errors import UserError
from align.plumbing.files import is_hub_id
from align.series.spec import EvalConfig, Series

EVAL_STAGES = ("base_eval", "heldout_sft", "heldout_dpo")


def produced_files(series: Series) -> frozenset[str]:
    """Every file a prepare step of the series writes."""
    return frozenset(str(Path(out)) for step in series.prepare for out in step["outputs"])


def eval_problems(series: Series, only: set[str], *, prepared: bool = False) -> list[str]:
    """One line per problem of the selected eval stages. prepared=False: the task names and the files no
    prepare step makes; prepared=True: the files the prepare steps made."""
    e = series.eval
    if e is None:
        return []
    made = produced_files(series)
    problems: list[str] = []

    def attempt(what: str, run) -> None:
        try:
            run()
        except UserError as err:
            problems.append(f"{series.file}: eval.{what}: {err}")

    def this_pass(path) -> bool:
        return path is not None and (str(Path(str(path))) in made) == prepared

    if "base_eval" in only:
        if not prepared:
            attempt("tasks", lambda: _check_tasks(e))
        if this_pass(e.heldout_text):
            attempt("heldout_text", lambda: _check_text(Path(str(e.heldout_text))))
    for kind in ("sft", "dpo"):
        data = str(getattr(e, f"{kind}_data"))
        if f"heldout_{kind}" in only and this_pass(data):
            attempt(f"{kind}_data", lambda data=data, kind=kind: _check_rows(e, data, kind))
    return problems


def _check_tasks(e: EvalConfig) -> None:
    """`align eval`'s checks before its model loads: the task files, their code, every task name in lm-eval's
    index (the include paths' own first: most series name only their own tasks, and lm-eval's whole index
    takes seconds to build)."""
    from lm_eval.tasks import TaskManager

    from judges.measures.task_code import check_code, scan_folders, selected
    from judges.measures.tasks import TABLE1_TASKS, check_tasks

    names = [str(t) for t in e.tasks or TABLE1_TASKS]
    include = [str(p) for p in e.include_path or []]
    # as `align eval` does first: task YAMLs parse, and their Python helpers run only where allowed
    check_code(selected(scan_folders(include), names), e.allow_code, flag="eval.allow_code: true")
    if include:
        own = TaskManager(include_path=include, include_defaults=False).task_index
        if all(n in own and own[n].kind.name in ("TASK", "PY_TASK") for n in names):
            check_tasks(own, names)
            return
    check_tasks(TaskManager(include_path=include or None).task_index, names)


def _check_text(path: Path) -> None:
    from judges.measures.tasks import check_text_rows

    check_text_rows(path)


def _check_rows(e: EvalConfig, data: str, kind: str) -> None:
    """The rows `align heldout` would read: a local file must exist and give usable rows; a hub id is
    refused only while offline."""
    from align.plumbing.files import offline_flag
    from judges.measures.rows import LOCAL_FORMATS, load_heldout, read_head

    path = Path(data)
    if not path.is_file():
        if path.suffix in LOCAL_FORMATS:
            raise UserError(f"{data}: file not found")
        if offline_flag() or not is_hub_id(data):
            read_head(data, "", 1)  # refuses what is neither a file nor a hub id, and a hub id offline
        return
    split = getattr(e, f"{kind}_split") or ""
    load_heldout(data, split, int(e.heldout_rows), kind)
