"""`align tokenize`: text -> token shards (datatrove's .ds/.ds.index layout), in parallel, resumable,
a token budget that reads only what it needs, and one-line refusals."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import one_line_exit_2, write_jsonl

DOCS = [f"Document {i} is about {topic}. " * (1 + i % 5)
        for i, topic in enumerate(["rivers", "owls", "glass", "maps", "salt", "kites", "tides", "ink"] * 25)]


def tokenize(*argv: str) -> int:
    from align.cli import main

    return main(["tokenize", *argv])


def corpus(folder: Path) -> Path:
    """Two jsonl files, an empty document among them, and a .txt file (one document)."""
    write_jsonl(folder / "a.jsonl", [{"text": d, "id": i} for i, d in enumerate(DOCS[:120])])
    write_jsonl(folder / "b.jsonl", [{"text": ""}] + [{"text": d} for d in DOCS[120:]])
    (folder / "c.txt").write_text("A text file is one document.\n\nEven with blank lines in it.\n")
    return folder


def read_shards(out: Path) -> tuple[dict, list[np.ndarray], list[np.ndarray]]:
    meta = json.loads((out / "metadata.json").read_text())
    tokens = [np.fromfile(out / f["file"], dtype=meta["dtype"]) for f in meta["files"]]
    ends = [np.fromfile(out / (f["file"] + ".index"), dtype="<u8") for f in meta["files"]]
    return meta, tokens, ends


@functools.cache
def _tokenizer(tok_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tok_dir)


def expected_stream(tok_dir: Path, texts: list[str]) -> list[int]:
    tok = _tokenizer(tok_dir)  # loaded once: a test asks for 200 documents' streams one by one
    return [t for d in texts for t in tok(d, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]]


def test_every_document_becomes_its_tokens_plus_eos_in_order_across_shards(smollm2_tokenizer_dir, tmp_path, capsys):
    src, out = corpus(tmp_path / "src"), tmp_path / "shards"
    assert tokenize("--source", str(src), "--tokenizer", str(smollm2_tokenizer_dir), "--out", str(out),
                    "--workers", "2", "--shards", "3", "--batch-docs", "16") == 0
    meta, tokens, ends = read_shards(out)
    texts = DOCS + [(src / "c.txt").read_text()]
    assert np.concatenate(tokens).tolist() == expected_stream(smollm2_tokenizer_dir, texts)
    assert meta["dtype"] == "uint16" and tokens[0].dtype == np.uint16 and meta["bytes_per_token"] == 2
    assert len(meta["files"]) == 3 and meta["tokens"] == sum(len(t) for t in tokens)
    assert meta["documents"] == len(texts) and meta["documents_empty_skipped"] == 1
    eos = meta["tokenizer"]["eos_token_id"]
    for t, e, record in zip(tokens, ends, meta["files"], strict=True):  # each index entry ends a document at eos
        assert e[-1] == len(t) == record["tokens"] and len(e) == record["documents"]
        assert (t[e.astype(np.int64) - 1] == eos).all() and np.count_nonzero(t == eos) == len(e)
    tokenizer = meta["tokenizer"]
    assert tokenizer["vocab_size"] == 49152 and tokenizer["tokenizer_json_sha256"] and tokenizer["eos_token"]
    assert meta["source_fingerprint"].startswith("sha256:") and not list(out.glob(".*tmp*"))
    assert "already tokenized" in (tokenize("--source", str(src), "--tokenizer", str(smollm2_tokenizer_dir),
                                            "--out", str(out)) == 0 and capsys.readouterr().out)


def test_a_budget_reads_only_the_documents_it_needs(smollm2_tokenizer_dir, tmp_path):
    """Each of the 2 shards takes the first max_tokens/2 tokens of its half of the source, ending at a document
    end; a broken line far past the budget in each half is never read."""
    rows = [{"text": d} for d in DOCS]
    lines = [json.dumps(r) for r in rows[:100]] + ["{broken"] + [json.dumps(r) for r in rows[100:]] + ["{broken"]
    src = tmp_path / "big.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "shards"
    assert tokenize("--source", str(src), "--tokenizer", str(smollm2_tokenizer_dir), "--out", str(out),
                    "--workers", "2", "--shards", "2", "--max-tokens", "400") == 0
    meta, tokens, _ = read_shards(out)
    longest = max(len(t) for t in [expected_stream(smollm2_tokenizer_dir, [d]) for d in DOCS])
    for t in tokens:
        assert 200 <= len(t) < 200 + longest
    assert tokens[0].tolist() == expected_stream(smollm2_tokenizer_dir, DOCS[:meta["files"][0]["documents"]])
    assert meta["max_tokens"] == 400 and meta["tokens"] >= 400


def test_a_killed_run_resumes_keeping_finished_shards(smollm2_tokenizer_dir, tmp_path):
    src, out, fresh = corpus(tmp_path / "src"), tmp_path / "shards", tmp_path / "fresh"
    argv = ["--source", str(src), "--tokenizer", str(smollm2_tokenizer_dir), "--workers", "1", "--shards", "3"]
    assert tokenize(*argv, "--out", str(out)) == 0
    kept = (out / "shard-00000.ds").stat().st_mtime_ns
    # as if killed while writing shard 2: its record never written, a temporary file left, no metadata yet
    (out / "shard-00002.json").unlink()
    (out / "metadata.json").unlink()
    (out / ".shard-00002.ds.tmp-12345").write_bytes(b"\x01")
    assert tokenize(*argv, "--out", str(out)) == 0
    assert (out / "shard-00000.ds").stat().st_mtime_ns == kept and not list(out.glob(".shard-*"))
    assert tokenize(*argv, "--out", str(fresh)) == 0
    (meta, tokens, ends), (fresh_meta, fresh_tokens, fresh_ends) = read_shards(out), read_shards(fresh)
    assert [t.tolist() for t in tokens] == [t.tolist() for t in fresh_tokens]
    untimed = [[{k: v for k, v in f.items() if k != "seconds"} for f in m["files"]] for m in (meta, fresh_meta)]
    assert [e.tolist() for e in ends] == [e.tolist() for e in fresh_ends] and untimed[0] == untimed[1]


def test_another_tokenizers_folder_is_refused(smollm2_tokenizer_dir, tmp_path, capsys):
    from transformers import AutoTokenizer

    other = tmp_path / "other-tok"
    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    tok.add_tokens(["<|novel-token|>"])
    tok.save_pretrained(other)
    src, out = corpus(tmp_path / "src"), tmp_path / "shards"
    assert tokenize("--source", str(src), "--tokenizer", str(smollm2_tokenizer_dir), "--out", str(out),
                    "--workers", "1") == 0
    before = sorted(p.name for p in out.iterdir())
    err = one_line_exit_2(["tokenize", "--source", str(src), "--tokenizer", str(other), "--out", str(out)], capsys)
    assert f"--out {out} holds shards of another tokenizer" in err
    err = one_line_exit_2(["tokenize", "--source", str(src), "--tokenizer", str(smollm2_tokenizer_dir), "--out",
                           str(out), "--max-tokens", "50"], capsys)
    assert "holds shards of another max tokens" in err
    assert sorted(p.name for p in out.iterdir()) == before


@pytest.mark.parametrize("case", ["empty folder", "empty files", "foreign folder", "bad json", "no column",
                                  "unsupported file"])
def test_bad_sources_and_folders_are_one_line_refusals_that_leave_nothing(case, smollm2_tokenizer_dir, tmp_path,
                                                                           capsys):
    src, out = tmp_path / "src", tmp_path / "shards"
    src.mkdir()
    expected = {"empty folder": "no file for split 'train' in the folder (it is empty)",
                "empty files": "only empty files",
                "foreign folder": "not empty and not an align tokenize folder",
                "bad json": "(line at byte 0): not valid JSON", "no column": "no 'text' field",
                "unsupported file": "notes.csv: not a text corpus file"}[case]
    if case == "empty files":
        (src / "a.jsonl").write_text("")
    elif case == "foreign folder":
        corpus(src)
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif case == "bad json":
        (src / "a.jsonl").write_text("{not json\n")
    elif case == "no column":
        write_jsonl(src / "a.jsonl", [{"body": "text"}])
    elif case == "unsupported file":  # refused, never skipped (as align cpt reads a folder); README.md is left out
        corpus(src)
        (src / "README.md").write_text("# about this corpus")
        (src / "notes.csv").write_text("a,b")
    err = one_line_exit_2(["tokenize", "--source", str(src), "--tokenizer", str(smollm2_tokenizer_dir),
                           "--out", str(out), "--workers", "1"], capsys)
    assert expected in err
    assert (sorted(p.name for p in out.iterdir()) == ["notes.txt"]) if case == "foreign folder" else not out.exists()


def test_token_width_follows_the_vocabulary():
    from align.train.shards import token_dtype

    assert token_dtype(50257) == "uint16" and token_dtype(1 << 16) == "uint16"  # GPT-2; ids up to 65535
    assert token_dtype((1 << 16) + 1) == "uint32" and token_dtype(128256) == "uint32"  # Llama 3


def test_a_hub_dataset_is_read_as_a_stream_one_shard_per_group_of_its_files(smollm2_tokenizer_dir, tmp_path,
                                                                          monkeypatch):
    """A hub id goes to `datasets.load_dataset(..., streaming=True)` (here answered by a local 2-file stream):
    each shard takes its own data files, nothing is downloaded up front."""
    import datasets

    files = [str(write_jsonl(tmp_path / f"part{i}.jsonl", [{"text": d} for d in DOCS[i * 100:(i + 1) * 100]]))
             for i in range(2)]
    calls = []
    real = datasets.load_dataset

    def fake_hub(name, config=None, split=None, streaming=False, **kwargs):
        calls.append((name, config, split, streaming))
        return real("json", data_files=files, split=split, streaming=streaming)

    monkeypatch.setattr(datasets, "load_dataset", fake_hub)
    from align.train.text_sources import plan_source

    pieces, fingerprint = plan_source("Org/corpus", "sample", "train", shards=8)
    assert len(pieces) == 2 and fingerprint.startswith("hub:") and calls == [("Org/corpus", "sample", "train", True)]
    from align.train.text_sources import texts

    assert [list(texts(p, "text")) for p in pieces] == [DOCS[:100], DOCS[100:200]]
