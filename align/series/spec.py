"""A series file: what to compare and how, validated before anything runs.

A series lists base checkpoints (a path, a hub id, grown from another entry, or a fresh random
init of another entry's shape), the SFT and DPO recipes, the launcher for training, the MT-Bench
answer settings and the judge. This module reads and checks it, and builds the command line of
every stage (`stage_command`, the one place commands come from; tests swap it for stand-ins).
Nothing heavy is imported here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from align.errors import UserError

# Per-entry stages in order; `judge` runs once for all entries, `report` once at the end.
ENTRY_STAGES = ("base", "sft", "dpo", "answer", "judge")
ALL_STAGES = ("prepare",) + ENTRY_STAGES + ("report",)
STAGE_ALIASES = {"grow": "base", "init": "base"}
PACKAGED_PREFIX = "packaged:"
PACKAGED_MODELS = ("smollm2-135m-instruct",)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")  # ${VAR} or ${VAR:-default}

LAUNCHERS = ("accelerate", "python", "slurm")
TOP_KEYS = {"name", "output_dir", "train", "prepare", "sft", "dpo", "answer", "judge", "report", "models"}
TRAIN_KEYS = {"accelerate_config", "launcher", "env"}
RECIPE_KEYS = {"recipe", "overrides", "tokens"}
ANSWER_KEYS = {"backend", "question_begin", "question_end", "max_new_token", "batch_size", "question_dir",
               "extra_args"}
JUDGE_KEYS = {"model", "base_url", "parallel", "max_tokens", "prefill", "extra_args"}
REPORT_KEYS = {"extra_args"}
PREPARE_KEYS = {"name", "command", "outputs"}
MODEL_KEYS = {"name", "size", "construction", "path", "grow", "init", "sft", "dpo", "answer"}
GROW_KEYS = {"from", "spec", "method", "depth", "noise", "seed"}
INIT_KEYS = {"like", "seed"}
ENTRY_OVERRIDE_KEYS = {"overrides", "tokens"}


@dataclass
class Entry:
    name: str
    size: str
    construction: str
    path: str | None = None          # local dir, hub id or packaged:NAME (no base stage)
    grow: dict | None = None         # how to grow it from another entry / path
    init: dict | None = None         # fresh random init of another entry's / path's shape
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
    answer: dict
    judge: dict
    report: dict
    models: list[Entry]
    text: str  # the file's content (the report stage reads the models list from it)

    def entry(self, name: str) -> Entry:
        return next(e for e in self.models if e.name == name)

    def entry_dir(self, name: str) -> Path:
        return self.output_dir / name

    def is_entry(self, ref: str | None) -> bool:
        return ref is not None and any(e.name == ref for e in self.models)


# ----------------------------------------------------------------------------- loading

def _expand(value: Any, where: str, file: Path, extra: dict[str, str]) -> Any:
    """${ENV} and {output_dir}-style placeholders in strings, recursively; unset env vars are errors."""
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}" if where else str(k), file, extra) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{where}[{i}]", file, extra) for i, v in enumerate(value)]
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


def _check_keys(obj: Any, allowed: set[str], where: str, file: Path, required: tuple[str, ...] = ()) -> dict:
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


def _check_file(path: str, where: str, file: Path) -> str:
    if not Path(path).is_file():
        raise UserError(f"{file}: {where}: file {path!r} not found")
    return path


def is_hub_id(ref: str) -> bool:
    return bool(HUB_ID.match(ref)) and not Path(ref).exists()


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


def _number(value: Any, where: str, file: Path, kind: type = float) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise UserError(f"{file}: {where}: expected a {'whole ' if kind is int else ''}number, got {value!r} "
                        f"(YAML reads 3e-5 as text: write 3.0e-5)")
    return value


def _recipe_block(obj: Any, where: str, file: Path) -> dict:
    block = _check_keys(obj, RECIPE_KEYS, where, file, required=("recipe",))
    _check_file(block["recipe"], f"{where}.recipe", file)
    block.setdefault("overrides", {})
    _check_keys(block["overrides"], set(block["overrides"] or {}), f"{where}.overrides", file)
    _number(block.get("tokens"), f"{where}.tokens", file)
    return block


def load_series(path: str | os.PathLike) -> Series:
    """Read and validate a series file; every problem is a one-line UserError naming file and key."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise UserError(f"{file}: series file not found")
    text = file.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{file}{line}: not valid YAML ({getattr(err, 'problem', err)})") from None
    raw = _check_keys(raw, TOP_KEYS, "top level", file, required=("output_dir", "models", "sft", "dpo", "judge"))
    output_dir = _expand(str(raw["output_dir"]), "output_dir", file, {})
    raw = _expand(raw, "", file, {"output_dir": output_dir, "series_dir": str(file.parent)})

    train = _check_keys(raw.get("train"), TRAIN_KEYS, "train", file)
    train.setdefault("launcher", "accelerate")
    launcher = train["launcher"]
    if not (launcher in LAUNCHERS or (isinstance(launcher, list) and launcher
                                      and all(isinstance(a, str) for a in launcher))):
        raise UserError(f"{file}: train.launcher: expected one of {', '.join(LAUNCHERS)} or a command list, "
                        f"got {launcher!r}")
    if launcher != "python":
        if not train.get("accelerate_config"):
            raise UserError(f"{file}: train: missing required key 'accelerate_config' (or set launcher: python)")
        _check_file(train["accelerate_config"], "train.accelerate_config", file)
    _check_keys(train.get("env") or {}, set(train.get("env") or {}), "train.env", file)

    prepare = raw.get("prepare") or []
    if not isinstance(prepare, list):
        raise UserError(f"{file}: prepare: expected a list of {{name, command, outputs}}")
    seen_prep = set()
    for i, step in enumerate(prepare):
        _check_keys(step, PREPARE_KEYS, f"prepare[{i}]", file, required=("name", "command", "outputs"))
        if not isinstance(step["command"], list) or not all(isinstance(a, (str, int, float)) for a in step["command"]):
            raise UserError(f"{file}: prepare[{i}].command: expected a list of arguments")
        if not isinstance(step["outputs"], list) or not step["outputs"]:
            raise UserError(f"{file}: prepare[{i}].outputs: expected a non-empty list of files it writes")
        if step["name"] in seen_prep:
            raise UserError(f"{file}: prepare[{i}].name: duplicate name {step['name']!r}")
        seen_prep.add(step["name"])

    sft = _recipe_block(raw["sft"], "sft", file)
    dpo = _recipe_block(raw["dpo"], "dpo", file)
    answer = _check_keys(raw.get("answer"), ANSWER_KEYS, "answer", file)
    for key in ("question_begin", "question_end", "max_new_token", "batch_size"):
        _number(answer.get(key), f"answer.{key}", file, int)
    judge = _check_keys(raw["judge"], JUDGE_KEYS, "judge", file, required=("model",))
    for key in ("parallel", "max_tokens"):
        _number(judge.get(key), f"judge.{key}", file, int)
    judge_model = str(judge["model"])
    if judge_model.startswith(PACKAGED_PREFIX) or judge_model.startswith((".", "/", "~")):
        check_checkpoint(judge_model, "judge.model", file)
    report = _check_keys(raw.get("report"), REPORT_KEYS, "report", file)

    models_raw = raw["models"]
    if not isinstance(models_raw, list) or not models_raw:
        raise UserError(f"{file}: models: expected a non-empty list of entries")
    names = [m.get("name") if isinstance(m, dict) else None for m in models_raw]
    entries: list[Entry] = []
    for i, m in enumerate(models_raw):
        where = f"models[{i}]"
        m = _check_keys(m, MODEL_KEYS, where, file, required=("name", "size", "construction"))
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
            g = _check_keys(m["grow"], GROW_KEYS, f"{where}.grow", file, required=("from", "spec", "method"))
            _check_file(g["spec"], f"{where}.grow.spec", file)
            if g["method"] not in ("fpi", "aki"):
                raise UserError(f"{file}: {where}.grow.method: expected fpi or aki, got {g['method']!r}")
            if g.get("depth", "stack") not in ("stack", "interpolate", "zero"):
                raise UserError(f"{file}: {where}.grow.depth: expected stack, interpolate or zero")
            entry.grow = g
        else:
            entry.init = _check_keys(m["init"], INIT_KEYS, f"{where}.init", file, required=("like",))
            _number(entry.init.get("seed"), f"{where}.init.seed", file, int)
        src = entry.source
        if src is not None and str(src) not in names:
            check_checkpoint(str(src), f"{where}.{'grow.from' if entry.grow else 'init.like'}", file)
        for stage in ("sft", "dpo"):
            block = _check_keys(m.get(stage), ENTRY_OVERRIDE_KEYS, f"{where}.{stage}", file)
            block.setdefault("overrides", {})
            _check_keys(block["overrides"], set(block["overrides"] or {}), f"{where}.{stage}.overrides", file)
            setattr(entry, stage, block)
        entry.answer = _check_keys(m.get("answer"), {"extra_args"}, f"{where}.answer", file)
        entries.append(entry)

    series = Series(file=file, name=str(raw.get("name") or file.stem), output_dir=Path(output_dir), train=train,
                    prepare=prepare, sft=sft, dpo=dpo, answer=answer, judge=judge, report=report, models=entries,
                    text=text)
    ordered_entries(series)  # raises on grow cycles
    return series


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


def parse_only(value: str | None) -> set[str]:
    if not value:
        return set(ALL_STAGES)
    chosen = set()
    for word in value.split(","):
        word = STAGE_ALIASES.get(word.strip(), word.strip())
        if word not in ALL_STAGES:
            raise UserError(f"--only: unknown stage {word!r} (stages: {', '.join(ALL_STAGES)}; grow = base)")
        chosen.add(word)
    return chosen


def parse_models(series: Series, value: str | None) -> list[str]:
    names = [e.name for e in ordered_entries(series)]
    if not value:
        return names
    wanted = [w.strip() for w in value.split(",") if w.strip()]
    for w in wanted:
        if w not in names:
            raise UserError(f"--models: no entry {w!r} in {series.file} (entries: {', '.join(names)})")
    return [n for n in names if n in wanted]


# ----------------------------------------------------------------------------- paths and commands

def stage_output(series: Series, entry: str | None, stage: str) -> Path:
    """Where a stage writes: a directory (base, sft, dpo, report) or a file (answer, judge)."""
    out = series.output_dir
    return {
        "base": lambda: out / entry / "base",
        "sft": lambda: out / entry / "sft",
        "dpo": lambda: out / entry / "dpo",
        "answer": lambda: out / entry / "model_answer" / f"{entry}.jsonl",
        "judge": lambda: out / "model_judgment" / "judgments.jsonl",
        "report": lambda: out,
    }[stage]()


def resolve_packaged(ref: str) -> str:
    """packaged:smollm2-135m-instruct -> the exported checkpoint dir (cached after the first call)."""
    if ref.startswith(PACKAGED_PREFIX):
        from align.packaged import default_cache_dir, export_smollm2

        if not (default_cache_dir() / "smollm2-135m-instruct" / ".complete").exists():
            print(f"exporting {ref} to {default_cache_dir()} (once; about a minute)", flush=True)
        return str(export_smollm2())
    return ref


def base_checkpoint(series: Series, name: str, resolve: bool = True) -> str:
    """The base checkpoint an entry's SFT starts from (or its given path/hub id)."""
    entry = series.entry(name)
    if entry.path is not None:
        return resolve_packaged(entry.path) if resolve else entry.path
    return str(stage_output(series, name, "base"))


def source_checkpoint(series: Series, entry: Entry, resolve: bool = True) -> str:
    src = str(entry.source)
    return base_checkpoint(series, src, resolve) if series.is_entry(src) else (
        resolve_packaged(src) if resolve else src)


def _flag_args(mapping: dict) -> list[str]:
    """{key: value} -> ['--key', 'value'] in the recipe CLI's override syntax."""
    args: list[str] = []
    for key, value in mapping.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, dict)):
            value = json.dumps(value)
        args += [f"--{key}", str(value)]
    return args


def _question_dir(series: Series) -> list[str]:
    qdir = series.answer.get("question_dir")
    return ["--question-dir", str(qdir)] if qdir else []


@dataclass
class StageCommand:
    program: list[str]   # what runs (launcher); not part of the fingerprint
    args: list[str]      # the stage's own arguments; part of the fingerprint
    env: dict[str, str] = field(default_factory=dict)

    @property
    def argv(self) -> list[str]:
        return self.program + self.args


def _train_program(series: Series, module: str) -> list[str]:
    launcher = series.train["launcher"]
    if launcher == "python":
        return [sys.executable, "-m", module]
    if launcher == "accelerate":
        head = [sys.executable, "-m", "accelerate.commands.launch"]
    elif launcher == "slurm":
        head = slurm_launcher()
    else:
        head = list(launcher)
    return head + ["--config_file", series.train["accelerate_config"], "-m", module]


def slurm_launcher() -> list[str]:
    """`accelerate launch` once per node of the Slurm allocation, each with its node's rank.

    Run the series inside `sbatch --nodes=N` (see recipes/series/slurm.sbatch); the first node
    of the allocation is the rendezvous host; ALIGN_GPUS_PER_NODE (default 8) sets the world size.
    """
    per_node = (f'exec "{sys.executable}" -m accelerate.commands.launch --num_machines "$SLURM_NNODES" '
                '--machine_rank "$SLURM_NODEID" --num_processes "$((SLURM_NNODES * ${ALIGN_GPUS_PER_NODE:-8}))" '
                '--main_process_ip "$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)" '
                '--main_process_port "${ALIGN_MASTER_PORT:-29500}" "$@"')
    return ["srun", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
            "bash", "-c", per_node, "accelerate-per-node"]


def align_cli() -> list[str]:
    return [sys.executable, "-m", "align.cli"]


def stage_command(series: Series, entry: str | None, stage: str, *, resume: bool = False, resolve: bool = True,
                  answer_files: list[str] | None = None, judge_model: str | None = None,
                  prepare_step: dict | None = None) -> StageCommand:
    """The command line of one stage. The one place commands come from (tests replace it)."""
    if stage == "prepare":
        raw = [str(a) for a in prepare_step["command"]]
        head = {"python": [sys.executable], "align": align_cli()}.get(raw[0], raw[:1])
        return StageCommand(head, raw[1:])
    if stage == "report":
        return StageCommand(align_cli(), ["mtbench", "report", "--input-file", str(stage_output(series, None, "judge")),
                                          "--out-dir", str(series.output_dir), "--series", str(series.file),
                                          *_question_dir(series), *map(str, series.report.get("extra_args") or [])])
    if stage == "judge":
        judge_model = judge_model or str(series.judge["model"])
        args = ["mtbench", "judge", "--answer-file", *(answer_files or []), "--judge-model", judge_model,
                "--output-file", str(stage_output(series, None, "judge"))]
        for key, flag in (("base_url", "--base-url"), ("parallel", "--parallel"), ("max_tokens", "--max-tokens"),
                          ("prefill", "--judge-prefill")):
            if series.judge.get(key) is not None:
                args += [flag, str(series.judge[key])]
        return StageCommand(align_cli(), args + _question_dir(series) +
                            [str(a) for a in series.judge.get("extra_args") or []])

    e = series.entry(entry)
    out = str(stage_output(series, entry, stage))
    if stage == "base":
        src = source_checkpoint(series, e, resolve)
        if e.grow:
            g = e.grow
            args = ["grow", "--from", src, "--to", str(g["spec"]), "--method", str(g["method"]),
                    "--depth", str(g.get("depth", "stack")), "--out", out]
            if g.get("noise") is not None:
                args += ["--noise", str(g["noise"])]
            if g.get("seed") is not None:
                args += ["--seed", str(g["seed"])]
            return StageCommand(align_cli(), args)
        return StageCommand(align_cli(), ["init", "--like", src, "--seed", str(e.init.get("seed", 0)), "--out", out])
    if stage in ("sft", "dpo"):
        block = getattr(series, stage)
        model = base_checkpoint(series, entry, resolve) if stage == "sft" else str(stage_output(series, entry, "sft"))
        overrides = {**(block.get("overrides") or {}), **(getattr(e, stage).get("overrides") or {})}
        args = ["--config", str(block["recipe"]), "--model_name_or_path", model, "--output_dir", out,
                *_flag_args(overrides)]
        if resume:
            args += ["--resume_from_checkpoint", "true"]
        return StageCommand(_train_program(series, f"align.{stage}"), args,
                            {k: str(v) for k, v in (series.train.get("env") or {}).items()})
    if stage == "answer":
        a = series.answer
        args = ["mtbench", "answer", "--model-path", str(stage_output(series, entry, "dpo")), "--model-id", entry,
                "--answer-file", out]
        for key, flag in (("question_begin", "--question-begin"), ("question_end", "--question-end"),
                          ("max_new_token", "--max-new-token"), ("backend", "--backend"),
                          ("batch_size", "--batch-size"), ("question_dir", "--question-dir")):
            if a.get(key) is not None:
                args += [flag, str(a[key])]
        args += [str(x) for x in (a.get("extra_args") or []) + (e.answer.get("extra_args") or [])]
        return StageCommand(align_cli(), args)
    raise ValueError(f"unknown stage {stage}")


def expected_question_ids(series: Series) -> list[tuple[int, int]]:
    """(question_id, number of turns) for the questions the answer stage covers."""
    from judges.questions import load_questions

    a = series.answer
    questions = load_questions(a.get("question_dir"), a.get("question_begin"), a.get("question_end"))
    return [(q["question_id"], len(q["turns"])) for q in questions]


def file_digest(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def checkpoint_fingerprint(ref: str) -> str:
    """Identity of a given checkpoint without reading weights: config + file names, sizes, mtimes."""
    path = Path(ref)
    if not path.is_dir():
        return "hub:" + ref
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    if (path / "config.json").is_file():
        h.update((path / "config.json").read_bytes())
    return h.hexdigest()[:16]
