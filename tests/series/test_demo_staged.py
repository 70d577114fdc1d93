"""The staged demo end to end (`make demo-staged`): tiny scratch model -> cpt -> grow -> cpt -> SFT -> DPO ->
answers -> judge -> report, with a scratch twin trained on the chain's compute; all real, offline, CPU."""

from __future__ import annotations

import json
import time

import pytest
import yaml
from conftest import REPO, run_cli

from align.series import pretraining
from align.series.spec import load_series

DEMO = REPO / "recipes" / "demo" / "staged.yaml"


@pytest.mark.slow
def test_staged_demo_runs_and_the_twin_gets_the_chains_compute(tmp_path):
    spec = yaml.safe_load(DEMO.read_text())
    spec["output_dir"] = str(tmp_path / "out")
    series_file = tmp_path / "staged.yaml"
    series_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    started = time.time()
    result = run_cli("-m", "align.cli", "series", str(series_file), timeout=900)
    wall = time.time() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "out"
    assert (out / "report.html").is_file() and (out / "pretraining.png").is_file()
    assert 'id="pretraining-chart"' in (out / "report.html").read_text()
    table = (out / "table.csv").read_text()
    assert "tiny-staged-b" in table and "tiny-scratch-b" in table
    assert "tiny-staged-s" not in table  # post_train: false: pretrained only, not judged

    series = load_series(series_file)
    entry = series.entry
    planned_chain = sum(pretraining.cpt_flops(series, entry(n)) for n in ("tiny-staged-s", "tiny-staged-b"))
    # equal up to whole tokens (each budget is rounded to a token: 6 N of each is ~1e-4 of these tiny totals)
    assert planned_chain == pytest.approx(pretraining.cpt_flops(series, entry("tiny-scratch-b")), rel=1e-3)

    def trained(name: str) -> float:  # 6·N·D with the tokens each run really trained (whole steps)
        card = json.loads((out / name / "cpt" / "run_card.json").read_text())
        return 6 * pretraining.parameters(series, entry(name)) * card["tokens_trained"]

    chain = trained("tiny-staged-s") + trained("tiny-staged-b")
    assert chain == pytest.approx(trained("tiny-scratch-b"), rel=0.03)  # budgets round up to whole steps
    grow = json.loads((out / "tiny-staged-b" / "base" / "run_card.json").read_text())
    assert grow["source"] == str((out / "tiny-staged-s" / "cpt").resolve())  # grown from the pretrained model
    print(f"staged demo: {wall:.0f} s")
    assert wall < 360, f"the staged demo took {wall:.0f} s (goal: under 6 minutes on 2 cores)"
