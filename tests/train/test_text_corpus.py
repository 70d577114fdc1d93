"""`align cpt`'s local text: a .txt file is one document, a file and a folder are read alike, a folder mixing
formats is read whole, nothing is dropped silently, and the run card lists the files read (issue 29.4, 29.10)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from conftest import write_jsonl

from align.plumbing.errors import UserError
from align.train.data import load_rows

TXT = "First paragraph of {i}.\n\nSecond paragraph, after a blank line.\n"


def mixed_folder(root: Path) -> Path:
    root.mkdir()
    for i in range(3):
        write_jsonl(root / f"part{i}.jsonl", [{"text": f"json document {i}"}])
    for i in range(5):
        (root / f"doc{i}.txt").write_text(TXT.format(i=i), encoding="utf-8")
    return root


def test_a_folder_mixing_jsonl_and_txt_trains_on_every_file_and_the_card_lists_them(tmp_path):
    folder = mixed_folder(tmp_path / "corpus")
    loaded = load_rows(str(folder), kind="text")
    texts = sorted(row["text"] for row in loaded.dataset)
    assert loaded.rows_kept == 8 and loaded.rows_skipped == 0  # was 5: the jsonl documents were dropped
    assert texts == sorted([f"json document {i}" for i in range(3)] + [TXT.format(i=i) for i in range(5)])
    card = loaded.card()
    assert [Path(f["path"]).name for f in card["files"]] == [*(f"doc{i}.txt" for i in range(5)),
                                                             *(f"part{i}.jsonl" for i in range(3))]
    first = card["files"][0]
    assert first["bytes"] == (folder / "doc0.txt").stat().st_size
    assert first["sha256"] == hashlib.sha256((folder / "doc0.txt").read_bytes()).hexdigest()


def test_a_txt_file_is_one_document_alone_or_in_a_folder(tmp_path):
    folder = tmp_path / "txt"
    folder.mkdir()
    (folder / "a.txt").write_text(TXT.format(i=0), encoding="utf-8")
    alone = load_rows(str(folder / "a.txt"), kind="text")  # was refused: "unsupported data file type"
    whole = load_rows(str(folder), kind="text")  # was one row per line, and the blank line stopped the run
    assert [r["text"] for r in alone.dataset] == [r["text"] for r in whole.dataset] == [TXT.format(i=0)]
    assert alone.card()["files"] == whole.card()["files"] and alone.fingerprint == whole.fingerprint


def test_a_file_of_another_type_in_a_corpus_folder_is_refused_not_skipped(tmp_path):
    folder = mixed_folder(tmp_path / "corpus")
    (folder / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UserError) as err:
        load_rows(str(folder), kind="text")
    assert str(err.value).startswith(f"{folder / 'notes.csv'}: not a text corpus file")


def test_files_named_for_a_split_stay_in_their_split(tmp_path):
    folder = tmp_path / "split"
    folder.mkdir()
    (folder / "train.txt").write_text("train text", encoding="utf-8")
    write_jsonl(folder / "test.jsonl", [{"text": "held out"}])
    assert [r["text"] for r in load_rows(str(folder), kind="text").dataset] == ["train text"]
    assert [r["text"] for r in load_rows(str(folder), kind="text", split="test").dataset] == ["held out"]
    with pytest.raises(UserError, match="no file for split 'validation'"):
        load_rows(str(folder), kind="text", split="validation")


def test_a_mixture_source_folder_is_read_the_same_way(tmp_path):
    from align.train.mixture import load_mixture
    from align.train.mixture_spec import Mixture, Source

    folder = mixed_folder(tmp_path / "corpus")
    mixture = Mixture(style="trl", key="datasets", sources=[Source(path=str(folder))], seed=0)
    train, _, card = load_mixture(mixture, kind="text")
    assert train.rows_kept == 8 and card["sources"][0]["rows_taken"] == 8
    assert [Path(f["path"]).name for f in card["sources"][0]["files"]] == [
        *(f"doc{i}.txt" for i in range(5)), *(f"part{i}.jsonl" for i in range(3))]


def test_a_latin1_file_in_a_corpus_folder_is_one_line_naming_file_byte_and_line(tmp_path):
    folder = mixed_folder(tmp_path / "corpus")
    (folder / "doc9.txt").write_bytes("first line\nthe caf\u00e9\n".encode("latin-1"))
    with pytest.raises(UserError) as err:
        load_rows(str(folder), kind="text")
    assert str(err.value) == (f"{folder / 'doc9.txt'}: not UTF-8 text: invalid continuation byte at byte 18 "
                              "(line 2); save it as UTF-8")


def test_the_latin1_file_is_one_line_in_a_dry_run_too(tiny_base_llama_dir, tmp_path, capsys):
    from align.train.cpt import main

    folder = mixed_folder(tmp_path / "corpus")
    (folder / "doc9.txt").write_bytes("caf\u00e9 au lait".encode("latin-1"))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"model_name_or_path": str(tiny_base_llama_dir), "dataset_name": str(folder),
                                      "output_dir": str(tmp_path / "out"), "bf16": False, "max_length": 32}))
    with pytest.raises(SystemExit) as exited:
        main(["--config", str(recipe), "--dry_run", "true"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"error: {folder / 'doc9.txt'}: not UTF-8 text: invalid continuation "
                                            "byte at byte 3 (line 1); save it as UTF-8")
    assert not (tmp_path / "out").exists()


def test_the_dry_run_counts_every_document_of_a_mixed_folder(tiny_base_llama_dir, tmp_path, capsys):
    from align.train.cpt import main

    folder = mixed_folder(tmp_path / "corpus")
    assert main(["--model_name_or_path", str(tiny_base_llama_dir), "--dataset_name", str(folder), "--bf16", "false",
                 "--output_dir", str(tmp_path / "out"), "--max_length", "32", "--dry_run", "true"]) == 0
    assert "cpt recipe ok: 8 train rows" in capsys.readouterr().out


def test_json_rows_keep_their_file_and_line_in_a_folder(tmp_path):
    folder = mixed_folder(tmp_path / "corpus")
    (folder / "part1.jsonl").write_text(json.dumps({"text": ""}) + "\n")
    with pytest.raises(UserError) as err:
        load_rows(str(folder), kind="text")
    assert str(err.value) == f"{folder / 'part1.jsonl'}:1: column 'text': expected non-empty text, got ''"


def test_a_jsonl_corpus_file_is_read_a_line_at_a_time_with_its_lines_named(tmp_path):
    """.jsonl text is streamed line by line (not read whole into a list); errors still name file, line and byte."""
    path = tmp_path / "docs.jsonl"
    good = json.dumps({"text": "first"}) + "\n"
    path.write_bytes(good.encode() + b"\n" + json.dumps({"text": "caf\u00e9"}, ensure_ascii=False).encode("latin-1"))
    with pytest.raises(UserError) as err:
        load_rows(str(path), kind="text")
    offset = len(good) + 1 + len('{"text": "caf')
    assert str(err.value) == f"{path}: not UTF-8 text: invalid continuation byte at byte {offset} (line 3); " \
                             "save it as UTF-8"
    path.write_text(good + "not json\n" + json.dumps({"text": "third"}) + "\n")
    loaded = load_rows(str(path), kind="text", invalid_rows="skip")
    assert (loaded.rows_read, loaded.rows_kept, loaded.rows_skipped) == (3, 2, 1)
    assert loaded.skipped_examples == [f"{path}:2: not valid JSON (Expecting value)"]
    assert [r["text"] for r in loaded.dataset] == ["first", "third"]
