"""The series runner with every stage real (no stand-ins): grow, SFT, DPO, answers, a local judge
behind `transformers serve`, the report — on tiny random models, one question."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, chat_rows, preference_rows, run_cli, write_jsonl


@pytest.mark.slow
def test_every_stage_for_real(tiny_llama_dir, tmp_path):
    import yaml

    chat = write_jsonl(tmp_path / "chat.jsonl", chat_rows(8))
    prefs = write_jsonl(tmp_path / "prefs.jsonl", preference_rows(4))
    (tmp_path / "wider.yaml").write_text("hidden_size: 48\nintermediate_size: 96\nnum_hidden_layers: 3\n"
                                         "num_attention_heads: 6\n")
    train = {"max_steps": 1, "per_device_train_batch_size": 2, "max_length": 64, "report_to": "none"}
    series = {
        "name": "real",
        "output_dir": str(tmp_path / "out"),
        "train": {"launcher": "python", "env": {"CUDA_VISIBLE_DEVICES": ""}},
        "prepare": [{"name": "questions", "command": ["align", "mtbench", "subset", "--per-category", "1",
                                                      "--categories", "writing,roleplay", "--out",
                                                      "{output_dir}/mt_bench"],
                     "outputs": ["{output_dir}/mt_bench/question.jsonl"]}],
        "sft": {"recipe": str(REPO / "recipes/sft/cpu-demo.yaml"), "overrides": {**train, "dataset_name": str(chat)}},
        "dpo": {"recipe": str(REPO / "recipes/dpo/cpu-demo.yaml"), "overrides": {**train, "dataset_name": str(prefs)}},
        "answer": {"backend": "hf", "question_dir": "{output_dir}/mt_bench", "max_new_token": 4},
        "judge": {"model": str(tiny_llama_dir), "max_tokens": 4, "prefill": "Rating: [[", "mode": "pairwise",
                  "pair_prefill": "[["},
        "models": [
            {"name": "tiny", "size": "S", "construction": "scratch", "path": str(tiny_llama_dir)},
            {"name": "tiny-grown", "size": "S", "construction": "expanded",
             "grow": {"from": "tiny", "spec": str(tmp_path / "wider.yaml"), "method": "fpi", "depth": "zero"}},
        ],
    }
    path = tmp_path / "series.yaml"
    path.write_text(yaml.safe_dump(series, sort_keys=False))

    proc = run_cli("-m", "align.cli", "series", str(path), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "out"
    entries = json.loads((out / "manifest.json").read_text())["entries"]
    assert {(name, stage) for name, stages in entries.items() for stage, st in stages.items()
            if st["state"] == "done"} >= {("tiny", "sft"), ("tiny", "dpo"), ("tiny", "answer"),
                                          ("tiny-grown", "base"), ("tiny-grown", "sft"), ("tiny-grown", "dpo"),
                                          ("tiny-grown", "answer")}
    grown = json.loads((out / "tiny-grown" / "base" / "config.json").read_text())
    assert (grown["hidden_size"], grown["num_hidden_layers"]) == (48, 3)
    dpo_card = json.loads((out / "tiny-grown" / "dpo" / "run_card.json").read_text())
    assert dpo_card["stage"] == "dpo" and dpo_card["global_step"] == 1
    judgments = [json.loads(line) for line in
                 (out / "model_judgment" / "judgments.jsonl").read_text().splitlines()]
    # Two questions (writing 81, roleplay 91), two turns, for each model and its @mismatched control.
    assert sorted((j["model"], j["question_id"], j["turn"]) for j in judgments) == sorted(
        (m, q, t) for m in ("tiny", "tiny-grown", "tiny@mismatched", "tiny-grown@mismatched")
        for q in (81, 91) for t in (1, 2))
    assert all(j["judgment"].startswith("Rating: [[") for j in judgments)
    pairs = [json.loads(line) for line in (out / "model_judgment" / "judgments_pair.jsonl").read_text().splitlines()]
    assert sorted((p["model_1"], p["model_2"], p["question_id"], p["turn"]) for p in pairs) == [
        ("tiny-grown", "tiny", q, t) for q in (81, 91) for t in (1, 2)]
    assert all(p["g1_judgment"].startswith("[[") and p["g2_judgment"].startswith("[[") for p in pairs)
    table = (out / "table.md").read_text()
    assert "tiny-grown" in table and "| S | scratch | tiny |" in table and "@mismatched |" not in table
    assert table.startswith("**Warning:") and "## Pairwise" in table  # 2 questions: the check cannot pass
    assert set(json.loads((out / "summary.json").read_text())["judge_check"]) == {"tiny", "tiny-grown"}
    assert "main-table" in (out / "report.html").read_text()
    assert (out / "categories.png").stat().st_size > 0 and "tiny-grown" in proc.stdout

    # Everything is current: a second run starts no stage.
    again = run_cli("-m", "align.cli", "series", str(path), timeout=300)
    assert again.returncode == 0 and "running" not in again.stdout
