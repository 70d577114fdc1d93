"""`align series --dry-run` checks what a run would stop on, before anything trains (issue 29.9): files an
earlier stage of the same run would make (a prepare step's questions) are to-be-made, not missing."""

from __future__ import annotations

import pytest
from conftest import REPO

from align.series.runner import Runner
from align.series.spec import load_series
from align.series.stages import selected_stages


def demo_copy(tmp_path, name: str):
    """A shipped demo series file with its outputs in tmp_path (a fresh checkout: nothing prepared yet)."""
    text = (REPO / "recipes" / "demo" / name).read_text(encoding="utf-8")
    lines = [f"output_dir: {tmp_path / 'out'}" if ln.startswith("output_dir:") else ln for ln in text.splitlines()]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["series.yaml", "staged.yaml"])
def test_dry_run_plans_a_fresh_demo_whose_questions_a_prepare_step_makes(tmp_path, monkeypatch, name):
    monkeypatch.chdir(REPO)  # the demo's recipe paths are relative to the checkout
    series = load_series(demo_copy(tmp_path, name))
    runner = Runner(series, selected_stages(None), [e.name for e in series.models], dry=True)
    assert runner.run() == 0  # was: "out/mt_bench: no question.jsonl" (the questions step had not run)
    assert runner.status[("_series", "report")] == "pending"
    assert not (tmp_path / "out").exists()
