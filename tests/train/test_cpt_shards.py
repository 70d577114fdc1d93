"""`align cpt` from token shards: max_length blocks over memory maps in one seeded global order, ready
`input_ids` for TRL (no tokenize/pack map), exact resume by index, distinct blocks per rank, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import align_status, one_line_exit_2, write_jsonl

DOCS = [f"Document {i} is about {topic}. " * (1 + i % 5)
        for i, topic in enumerate(["rivers", "owls", "glass", "maps", "salt", "kites", "tides", "ink"] * 25)]
CPU = ["--bf16", "false", "--gradient_checkpointing", "false", "--report_to", "none", "--logging_steps", "1",
       "--dataloader_num_workers", "0", "--dataloader_pin_memory", "false"]
L = 32


@pytest.fixture(scope="module")
def shards(tiny_base_llama_dir, tmp_path_factory) -> Path:
    """The test corpus tokenized by `align tokenize` with the tiny model's own tokenizer, in 3 shards."""
    from align.cli import main

    root = tmp_path_factory.mktemp("shards")
    src = write_jsonl(root / "docs.jsonl", [{"text": d} for d in DOCS])
    out = root / "shards"
    assert main(["tokenize", "--source", str(src), "--tokenizer", str(tiny_base_llama_dir), "--out", str(out),
                 "--workers", "2", "--shards", "3"]) == 0
    return out


def stream(folder: Path) -> np.ndarray:
    meta = json.loads((folder / "metadata.json").read_text())
    return np.concatenate([np.fromfile(folder / f["file"], dtype=meta["dtype"]) for f in meta["files"]])


def run_cpt(argv: list[str]) -> int | None:
    return align_status(["cpt", *argv])


def cpt_argv(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["--model_name_or_path", str(model), "--dataset_name", str(data), "--output_dir", str(out),
            "--max_length", str(L), "--per_device_train_batch_size", "2", "--save_strategy", "no", *CPU, *extra]


@pytest.fixture
def fetched(monkeypatch):
    """Every block index the training run reads, in order."""
    from align.train.token_blocks import TokenBlocks

    seen: list[int] = []
    original = TokenBlocks.__getitem__

    def getitem(self, i):
        seen.append(i)
        return original(self, i)

    monkeypatch.setattr(TokenBlocks, "__getitem__", getitem)
    return seen


@pytest.mark.parametrize("n", [1, 2, 3, 5, 64, 1000, 4097])
def test_block_order_is_a_seeded_permutation(n):
    from align.train.token_blocks import BlockOrder

    order = [BlockOrder(n, seed=7)[i] for i in range(n)]
    assert sorted(order) == list(range(n)) and order == [BlockOrder(n, seed=7)[i] for i in range(n)]
    if n >= 64:
        assert order != [BlockOrder(n, seed=8)[i] for i in range(n)] and order != list(range(n))


def test_blocks_cut_the_shards_token_stream_at_max_length_across_files(shards):
    from align.train.shards import open_shards
    from align.train.token_blocks import TokenBlocks

    opened = open_shards(shards)
    blocks = TokenBlocks(opened, L, seed=0)
    tokens = stream(shards)
    assert len(blocks) == len(tokens) // L and len(opened.files) == 3
    for i in range(len(blocks)):
        b = blocks.order[i]
        item = blocks[i]["input_ids"]
        assert item.dtype == np.int64 and item.tolist() == tokens[b * L:(b + 1) * L].tolist()
    assert sorted(blocks.order[i] for i in range(len(blocks))) == list(range(len(blocks)))


def test_cpt_trains_on_ready_blocks_and_the_run_card_names_the_shards(tiny_base_llama_dir, shards, tmp_path,
                                                                      fetched):
    from align.train.shards import open_shards
    from align.train.token_blocks import TokenBlocks

    out = tmp_path / "out"
    assert run_cpt(cpt_argv(tiny_base_llama_dir, shards, out, "--max_tokens", "200")) == 0
    card = json.loads((out / "run_card.json").read_text())
    assert card["global_step"] == 4 and card["tokens_trained"] == 4 * 2 * L  # ceil(200 / 64); every block full
    data = card["data"]["train"]
    meta = json.loads((shards / "metadata.json").read_text())
    assert data["kind"] == "token shards" and data["fingerprint"] == meta["fingerprint"]
    assert data["tokenizer"] == meta["tokenizer"] and data["tokens"] == meta["tokens"] and data["block_length"] == L
    # the blocks in the dataset's own (seeded) order, no other sampler on top (+ the loader's one batch of lookahead)
    assert fetched == list(range(len(fetched))) and 8 <= len(fetched) <= 10
    assert len(TokenBlocks(open_shards(shards), L, 0)) == data["blocks"]


def test_a_resumed_run_skips_trained_blocks_by_index_and_ends_bit_identical(tiny_base_llama_dir, shards, tmp_path,
                                                                            fetched):
    """Checkpoint at step 2, run card removed (killed before the end), resumed to step 4: the resumed part reads
    only blocks from 4 on, and every weight equals an uninterrupted 4-step run's."""
    from safetensors.torch import load_file

    base = [*CPU, "--lr_scheduler_type", "constant", "--learning_rate", "1.0e-3", "--save_steps", "2"]

    def argv(out: Path, steps: int, *extra: str) -> list[str]:
        a = cpt_argv(tiny_base_llama_dir, shards, out, *base, "--max_steps", str(steps), *extra)
        a[a.index("--save_strategy") + 1] = "steps"
        return a

    assert run_cpt(argv(tmp_path / "whole", 4)) == 0
    assert run_cpt(argv(tmp_path / "cut", 2)) == 0
    (tmp_path / "cut" / "run_card.json").unlink()
    fetched.clear()
    assert run_cpt(argv(tmp_path / "cut", 4, "--resume_from_checkpoint", "true")) == 0
    assert fetched == list(range(4, 4 + len(fetched))) and 4 <= len(fetched) <= 6  # + one batch of lookahead
    card = json.loads((tmp_path / "cut" / "run_card.json").read_text())
    assert card["resumed_from"].endswith("checkpoint-2") and card["tokens_trained"] == 4 * 2 * L
    whole, cut = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert whole.keys() == cut.keys() and all((whole[k] == cut[k]).all() for k in whole)


def test_two_ranks_get_distinct_blocks(shards):
    """How the Trainer hands the blocks out: a sequential sampler over the seeded order, split by accelerate
    into per-process batches (prepare_data_loader, as Trainer.get_train_dataloader does)."""
    from accelerate.data_loader import prepare_data_loader
    from torch.utils.data import DataLoader, SequentialSampler

    from align.train.shards import open_shards
    from align.train.token_blocks import TokenBlocks

    blocks = TokenBlocks(open_shards(shards), L, seed=0)
    seen = []
    for rank in range(2):
        loader = DataLoader(blocks, batch_size=2, sampler=SequentialSampler(blocks))
        sharded = prepare_data_loader(loader, num_processes=2, process_index=rank, put_on_device=False)
        seen.append([tuple(row.tolist()) for batch in sharded for row in batch["input_ids"]])
    usable = len(blocks) // 4 * 4  # whole global batches (2 ranks x 2)
    assert not set(seen[0][:usable // 2]) & set(seen[1][:usable // 2])
    assert len(set(seen[0][:usable // 2]) | set(seen[1][:usable // 2])) == usable


def test_shards_of_another_tokenizer_are_refused(tiny_base_llama_dir, smollm2_tokenizer_dir, tmp_path, capsys):
    from transformers import AutoTokenizer

    from align.cli import main

    other = tmp_path / "other-tok"
    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    tok.add_tokens(["<|novel-token|>"])
    tok.save_pretrained(other)
    src = write_jsonl(tmp_path / "docs.jsonl", [{"text": d} for d in DOCS])
    assert main(["tokenize", "--source", str(src), "--tokenizer", str(other), "--out", str(tmp_path / "s"),
                 "--workers", "1"]) == 0
    err = one_line_exit_2(["cpt", *cpt_argv(tiny_base_llama_dir, tmp_path / "s", tmp_path / "out", "--max_steps",
                                            "1")], capsys)
    assert f"were tokenized with {other}" in err and f"align tokenize --tokenizer {tiny_base_llama_dir}" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["torn", "index", "eval", "tiny"])
def test_a_damaged_or_unusable_shard_folder_is_refused_in_one_line(damage, tiny_base_llama_dir, shards, tmp_path,
                                                                   capsys):
    import shutil

    copy = tmp_path / "shards"
    shutil.copytree(shards, copy)
    extra = ["--max_steps", "1"]
    if damage == "torn":
        with open(copy / "shard-00001.ds", "r+b") as fh:
            fh.truncate((copy / "shard-00001.ds").stat().st_size - 1)
        expected = "is not a whole number of 2-byte tokens (a torn write)"
    elif damage == "index":
        (copy / "shard-00002.ds.index").write_bytes(b"\0" * 8)
        expected = "shard-00002.ds.index: 8 bytes is not the"
    elif damage == "eval":
        extra += ["--eval_strategy", "steps", "--eval_steps", "1"]
        expected = "token shards, which hold no eval split"
    else:
        extra[extra.index("--max_steps") + 1:] = ["1", "--max_length", "100000"]
        expected = "do not fill one block of max_length 100000"
    err = one_line_exit_2(["cpt", *cpt_argv(tiny_base_llama_dir, copy, tmp_path / "out", *extra)], capsys)
    assert expected in err and not (tmp_path / "out").exists()


def test_the_study_and_the_staged_demo_tokenize_once_and_every_cpt_stage_reads_the_shards(tiny_base_llama_dir):
    """recipes/series/staged-study.yaml and recipes/demo/staged.yaml: a prepare step runs `align tokenize`, every
    cpt stage's dataset_name is its folder, and the recipe checks count that folder as made by the step (not
    'not found', not a hub id)."""
    import yaml

    from align.series.spec import load_series
    from align.train.checks import check_recipe

    for file, folder in (("recipes/series/staged-study.yaml", "data/tokens/fineweb-edu-gpt2"),
                         ("recipes/demo/staged.yaml", "outputs/demo-staged/data/text-tokens")):
        series = load_series(Path(file))
        step = next(s for s in series.prepare if "tokenize" in [str(a) for a in s["command"]])
        command = [str(a) for a in step["command"]]
        assert command[command.index("--out") + 1] == folder and step["outputs"] == [f"{folder}/metadata.json"]
        produced = frozenset(str(Path(o)) for s in series.prepare for o in s["outputs"])
        recipes = {m.cpt["recipe"] for m in series.models if m.cpt and m.cpt.get("recipe")} or {series.cpt["recipe"]}
        for recipe in recipes:
            name = yaml.safe_load(Path(recipe).read_text())["dataset_name"]
            name = series.cpt.get("overrides", {}).get("dataset_name", name)
            name = name.replace("{output_dir}", str(series.output_dir))
            assert name == folder, (file, recipe)
            problems = check_recipe("cpt", ["--config", recipe, "--dataset_name", name, "--model_name_or_path",
                                            str(tiny_base_llama_dir), "--output_dir", "/tmp/unused", "--bf16", "false"],
                                    produced=produced)
            assert not [p for p in problems if folder in p], problems


@pytest.mark.slow
@pytest.mark.xdist_group("two-processes")  # accelerate's port 29500 admits one launch at a time
def test_two_processes_train_distinct_blocks_of_the_one_order(tiny_base_llama_dir, shards, tmp_path):
    """accelerate launch, 2 CPU processes (gloo): each rank logs the blocks it reads; together they cover the
    first 2 x steps x batch indices of the seeded order, none read by both."""
    from conftest import REPO, run_cli

    script = tmp_path / "logged_cpt.py"
    script.write_text(
        "import os, sys\n"
        "from align.train.token_blocks import TokenBlocks\n"
        "get = TokenBlocks.__getitem__\n"
        "def logged(self, i):\n"
        "    with open(os.environ['BLOCK_LOG'] + '.' + os.environ.get('RANK', '0'), 'a') as fh:\n"
        "        fh.write(f'{i}\\n')\n"
        "    return get(self, i)\n"
        "TokenBlocks.__getitem__ = logged\n"
        "from align.train.cpt import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    log = tmp_path / "blocks"
    out = tmp_path / "out"
    proc = run_cli("-m", "accelerate.commands.launch", "--config_file", str(REPO / "recipes/accelerate/ddp.yaml"),
                   "--num_processes", "2", "--mixed_precision", "no", str(script),
                   *cpt_argv(tiny_base_llama_dir, shards, out, "--max_steps", "3"), timeout=420,
                   env={"BLOCK_LOG": str(log), "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-4000:]
    card = json.loads((out / "run_card.json").read_text())
    assert card["world_size"] == 2 and card["tokens_trained"] == 3 * 2 * 2 * L
    ranks = [[int(x) for x in (tmp_path / f"blocks.{r}").read_text().split()] for r in range(2)]
    trained = [set(r[:3 * 2]) for r in ranks]  # 3 steps x 2 blocks per rank (the rest: the loader's lookahead)
    assert not trained[0] & trained[1] and trained[0] | trained[1] == set(range(12))
