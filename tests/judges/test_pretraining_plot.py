"""The report's pretraining plot (the study's Figure 2): loss against cumulative FLOPs, ancestors included,
from the trainer logs of each model's chain of continued-pretraining runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_jsonl

from align.cli import main
from align.plumbing.errors import UserError
from judges.reporting.pretraining_plot import load_curves, plot_pretraining


def cpt_run(folder: Path, losses: list[float], tokens_per_step: int, logged_tokens: bool = True) -> str:
    """A finished cpt output: trainer_state.json's log and a run card with the tokens trained."""
    folder.mkdir(parents=True)
    log = [{"step": s, "loss": loss, **({"num_input_tokens_seen": s * tokens_per_step} if logged_tokens else {})}
           for s, loss in enumerate(losses, start=1)]
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": len(losses), "log_history": log}))
    (folder / "run_card.json").write_text(json.dumps({"tokens_trained": len(losses) * tokens_per_step,
                                                      "cpt": {"tokens_per_step": tokens_per_step}}))
    return str(folder)


@pytest.fixture
def sources(tmp_path) -> Path:
    small = cpt_run(tmp_path / "small" / "cpt", [6.0, 5.0], 100)
    big = cpt_run(tmp_path / "big" / "cpt", [4.0, 3.5, 3.0], 200, logged_tokens=False)  # tokens from the steps
    twin = cpt_run(tmp_path / "twin" / "cpt", [6.5, 5.5, 4.5, 4.0], 200)
    path = tmp_path / "pretraining.json"
    path.write_text(json.dumps({"params": "non_embedding", "entries": {
        "small": {"size": "S", "construction": "staged", "chain": [{"entry": "small", "dir": small, "params": 10}]},
        "big": {"size": "B", "construction": "staged", "chain": [{"entry": "small", "dir": small, "params": 10},
                                                                 {"entry": "big", "dir": big, "params": 30}]},
        "twin": {"size": "B", "construction": "scratch", "chain": [{"entry": "twin", "dir": twin, "params": 30}]},
        "unstarted": {"size": "B", "construction": "scratch",
                      "chain": [{"entry": "u", "dir": str(tmp_path / "nothing"), "params": 30}]}}}))
    return path


def test_a_grown_model_starts_where_its_ancestors_stopped(sources):
    curves = load_curves(sources)
    assert set(curves) == {"small", "big", "twin"}  # a run without a log yet has no curve
    assert curves["small"]["points"] == [(6 * 10 * 100, 6.0), (6 * 10 * 200, 5.0)]
    spent = 6 * 10 * 200  # the small model's whole run
    assert curves["big"]["points"][:2] == curves["small"]["points"]
    assert curves["big"]["points"][2:] == [(spent + 6 * 30 * 200 * s, loss) for s, loss in ((1, 4.0), (2, 3.5),
                                                                                            (3, 3.0))]
    assert curves["twin"]["points"][-1] == (6 * 30 * 800, 4.0)


def test_the_plot_is_drawn_and_in_report_html(sources, tmp_path):
    png = plot_pretraining(load_curves(sources), tmp_path / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_pretraining({}, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    rows = [{"question_id": 81, "model": m, "judge": ["j", "single-v1"], "user_prompt": "p", "judgment": "[[5]]",
             "score": 5, "turn": t, "tstamp": 1} for m in ("big", "twin") for t in (1, 2)]
    series = tmp_path / "series.yaml"  # the report reads only `models:`; small is pretrained only
    series.write_text("models:\n- {name: small, size: S, construction: staged, post_train: false}\n"
                      "- {name: big, size: B, construction: staged}\n- {name: twin, size: B, construction: scratch}\n")
    out = tmp_path / "report"
    assert main(["mtbench", "report", "--input-file", str(write_jsonl(tmp_path / "j.jsonl", rows)),
                 "--out-dir", str(out), "--bootstrap", "100", "--pretraining", str(sources),
                 "--series", str(series)]) == 0
    assert (out / "pretraining.png").is_file()
    assert 'id="pretraining-chart"' in (out / "report.html").read_text()
    table = (out / "table.md").read_text()
    assert "big" in table and "twin" in table
    assert "small" not in table  # no row for a model with nothing to judge


def test_a_broken_sources_file_is_one_line(tmp_path):
    bad = tmp_path / "pretraining.json"
    bad.write_text('{"entries": {"x": {"chain": [{"dir": "d"}]}}}')
    with pytest.raises(UserError, match=r"entries.x.chain\[0\]: expected \{dir, params\}"):
        load_curves(bad)
    bad.write_text("{not json")
    with pytest.raises(UserError, match="pretraining sources cannot be read"):
        load_curves(bad)
