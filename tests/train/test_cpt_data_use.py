"""`align cpt` says how it uses its data (issue 29.5): a budget larger than the data is refused unless
`allow_repeat_data: true` (then the passes are in the log and run card), and bfd / no packing say which
documents they cut at max_length and how many tokens that drops."""

from __future__ import annotations

import json
import logging

import pytest
import yaml
from test_cpt import DOCS, base_argv, run_cpt, text_file


def doc_tokens(model) -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    return [len(tok(d + tok.eos_token, add_special_tokens=False)["input_ids"]) for d in DOCS]


@pytest.mark.parametrize(("budget", "said"), [
    (["--max_tokens", "2000"], "command line: max_tokens 2000 (32 steps) is 4.0x the data"),
    (["--max_steps", "20"], "command line: 20 steps is 2.5x the data"),
])
def test_a_budget_the_data_cannot_fill_once_is_refused_before_anything_is_replaced(
        budget, said, tiny_base_llama_dir, tmp_path, capsys):
    data = text_file(tmp_path / "docs.jsonl")
    out = tmp_path / "out"
    out.mkdir()
    (out / "run_card.json").write_text("{}")  # a previous run that --overwrite_output_dir would replace
    total = sum(doc_tokens(tiny_base_llama_dir))
    code, _, err = run_cpt(base_argv(tiny_base_llama_dir, data, out, *budget, "--overwrite_output_dir", "true"),
                           capsys)
    assert code == 2 and "Traceback" not in err
    blocks = -(-total // 32)
    assert err.strip().splitlines()[-1] == (
        f"error: {said}: {total} tokens in {blocks} blocks fill {blocks // 2} step(s) once; the data would be "
        "repeated: set allow_repeat_data: true to repeat it deliberately, or give more data or a smaller budget")
    assert (out / "run_card.json").read_text() == "{}"  # the previous run is still there
    code, _, err = run_cpt(base_argv(tiny_base_llama_dir, data, tmp_path / "new", *budget), capsys)
    assert code == 2 and said in err and not (tmp_path / "new").exists()  # no empty output folder left behind


def test_allow_repeat_data_repeats_it_and_says_how_often(tiny_base_llama_dir, tmp_path, capsys, caplog):
    data = text_file(tmp_path / "docs.jsonl")
    out = tmp_path / "out"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"allow_repeat_data": True}))
    with caplog.at_level(logging.WARNING, logger="align"):
        code, _, err = run_cpt(["--config", str(recipe),
                                *base_argv(tiny_base_llama_dir, data, out, "--max_tokens", "1100")], capsys)
    assert code == 0, err[-2000:]
    use = json.loads((out / "run_card.json").read_text())["cpt"]["data_use"]
    total = sum(doc_tokens(tiny_base_llama_dir))
    assert use == {"tokens_in_data": total, "blocks": 16, "steps_per_pass": 8, "steps": 18, "passes": 2.25,
                   "repeated": True}
    assert any("is 2.25x the data" in r.getMessage() and "repeated, as allow_repeat_data asks" in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize("packing", [["--packing_strategy", "bfd"], ["--packing", "false"]])
def test_truncation_is_counted_in_the_log_and_the_run_card(packing, tiny_base_llama_dir, tmp_path, capsys,
                                                           caplog):
    data = text_file(tmp_path / "docs.jsonl")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="align"):
        code, _, err = run_cpt(base_argv(tiny_base_llama_dir, data, out, *packing, "--max_steps", "1"), capsys)
    assert code == 0, err[-2000:]
    lengths = doc_tokens(tiny_base_llama_dir)
    long = [n for n in lengths if n > 32]
    assert long  # the test data has documents longer than a block
    card = json.loads((out / "run_card.json").read_text())["cpt"]
    use = card["data_use"]
    assert (use["documents"], use["documents_truncated"]) == (len(DOCS), len(long))
    assert use["tokens_dropped_by_truncation"] == sum(n - 32 for n in long)
    assert use["tokens_in_data"] + use["tokens_dropped_by_truncation"] == sum(lengths)  # kept + dropped = all
    assert card["loss"] == ("every token (labels = input ids; eos appended to each document; a document longer "
                            "than max_length 32 is cut to it: the rest of it, its eos included, is not trained)")
    assert any(f"cuts {len(long)} of {len(DOCS)} documents at max_length 32" in r.getMessage()
               for r in caplog.records)


def test_wrapped_packing_drops_nothing_and_says_one_pass(tiny_base_llama_dir, tmp_path, capsys):
    data = text_file(tmp_path / "docs.jsonl")
    out = tmp_path / "out"
    code, _, err = run_cpt(base_argv(tiny_base_llama_dir, data, out, "--max_steps", "1"), capsys)
    assert code == 0, err[-2000:]
    card = json.loads((out / "run_card.json").read_text())["cpt"]
    assert card["data_use"] == {"tokens_in_data": sum(doc_tokens(tiny_base_llama_dir)), "blocks": 16,
                                "steps_per_pass": 8, "steps": 1, "passes": 0.125, "repeated": False}
    assert card["loss"] == "every token (labels = input ids; eos appended to each document)"
