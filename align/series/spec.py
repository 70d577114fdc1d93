"""A series file: what to compare and how, validated before anything runs.

A series lists base checkpoints (a path, a hub id, grown from another entry, or a fresh random
init of another entry's shape), the SFT and DPO recipes, the launcher for training, the MT-Bench
answer settings and the judge. This module reads and checks it (the typed `answer:`, `judge:` and
`eval:` blocks in spec_blocks.py, the value checks both use in spec_values.py; every name the rest
of align reads from a series is imported from here); what each stage does with it is in stages.py.
Nothing heavy is imported here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from align.plumbing.errors import UserError
from align.plumbing.files import read_yaml_mapping
from align.plumbing.packaged import default_cache_dir, export_smollm2
from align.series.entry_names import check_name_fits
from align.series.spec_blocks import AnswerConfig, EvalConfig, JudgeConfig, answer_config, eval_config, judge_configs
from align.series.spec_values import (
    PACKAGED_PREFIX,
    check_checkpoint,
    check_file,
    check_keys,
    check_number,
    expand_placeholders,
)
from judges.questions import load_questions

LAUNCHERS = ("accelerate", "python", "slurm")
TOP_KEYS = {"name", "output_dir", "train", "prepare", "sft", "dpo", "answer", "judge", "report", "models", "eval",
            "cpt", "cluster"}  # cluster: `--submit slurm`'s resources per stage kind (align/series/cluster.py)
TRAIN_KEYS = {"accelerate_config", "launcher", "env"}
RECIPE_KEYS = {"recipe", "overrides", "tokens"}
REPORT_KEYS = {"extra_args"}
PREPARE_KEYS = {"name", "command", "outputs"}
MODEL_KEYS = {"name", "size", "construction", "path", "grow", "init", "cpt", "sft", "dpo", "answer", "post_train"}
GROW_KEYS = {"from", "spec", "method", "depth", "noise", "seed"}
INIT_KEYS = {"like", "seed", "shape"}
# cpt: continued pretraining between the base checkpoint and SFT (align/series/pretraining.py). The top-level
# block holds what every entry shares; an entry with its own `cpt:` block has the stage.
CPT_KEYS = {"recipe", "overrides", "params", "scale"}
ENTRY_CPT_KEYS = {"recipe", "overrides", "tokens"}
PARAM_CONVENTIONS = ("nominal", "non_embedding", "total")  # what N counts in 6·N·D and D = 40 N
TOKEN_RULES = ("chinchilla2x", "staged")
ENTRY_OVERRIDE_KEYS = {"overrides", "tokens"}


@dataclass
class Entry:
    name: str
    size: str
    construction: str
    path: str | None = None          # local dir, hub id or packaged:NAME (no base stage)
    grow: dict | None = None         # how to grow it from another entry / path
    init: dict | None = None         # fresh random init of another entry's / path's shape
    cpt: dict | None = None          # continued pretraining {recipe, tokens, overrides}; None: no cpt stage
    post_train: bool = True          # False: pretrained only (another entry's ancestor): no SFT, DPO, answers
    sft: dict = field(default_factory=dict)     # per-entry {overrides, tokens}
    dpo: dict = field(default_factory=dict)
    answer: dict = field(default_factory=dict)

    @property
    def source(self) -> str | None:
        """The entry or path this entry's base is built from (None when it is given)."""
        if self.grow:
            return str(self.grow["from"])
        if self.init:
            return str(self.init["like"])
        return None


@dataclass
class Series:
    file: Path
    name: str
    output_dir: Path
    train: dict
    prepare: list[dict]
    sft: dict
    dpo: dict
    answer: AnswerConfig
    judge: JudgeConfig
    report: dict
    models: list[Entry]
    eval: EvalConfig | None = None  # None: no `eval:` block, the judge-free stages are off
    cpt: dict = field(default_factory=dict)  # shared continued-pretraining settings (recipe, params, scale)
    # `judge:` a list: the judges after the first (each with its `name`); the first is `judge`, the reference
    more_judges: list[JudgeConfig] = field(default_factory=list)

    def entry(self, name: str) -> Entry:
        return next(e for e in self.models if e.name == name)

    def is_entry(self, ref: str | None) -> bool:
        return ref is not None and any(e.name == ref for e in self.models)

    @cached_property
    def question_turns(self) -> list[tuple[int, int]]:
        """(question_id, number of turns) of the questions the answer stage covers (read once)."""
        a = self.answer
        questions = load_questions(a.question_dir, a.question_begin, a.question_end)
        return [(q["question_id"], len(q["turns"])) for q in questions]

    @cached_property
    def question_set(self) -> dict[int, int]:
        """question_id -> turns of every question in the question file: what a judgment may be about
        (all of them: the report reads the whole file, and a narrowed range keeps older judgments)."""
        return {q["question_id"]: len(q["turns"]) for q in load_questions(self.answer.question_dir)}


# ----------------------------------------------------------------------------- loading

def _recipe_block(obj: Any, where: str, file: Path) -> dict:
    block = check_keys(obj, RECIPE_KEYS, where, file, required=("recipe",))
    check_file(block["recipe"], f"{where}.recipe", file)
    block.setdefault("overrides", {})
    check_keys(block["overrides"], set(block["overrides"] or {}), f"{where}.overrides", file)
    check_number(block.get("tokens"), f"{where}.tokens", file)
    return block


def load_series(path: str | os.PathLike) -> Series:
    """Read and validate a series file; every problem is a one-line UserError naming file and key."""
    file = Path(path)
    raw = check_keys(read_yaml_mapping(file, "series file"), TOP_KEYS, "top level", file,
                     required=("output_dir", "models", "sft", "dpo", "judge"))
    output_dir = expand_placeholders(str(raw["output_dir"]), "output_dir", file, {})
    raw = expand_placeholders(raw, "", file, {"output_dir": output_dir, "series_dir": str(file.parent)})
    judges = judge_configs(raw["judge"], file)
    series = Series(file=file, name=str(raw.get("name") or file.stem), output_dir=Path(output_dir),
                    train=_train_block(raw.get("train"), file), prepare=_prepare_steps(raw.get("prepare"), file),
                    sft=_recipe_block(raw["sft"], "sft", file), dpo=_recipe_block(raw["dpo"], "dpo", file),
                    answer=answer_config(raw.get("answer"), file), judge=judges[0],
                    report=check_keys(raw.get("report"), REPORT_KEYS, "report", file),
                    models=_entries(raw["models"], file), eval=eval_config(raw, file),
                    cpt=_cpt_block(raw.get("cpt"), file), more_judges=judges[1:])
    for i, entry in enumerate(series.models):
        if entry.cpt is not None and not (entry.cpt.get("recipe") or series.cpt.get("recipe")):
            raise UserError(f"{file}: models[{i}] ({entry.name}).cpt: missing required key 'recipe' "
                            f"(or give cpt.recipe at the top level)")
    ordered_entries(series)  # raises on grow cycles
    for i, entry in enumerate(series.models):
        check_name_fits(entry.name, f"models[{i}] ({entry.name}).name", series.output_dir, file)
    return series


def _train_block(obj: Any, file: Path) -> dict:
    train = check_keys(obj, TRAIN_KEYS, "train", file)
    train.setdefault("launcher", "accelerate")
    launcher = train["launcher"]
    if not (launcher in LAUNCHERS or (isinstance(launcher, list) and launcher
                                      and all(isinstance(a, str) for a in launcher))):
        raise UserError(f"{file}: train.launcher: expected one of {', '.join(LAUNCHERS)} or a command list, "
                        f"got {launcher!r}")
    if launcher != "python":
        if not train.get("accelerate_config"):
            raise UserError(f"{file}: train: missing required key 'accelerate_config' (or set launcher: python)")
        train["accelerate_config"] = _accelerate_config(train["accelerate_config"], file)
    check_keys(train.get("env") or {}, set(train.get("env") or {}), "train.env", file)
    return train


def _accelerate_config(value: Any, file: Path) -> str:
    """A path, or the name of a shipped config (`zero3`), as `align sft --accelerate_config` takes it."""
    from align.train.launch import accelerate_config_path

    if Path(str(value)).is_file():
        return value  # as written: a path stays what the series file says
    return str(accelerate_config_path(str(value), f"{file}: train.accelerate_config:"))


def _prepare_steps(prepare: Any, file: Path) -> list[dict]:
    prepare = prepare or []
    if not isinstance(prepare, list):
        raise UserError(f"{file}: prepare: expected a list of {{name, command, outputs}}")
    seen = set()
    for i, step in enumerate(prepare):
        check_keys(step, PREPARE_KEYS, f"prepare[{i}]", file, required=("name", "command", "outputs"))
        if not isinstance(step["command"], list) or not all(isinstance(a, (str, int, float)) for a in step["command"]):
            raise UserError(f"{file}: prepare[{i}].command: expected a list of arguments")
        if not isinstance(step["outputs"], list) or not step["outputs"]:
            raise UserError(f"{file}: prepare[{i}].outputs: expected a non-empty list of files it writes")
        if step["name"] in seen:
            raise UserError(f"{file}: prepare[{i}].name: duplicate name {step['name']!r}")
        seen.add(step["name"])
    return prepare


def _cpt_block(obj: Any, file: Path) -> dict:
    block = check_keys(obj, CPT_KEYS, "cpt", file)
    if block.get("recipe") is not None:
        check_file(block["recipe"], "cpt.recipe", file)
    check_keys(block.setdefault("overrides", {}) or {}, set(block["overrides"] or {}), "cpt.overrides", file)
    if block.setdefault("params", "non_embedding") not in PARAM_CONVENTIONS:
        raise UserError(f"{file}: cpt.params: expected one of {', '.join(PARAM_CONVENTIONS)}, got {block['params']!r}")
    scale = check_number(block.setdefault("scale", 1.0), "cpt.scale", file)
    if not scale > 0:
        raise UserError(f"{file}: cpt.scale: expected a number above 0 (the fraction of each rule's budget), "
                        f"got {scale!r}")
    return block


def _entry_cpt(obj: Any, where: str, file: Path) -> dict:
    block = check_keys(obj, ENTRY_CPT_KEYS, where, file)
    if block.get("recipe") is not None:
        check_file(block["recipe"], f"{where}.recipe", file)
    check_keys(block.setdefault("overrides", {}) or {}, set(block["overrides"] or {}), f"{where}.overrides", file)
    tokens = block.get("tokens")
    if tokens is not None and tokens not in TOKEN_RULES and (
            isinstance(tokens, bool) or not isinstance(tokens, (int, float)) or tokens < 1 or tokens != int(tokens)):
        raise UserError(f"{file}: {where}.tokens: expected a whole number of tokens or one of "
                        f"{', '.join(TOKEN_RULES)}, got {tokens!r} (YAML reads 4e10 as text: write 4.0e+10)")
    return block


def _entries(models: Any, file: Path) -> list[Entry]:
    if not isinstance(models, list) or not models:
        raise UserError(f"{file}: models: expected a non-empty list of entries")
    names = [m.get("name") if isinstance(m, dict) else None for m in models]
    return [_entry(m, i, names, file) for i, m in enumerate(models)]


def _entry(m: Any, i: int, names: list, file: Path) -> Entry:
    m = check_keys(m, MODEL_KEYS, f"models[{i}]", file, required=("name", "size", "construction"))
    name = str(m["name"])
    where = f"models[{i}] ({name})"
    if not re.match(r"^[A-Za-z0-9][\w.-]*$", name):
        raise UserError(f"{file}: {where}.name: use letters, digits, '.', '_' and '-' only")
    if names.count(m["name"]) > 1:
        raise UserError(f"{file}: {where}.name: duplicate name {name!r} (each entry needs its own)")
    given = [k for k in ("path", "grow", "init") if m.get(k) is not None]
    if len(given) != 1:
        raise UserError(f"{file}: {where}: give exactly one of path, grow, init (got {', '.join(given) or 'none'})")
    entry = Entry(name=name, size=str(m["size"]), construction=str(m["construction"]))
    if m.get("path") is not None:
        entry.path = str(m["path"])
        check_checkpoint(entry.path, f"{where}.path", file)
    elif m.get("grow") is not None:
        g = check_keys(m["grow"], GROW_KEYS, f"{where}.grow", file, required=("from", "spec", "method"))
        check_file(g["spec"], f"{where}.grow.spec", file)
        if g["method"] not in ("fpi", "aki"):
            raise UserError(f"{file}: {where}.grow.method: expected fpi or aki, got {g['method']!r}")
        if g.get("depth", "stack") not in ("stack", "interpolate", "zero"):
            raise UserError(f"{file}: {where}.grow.depth: expected stack, interpolate or zero")
        entry.grow = g
    else:
        entry.init = check_keys(m["init"], INIT_KEYS, f"{where}.init", file, required=("like",))
        check_number(entry.init.get("seed"), f"{where}.init.seed", file, int)
        if entry.init.get("shape") is not None:
            check_file(entry.init["shape"], f"{where}.init.shape", file)
    if m.get("cpt") is not None:
        entry.cpt = _entry_cpt(m["cpt"], f"{where}.cpt", file)
    src = entry.source
    if src is not None and str(src) not in names:
        check_checkpoint(str(src), f"{where}.{'grow.from' if entry.grow else 'init.like'}", file)
    for stage in ("sft", "dpo"):
        block = check_keys(m.get(stage), ENTRY_OVERRIDE_KEYS, f"{where}.{stage}", file)
        block.setdefault("overrides", {})
        check_keys(block["overrides"], set(block["overrides"] or {}), f"{where}.{stage}.overrides", file)
        setattr(entry, stage, block)
    entry.answer = check_keys(m.get("answer"), {"extra_args"}, f"{where}.answer", file)
    entry.post_train = m.get("post_train", True)
    if not isinstance(entry.post_train, bool):
        raise UserError(f"{file}: {where}.post_train: expected true or false, got {entry.post_train!r}")
    return entry


def ordered_entries(series: Series) -> list[Entry]:
    """Entries so that every entry comes after the entry it is grown/initialized from."""
    done: list[Entry] = []
    visiting: list[str] = []

    def visit(entry: Entry) -> None:
        if entry in done:
            return
        if entry.name in visiting:
            cycle = " -> ".join(visiting[visiting.index(entry.name):] + [entry.name])
            raise UserError(f"{series.file}: models: grow cycle {cycle}")
        visiting.append(entry.name)
        if series.is_entry(entry.source):
            visit(series.entry(entry.source))
        visiting.pop()
        done.append(entry)

    for entry in series.models:
        visit(entry)
    return done


def parse_models(series: Series, value: str | None) -> list[str]:
    names = [e.name for e in ordered_entries(series)]
    if not value:
        return names
    wanted = [w.strip() for w in value.split(",") if w.strip()]
    for w in wanted:
        if w not in names:
            raise UserError(f"--models: no entry {w!r} in {series.file} (entries: {', '.join(names)})")
    return [n for n in names if n in wanted]


# ----------------------------------------------------------------------------- references

def resolve_packaged(ref: str) -> str:
    """packaged:smollm2-135m-instruct -> the exported checkpoint dir (cached after the first call)."""
    if ref.startswith(PACKAGED_PREFIX):
        if not (default_cache_dir() / "smollm2-135m-instruct" / ".complete").exists():
            print(f"exporting {ref} to {default_cache_dir()} (once; about a minute)", flush=True)
        return str(export_smollm2())
    return ref
