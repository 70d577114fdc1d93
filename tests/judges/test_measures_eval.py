"""`align eval`: lm-eval's own numbers (equal to its CLI's), a compact base_eval.json, offline checks first."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_jsonl

from align.cli import main
from judges.measures.lm_summary import summarize
from judges.measures.tasks import check_tasks, check_text_rows, hub_dataset, missing_data_files

# `align eval` runs here reuse one walk of lm-eval's built-in tasks (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("lm_eval_task_index")
COLOURS = ["red", "green", "blue", "yellow"]
MC_YAML = """task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
"""
TEXT_YAML = """task: tiny_text
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
"""


def write_local_tasks(folder: Path) -> Path:
    """A multiple-choice task (acc, acc_norm) and a perplexity task over local jsonl files."""
    # the same two choices, the right one alternating: a random model that favours one scores between 0 and 1
    mc = [{"question": f"Which colour is thing {i}?", "choices": COLOURS[:2], "label": i % 2} for i in range(8)]
    text = [{"text": f"The {c} river passes town number {i}, and people walk beside it at dusk."}
            for i, c in enumerate(COLOURS)]
    (folder / "mc.yaml").write_text(MC_YAML.format(data=write_jsonl(folder / "mc.jsonl", mc)))
    (folder / "text.yaml").write_text(TEXT_YAML.format(data=write_jsonl(folder / "text.jsonl", text)))
    return folder


@pytest.fixture(scope="module")
def local_tasks(tmp_path_factory) -> Path:
    return write_local_tasks(tmp_path_factory.mktemp("tasks"))


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory, tiny_base_llama_dir, local_tasks) -> Path:
    out = tmp_path_factory.mktemp("eval") / "base"
    held = write_jsonl(out.parent / "held.jsonl", [{"text": "Held-out text about the sea."},
                                                   {"text": "A second held-out document, a little longer."}])
    assert main(["eval", "--model-path", str(tiny_base_llama_dir), "--out", str(out), "--tasks", "tiny_mc,tiny_text",
                 "--include-path", str(local_tasks), "--heldout-text", str(held)]) == 0  # no --device: cpu here
    return out


# lm-eval builds its task index (thousands of YAMLs) in ~10-20 s: the runs through it are `slow`.
def _results(folder: Path) -> dict:
    return json.loads(next(folder.glob("**/results_*.json")).read_text())


@pytest.mark.slow
def test_base_eval_json_is_read_from_lm_evals_files(eval_run):
    results = _results(eval_run / "lm_eval")
    base = json.loads((eval_run / "base_eval.json").read_text())
    measures, items = base["measures"], base["items"]
    assert measures["tiny_mc/acc"] == {"value": results["results"]["tiny_mc"]["acc,none"],
                                       "stderr": results["results"]["tiny_mc"]["acc_stderr,none"], "n": 8}
    acc = items["tiny_mc/acc_norm"]
    assert sorted(acc, key=int) == [str(i) for i in range(8)]  # lm-eval's doc ids: the same for every model
    assert sum(acc.values()) / 8 == pytest.approx(measures["tiny_mc/acc_norm"]["value"])
    for task in ("tiny_text", "heldout_text"):  # perplexity = exp(-sum loglikelihood / sum words)
        docs = items[f"{task}/word_perplexity"].values()
        ppl = math.exp(-sum(d["loglikelihood"] for d in docs) / sum(d["words"] for d in docs))
        assert ppl == pytest.approx(measures[f"{task}/word_perplexity"]["value"], rel=1e-9)
        assert measures[f"{task}/word_perplexity"]["stderr"] is None  # lm-eval's "N/A"
    assert measures["heldout_text/byte_perplexity"]["n"] == 2
    card = json.loads((eval_run / "eval.run_card.json").read_text())
    assert card["stage"] == "eval" and card["heldout_text"]["rows"] == 2 and card["tasks"]["tiny_mc"] == "json"
    assert card["device"] == "cpu"  # lm-eval alone would ask a CPU-only torch for cuda
    assert (eval_run / "lm_eval" / "tasks" / "heldout_text.yaml").is_file()
    assert len(list((eval_run / "lm_eval").glob("*/samples_*.jsonl"))) == 3


@pytest.mark.slow
def test_numbers_equal_lm_eval_cli_run_directly(eval_run, tiny_base_llama_dir, local_tasks, tmp_path):
    cli = Path(sys.executable).with_name("lm_eval")
    proc = subprocess.run([str(cli), "--model", "hf", "--model_args", f"pretrained={tiny_base_llama_dir},dtype=float32",
                           "--tasks", "tiny_mc,tiny_text", "--include_path", str(local_tasks), "--device", "cpu",
                           "--output_path", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    theirs, ours = _results(tmp_path)["results"], _results(eval_run / "lm_eval")["results"]
    for task, metric in (("tiny_mc", "acc"), ("tiny_mc", "acc_norm"), ("tiny_text", "word_perplexity"),
                         ("tiny_text", "byte_perplexity")):
        assert ours[task][f"{metric},none"] == theirs[task][f"{metric},none"], (task, metric)
    assert 0 < theirs["tiny_mc"]["acc_norm,none"] < 1 or 0 < theirs["tiny_mc"]["acc,none"] < 1


def _refused(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", *args])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    return err


@pytest.mark.slow
def test_hub_tasks_offline_refused_before_the_model_loads(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    broken = tmp_path / "ckpt"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # loading it would fail otherwise than with exit 2
    (broken / "model.safetensors").write_bytes(b"not weights")
    err = _refused(["--model-path", str(broken), "--out", str(tmp_path / "out")], capsys)
    assert "HF_DATASETS_OFFLINE=1" in err and "lambada_openai (EleutherAI/lambada_openai)" in err
    assert "wikitext" in err and not (tmp_path / "out").exists()


def _index(local_tasks: Path) -> dict:
    """An index shaped like lm-eval's TaskManager.task_index: a hub task, a tag, a group, a local task."""
    from lm_eval.tasks._index import Entry, Kind

    local = {"task": "tiny_mc", "dataset_path": "json",
             "dataset_kwargs": {"data_files": {"test": str(local_tasks / "mc.jsonl")}}}
    return {"arc_easy": Entry("arc_easy", Kind.TASK, None, {"dataset_path": "allenai/ai2_arc"}),
            "ai2_arc": Entry("ai2_arc", Kind.TAG, None, None, {"arc_easy"}),
            "mine": Entry("mine", Kind.GROUP, None, {"task": ["tiny_mc", "ai2_arc"]}),
            "tiny_mc": Entry("tiny_mc", Kind.TASK, None, local)}


def test_task_checks_expand_groups_and_tags(local_tasks, monkeypatch):
    from align.plumbing.errors import UserError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    assert set(check_tasks(_index(local_tasks), ["mine"])) == {"tiny_mc", "arc_easy"}
    with pytest.raises(UserError, match=r"unknown lm-eval task\(s\) no_such, other"):
        check_tasks(_index(local_tasks), ["tiny_mc", "no_such", "other"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert set(check_tasks(_index(local_tasks), ["tiny_mc"])) == {"tiny_mc"}
    with pytest.raises(UserError, match=r"HF_HUB_OFFLINE=1 but task\(s\) need the hub: arc_easy \(allenai/ai2_arc\)"):
        check_tasks(_index(local_tasks), ["mine"])
    gone = _index(local_tasks)
    gone["tiny_mc"].cfg["dataset_kwargs"]["data_files"]["test"] = "/no/such/file.jsonl"
    with pytest.raises(UserError, match="task tiny_mc: data file.*/no/such/file.jsonl"):
        check_tasks(gone, ["tiny_mc"])


def test_bad_heldout_text_refused_before_lm_eval_loads(tmp_path, tiny_base_llama_dir, capsys):
    held = tmp_path / "held.jsonl"
    held.write_text("not json\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--model-path", str(tiny_base_llama_dir), "--out", str(tmp_path / "out"),
              "--heldout-text", str(held)])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err == f"error: {held}:1: not valid JSON (Expecting value)"
    assert not (tmp_path / "out").exists()


def test_heldout_text_rows_checked(tmp_path):
    from align.plumbing.errors import UserError

    bad = tmp_path / "held.jsonl"
    bad.write_text('{"text": "fine"}\n{"body": "no text"}\n')
    with pytest.raises(UserError, match=r"held.jsonl:2: expected an object with a non-empty string \"text\""):
        check_text_rows(bad)
    assert check_text_rows(write_jsonl(tmp_path / "ok.jsonl", [{"text": "a"}, {"text": "b"}])) == 2


def test_local_and_hub_task_configs():
    assert hub_dataset({"dataset_path": "json"}) is None
    assert hub_dataset({"dataset_path": "allenai/ai2_arc"}) == "allenai/ai2_arc"
    assert missing_data_files({"dataset_path": "json", "dataset_kwargs": {"data_files": {"test": ["/no/x"]}}}) == \
        ["/no/x"]


def test_summary_names_filters_and_keeps_pairs():
    results = {"results": {"t": {"acc,none": 0.5, "acc_stderr,none": 0.1, "exact_match,strict": 1.0,
                                 "exact_match_stderr,strict": "N/A"}},
               "n-samples": {"t": {"effective": 2}}}
    samples = {"t": [{"doc_id": 0, "filter": "none", "metrics": ["acc"], "acc": True},
                     {"doc_id": 1, "filter": "none", "metrics": ["acc"], "acc": 0.0},
                     {"doc_id": 0, "filter": "strict", "metrics": ["exact_match"], "exact_match": 1.0}]}
    summary = summarize(results, samples)
    assert summary["measures"]["t/exact_match,strict"] == {"value": 1.0, "stderr": None, "n": 2}
    assert summary["items"] == {"t/acc": {"0": 1.0, "1": 0.0}, "t/exact_match,strict": {"0": 1.0}}


def test_measures_never_import_training_code():
    """judges/ reads checkpoints and files; align.train, align.grow and align.series stay out, even lazily."""
    import ast

    folder = Path(__file__).resolve().parents[2] / "judges" / "measures"
    imported = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    assert "align.plumbing.errors" in imported  # the scan sees the package's imports
    assert not {m for m in imported if m.split(".")[:2] in (["align", "train"], ["align", "grow"], ["align", "series"])}
