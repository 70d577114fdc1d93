"""What an install gets: every imported package declared, the lock equal to what is installed, and a
wheel that works away from the source tree (package data, not files of a clone)."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from conftest import REPO, chat_rows, write_jsonl

from align.plumbing.errors import UserError

# imported but deliberately not declared, and why
UNDECLARED = {
    "torch": "installed first, CPU or CUDA build of the user's choice (README Install)",
    "vllm": "the GPU-only answer backend, imported only when asked for, with a one-line error if absent",
}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def declared_requirements() -> list[str]:
    """pyproject.toml's dependencies and extras, as installed (`make setup` reinstalls when it changes)."""
    return metadata.requires("align") or []


def imported_top_level_modules() -> dict[str, str]:
    """top-level module -> one file of align/ or judges/ that imports it (absolute imports only)."""
    found: dict[str, str] = {}
    for path in sorted([*REPO.joinpath("align").rglob("*.py"), *REPO.joinpath("judges").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def test_every_imported_package_is_declared():
    providers = metadata.packages_distributions()
    declared = {_name(r) for r in declared_requirements()}
    missing = []
    for module, where in imported_top_level_modules().items():
        if module in sys.stdlib_module_names or module in ("align", "judges") or module in UNDECLARED:
            continue
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [module])}
        if not dists & declared:
            missing.append(f"{module} ({where}; distribution {', '.join(sorted(dists))})")
    assert not missing, "imported but not in pyproject.toml: " + "; ".join(missing)


def test_tools_are_a_development_extra_not_a_dependency():
    tools = {r for r in declared_requirements() if _name(r) in ("pytest", "ruff", "playwright")}
    assert len(tools) == 3 and all(r.endswith('extra == "dev"') for r in tools), tools


def hide_modules(monkeypatch, *names: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args, **kw: None if name in names else real(name, *args, **kw))


def test_a_missing_optional_extra_is_one_line_naming_it(monkeypatch, tmp_path):
    from align.plumbing.packaged import export_smollm2
    from align.train.launch import split_launch_args
    from judges.api.serve import local_server

    hide_modules(monkeypatch, "gguf", "deepspeed", "uvicorn")
    with pytest.raises(UserError, match=r"Q4_1.gguf needs gguf, which is not installed: install align's 'gguf' "
                                        r"extra \(pip install -e '.\[gguf\]' in a clone"):
        export_smollm2(tmp_path / "smollm2")
    assert not (tmp_path / "smollm2").exists()
    with pytest.raises(UserError, match=r"zero3.yaml needs deepspeed, which is not installed: .*'deepspeed' extra"):
        split_launch_args(["--accelerate_config", "zero3", "--config", "r.yaml"], set())
    assert split_launch_args(["--accelerate_config", "ddp"], set())[0][0] == "--config_file"  # needs no DeepSpeed
    with pytest.raises(UserError, match=r"transformers serve` needs uvicorn, which is not installed: .*'serve' extra"):
        with local_server(str(tmp_path)):
            pass


def locked_versions() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text(encoding="utf-8").splitlines():
        match = re.match(r"([A-Za-z0-9._-]+)==([^\s#]+)", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def test_lock_is_what_is_installed():
    # `make setup` installs with the lock as constraints; a package upgraded since is re-tested, then `make lock`
    pins = locked_versions()
    unlocked = {_name(r) for r in declared_requirements()} - set(pins)
    assert not unlocked, f"declared in pyproject.toml but not in requirements.lock: {unlocked}; run `make lock`"
    assert "torch" not in pins and not [p for p in pins if p.startswith("nvidia-")]  # no CUDA build pulled in
    differ = {name: (version, metadata.version(name)) for name, version in pins.items()
              if metadata.version(name) != version}
    assert not differ, f"installed differs from requirements.lock (locked, installed): {differ}; run `make lock`"


def _site_packages(python: Path) -> Path:
    return Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())


@pytest.fixture(scope="module")
def installed_wheel_venv(tmp_path_factory) -> Path:
    """A fresh venv holding align only as a built wheel; its dependencies come from this environment.

    The venv lies inside another project's git checkout, as a user's .venv would."""
    root = tmp_path_factory.mktemp("install")
    src = root / "src"  # only what the wheel is built from: no recipes/, no tests/
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for package in ("align", "judges"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(root / "dist"), str(src)], check=True, capture_output=True, text=True, timeout=300)
    wheel = next((root / "dist").glob("align-*.whl"))
    project = root / "other-project"
    project.mkdir()
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git + ["commit", "-q", "--allow-empty", "-m", "other"], check=True)
    venv = project / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, text=True, timeout=300)
    # this environment's packages after the venv's own (a plain path: its .pth files, the editable align, unread)
    (_site_packages(python) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def run_installed(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PATH=f"{venv / 'bin'}:{env.get('PATH', '')}")
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_wheel_ships_the_accelerate_configs_and_runs_outside_the_checkout(installed_wheel_venv, tiny_llama_dir,
                                                                          tmp_path):
    venv = installed_wheel_venv
    wheel = next(venv.parents[1].joinpath("dist").glob("align-*.whl"))
    shipped = {Path(n).stem for n in zipfile.ZipFile(wheel).namelist() if n.startswith("align/data/accelerate/")}
    assert shipped == {p.stem for p in (REPO / "recipes" / "accelerate").glob("*.yaml")}
    where = run_installed(venv, "python", "-c", "import align; print(align.__file__)", cwd=tmp_path)
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr  # the wheel, not the checkout
    recipe = tmp_path / "sft.yaml"
    recipe.write_text((REPO / "recipes" / "sft" / "cpu-demo.yaml").read_text(encoding="utf-8"))
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(8))
    proc = run_installed(venv, "align", "sft", "--accelerate_config", "zero3", "--dry_run", "true",
                         "--config", str(recipe), "--model_name_or_path", str(tiny_llama_dir),
                         "--dataset_name", str(data), "--output_dir", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wrong = run_installed(venv, "align", "sft", "--accelerate_config", "zero9", "--config", str(recipe),
                          cwd=tmp_path)
    assert wrong.returncode == 2 and "neither a file nor one of ddp, fsdp, single, zero2, zero3" in wrong.stderr
    # run cards name align's own revision, never that of the project the venv happens to sit in
    rev = run_installed(venv, "python", "-c", "from align.plumbing.runcard import git_revision; print(git_revision())",
                        cwd=venv.parent)
    assert rev.stdout.strip() == "None", rev.stdout + rev.stderr
