"""`align cpt` streaming: `streaming: true` (or a hub corpus with max_tokens) hands TRL a datasets.IterableDataset
end to end; start-up does not grow with the corpus; refusals for what a stream cannot do."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from conftest import one_line_exit_2, write_jsonl

CPU = ["--bf16", "false", "--gradient_checkpointing", "false", "--report_to", "none", "--logging_steps", "1",
       "--dataloader_num_workers", "0", "--dataloader_pin_memory", "false"]
L = 32


def docs(n: int) -> list[dict]:
    return [{"text": f"Document {i} is about the {['rivers', 'owls', 'glass', 'maps'][i % 4]} of the north. "
             * (1 + i % 3)} for i in range(n)]


def cpt_argv(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["--model_name_or_path", str(model), "--dataset_name", str(data), "--output_dir", str(out),
            "--max_length", str(L), "--per_device_train_batch_size", "2", "--save_strategy", "no", *CPU, *extra]


@pytest.fixture
def watched(monkeypatch):
    """The trainer the run builds, the documents read from the source, and when step 1 ended."""
    import align.train.text_sources as sources
    from align.train.lean import LeanSFTTrainer

    seen = {"documents": 0}
    texts, train = sources.texts, LeanSFTTrainer.train

    def counting(pieces, column):
        for text in texts(pieces, column):
            seen["documents"] += 1
            yield text

    def keep(self, *args, **kwargs):
        from transformers import TrainerCallback

        class FirstStep(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                seen.setdefault("first_step", time.perf_counter())

        seen["trainer"] = self
        self.add_callback(FirstStep())
        return train(self, *args, **kwargs)

    monkeypatch.setattr(sources, "texts", counting)
    monkeypatch.setattr(LeanSFTTrainer, "train", keep)
    return seen


def run_cpt(argv: list[str]) -> int:
    from align.train.cpt import main

    return main(argv)


def test_streaming_hands_trl_an_iterable_dataset_end_to_end(tiny_base_llama_dir, tmp_path, watched):
    import datasets

    src = tmp_path / "corpus"
    write_jsonl(src / "a.jsonl", docs(300))
    (src / "b.txt").write_text("A text file is one document.\n\nEven with blank lines.\n")
    out = tmp_path / "out"
    assert run_cpt(cpt_argv(tiny_base_llama_dir, src, out, "--streaming", "true", "--max_tokens", "256")) == 0
    assert isinstance(watched["trainer"].train_dataset, datasets.IterableDataset)
    card = json.loads((out / "run_card.json").read_text())
    assert card["global_step"] == 4 and 3 * 2 * L < card["tokens_trained"] <= 4 * 2 * L
    assert card["data"]["train"]["kind"] == "text stream" and card["data"]["train"]["stream_shards"] >= 2


def test_a_20x_larger_stream_reaches_step_1_as_fast(tiny_base_llama_dir, tmp_path, watched):
    """Start-up reads what the first batches need, not the corpus: the documents read before the run ends
    (1 step) and the time to step 1 do not grow with a 20x larger source."""
    results = {}
    for name, n in (("small", 2000), ("large", 40000)):
        data = write_jsonl(tmp_path / f"{name}.jsonl", docs(n))
        watched["documents"] = 0
        watched.pop("first_step", None)
        started = time.perf_counter()
        assert run_cpt(cpt_argv(tiny_base_llama_dir, data, tmp_path / name, "--streaming", "true",
                                "--max_steps", "1")) == 0
        results[name] = (watched["documents"], watched["first_step"] - started)
    print("documents read, seconds to step 1:", results)
    (small_docs, small_s), (large_docs, large_s) = results["small"], results["large"]
    assert 0 < large_docs <= 2 * small_docs and large_docs < 40000 / 4, results  # read through the stream
    assert large_s < 2 * small_s + 2.0, results


def test_a_hub_corpus_with_a_token_budget_is_streamed(tiny_base_llama_dir, tmp_path, monkeypatch, watched):
    """FineWeb-Edu as the study's recipes name it (hub id + max_tokens, no streaming key): streamed, not
    downloaded (here `datasets.load_dataset` answers with a local 2-file stream)."""
    import datasets

    import align.train.checks as checks

    files = [str(write_jsonl(tmp_path / f"part{i}.jsonl", docs(200))) for i in range(2)]
    calls = []
    real = datasets.load_dataset

    def fake_hub(name, config=None, split=None, streaming=False, **kwargs):
        calls.append((name, streaming))
        return real("json", data_files=files, split=split, streaming=streaming)

    monkeypatch.setattr(datasets, "load_dataset", fake_hub)
    monkeypatch.setattr(checks, "hub_dataset_problem", lambda source: None)
    out = tmp_path / "out"
    assert run_cpt(cpt_argv(tiny_base_llama_dir, "Org/fineweb-like", out, "--max_tokens", "128")) == 0
    assert calls == [("Org/fineweb-like", True)]
    assert isinstance(watched["trainer"].train_dataset, datasets.IterableDataset)
    assert json.loads((out / "run_card.json").read_text())["data"]["train"]["stream_shards"] == 2


def test_a_streamed_mixture_reads_its_sources_one_after_another(tiny_base_llama_dir, tmp_path, watched):
    first, second = write_jsonl(tmp_path / "a.jsonl", docs(50)), write_jsonl(tmp_path / "b.jsonl", docs(50))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"datasets": [{"path": str(first)}, {"path": str(second)}], "streaming": True,
                                      "max_steps": 1}))
    argv = cpt_argv(tiny_base_llama_dir, first, tmp_path / "out")
    del argv[argv.index("--dataset_name"):argv.index("--dataset_name") + 2]
    import datasets

    assert run_cpt(["--config", str(recipe), *argv]) == 0
    assert isinstance(watched["trainer"].train_dataset, datasets.IterableDataset)


def test_a_stream_without_an_end_is_refused_in_one_line(tiny_base_llama_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "a.jsonl", docs(20))
    err = one_line_exit_2(["cpt", *cpt_argv(tiny_base_llama_dir, data, tmp_path / "out", "--streaming", "true")],
                          capsys)
    assert "a stream has no length: set max_tokens (or max_steps)" in err and not (tmp_path / "out").exists()
