"""`align grow --out` / `align init --out` never overlap an input or replace a non-empty directory, and a
stage reset deletes only a previous run's output."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import align_status

from align.plumbing.errors import UserError
from align.plumbing.outputs import is_previous_run_output, remove_previous_output


def cli(*args: str) -> int | None:
    return align_status(list(args))


@pytest.fixture
def source(tiny_llama_dir, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_llama_dir, tmp_path / "models" / "src"))


def files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("verb", ["grow", "init"])
@pytest.mark.parametrize("where, message", [
    ("source", "is the input"), ("parent", "contains the input"), ("inside", "lies inside the input"),
    ("file", "is an existing file"),
])
def test_out_overlapping_the_source_or_a_file_is_refused(verb, where, message, source, tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"intermediate_size": 96}))
    (tmp_path / "a-file").write_text("x")
    out = {"source": source, "parent": source.parent, "inside": source / "grown", "file": tmp_path / "a-file"}[where]
    before = files(tmp_path)
    args = ["grow", "--from", str(source), "--to", str(spec)] if verb == "grow" else ["init", "--like", str(source)]
    assert cli(*args, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert message in err and "--out" in err and len(err.strip().splitlines()) == 1, err
    assert files(tmp_path) == before


def test_init_refuses_a_non_empty_out(source, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert cli("init", "--like", str(source), "--out", str(out)) == 2
    assert "not empty" in capsys.readouterr().err and (out / "notes.txt").read_text() == "mine"


def test_only_a_previous_run_output_is_deleted(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint-2").mkdir(parents=True)
    (run / "run_card.json").write_text("{}")
    (run / "model.safetensors").write_bytes(b"")
    assert is_previous_run_output(run)
    remove_previous_output(run)
    assert not run.exists()

    model = tmp_path / "model"  # a downloaded checkpoint: weights, no run card or trainer files
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    mixed = tmp_path / "mixed"  # a run's output someone added their own file to
    (mixed / "checkpoint-2").mkdir(parents=True)
    (mixed / "analysis.ipynb").write_text("{}")
    for path in (model, mixed, tmp_path):
        assert not is_previous_run_output(path)
        with pytest.raises(UserError, match="not a previous run's output"):
            remove_previous_output(path)
    assert (model / "config.json").exists() and (mixed / "analysis.ipynb").exists()
