"""One loader for the handbook's dataset_mixture, TRL CLI's datasets: and the handbook's older dataset_mixer:
each with its own meaning, checked against the procedure it comes from."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from conftest import chat_rows, preference_rows, write_jsonl

from align.plumbing.errors import UserError
from align.plumbing.files import file_sha256
from align.train.mixture import load_mixture
from align.train.mixture_spec import mixture_from_args


def data_args(**keys):
    base = dict(dataset_mixture=None, datasets=None, dataset_mixer=None, dataset_splits=None, streaming=False,
                test_split_size=None)
    return SimpleNamespace(**{**base, **keys})


def numbered_chat(n: int, tag: str) -> list[dict]:
    return [{**row, "messages": [row["messages"][0], {"role": "assistant", "content": f"{tag}-{i}"}]}
            for i, row in enumerate(chat_rows(n))]


def answers(loaded) -> list[str]:
    return [row["messages"][-1]["content"] for row in loaded.dataset]


@pytest.fixture
def two_sources(tmp_path):
    a = write_jsonl(tmp_path / "a" / "train_sft.jsonl", numbered_chat(10, "a"))
    b = write_jsonl(tmp_path / "b.jsonl", numbered_chat(4, "b"))
    return a, b


def test_handbook_mixture_matches_the_handbooks_procedure(two_sources):
    import datasets

    a, b = two_sources
    spec = {"datasets": [{"id": str(a.parent), "config": "default", "split": "train_sft", "columns": ["messages"],
                          "weight": 0.5},
                         {"id": str(b), "split": "train", "columns": ["messages"], "weight": 1.0}],
            "test_split_size": 3, "seed": 7}
    mixture = mixture_from_args(data_args(dataset_mixture=spec), "r.yaml", seed=42)
    train, evaluation, card = load_mixture(mixture, kind="chat")

    # the handbook: shuffle(seed) + first int(len * weight) per dataset, concatenate, shuffle(seed), split(seed)
    parts = [datasets.load_dataset("json", data_files=str(a), split="train").shuffle(seed=7).select(range(5)),
             datasets.load_dataset("json", data_files=str(b), split="train").shuffle(seed=7).select(range(4))]
    split = datasets.concatenate_datasets(parts).shuffle(seed=7).train_test_split(test_size=3, seed=7)
    assert answers(train) == [r["messages"][-1]["content"] for r in split["train"]]
    assert answers(evaluation) == [r["messages"][-1]["content"] for r in split["test"]]
    assert [s["rows_taken"] for s in card["sources"]] == [5, 4]
    assert card["sources"][0]["fingerprint"] == "sha256:" + file_sha256(a) and card["sources"][0]["weight"] == 0.5
    assert card["rows_train"] == 6 and card["rows_eval"] == 3


def test_trl_fraction_matches_trls_own_loader(two_sources):
    from trl.scripts.utils import DatasetConfig, DatasetMixtureConfig, get_dataset

    a, b = two_sources
    items = [{"path": "json", "data_files": str(a), "fraction": 0.5}, {"path": "json", "data_files": str(b),
                                                                      "fraction": 0.5}]
    mixture = mixture_from_args(data_args(datasets=items), "r.yaml", seed=42)
    train, evaluation, card = load_mixture(mixture, kind="chat")
    trl = get_dataset(DatasetMixtureConfig(datasets=[DatasetConfig(**i) for i in items]))["train"]
    # normalised shares, capped so that b (4 rows at half the mixture) is not oversampled: 4 + 4 first rows
    assert answers(train) == [r["messages"][-1]["content"] for r in trl] == [f"a-{i}" for i in range(4)] + \
        [f"b-{i}" for i in range(4)]
    assert evaluation is None and [s["fraction"] for s in card["sources"]] == [0.5, 0.5]


def test_trl_test_split_is_seeded_and_recorded(two_sources):
    a, _ = two_sources
    items = json.dumps([{"path": str(a)}])  # as given on the command line
    first = load_mixture(mixture_from_args(data_args(datasets=items, test_split_size=0.3), "r", seed=1), kind="chat")
    again = load_mixture(mixture_from_args(data_args(datasets=items, test_split_size=0.3), "r", seed=1), kind="chat")
    other = load_mixture(mixture_from_args(data_args(datasets=items, test_split_size=0.3), "r", seed=2), kind="chat")
    assert answers(first[1]) == answers(again[1]) and len(answers(first[1])) == 3  # ceil(0.3 * 10)
    assert answers(first[1]) != answers(other[1])
    assert "unseeded" in first[2]["test_split_seed_note"]


def test_streaming_reads_only_the_rows_needed(two_sources):
    a, _ = two_sources
    mixture = mixture_from_args(data_args(datasets=[{"path": "json", "data_files": str(a)}], streaming=True),
                                "r", seed=0)
    train, _, card = load_mixture(mixture, kind="chat", max_rows=3)
    assert answers(train) == ["a-0", "a-1", "a-2"] and card["sources"][0]["rows_available"] == 3


def test_older_handbook_mixer_trains_on_train_splits_and_evaluates_on_test_splits(tmp_path):
    folder = tmp_path / "uf"
    write_jsonl(folder / "train_prefs.jsonl", preference_rows(8))
    write_jsonl(folder / "test_prefs.jsonl", preference_rows(3))
    mixture = mixture_from_args(data_args(dataset_mixer={str(folder): 0.5}, dataset_splits=["train_prefs",
                                                                                          "test_prefs"]),
                                "r", seed=0)
    train, evaluation, card = load_mixture(mixture, kind="preference")
    assert train.rows_kept == 4 and evaluation.rows_kept == 3
    assert [(s["split"], s["role"], s["rows_taken"]) for s in card["sources"]] == [
        ("train_prefs", "train", 4), ("test_prefs", "eval", 3)]


def test_explicit_prompt_preference_rows_become_full_conversations(tmp_path):
    rows = [{"prompt": r["chosen"][:-1], "chosen": r["chosen"][-1:], "rejected": r["rejected"][-1:],
             "chat_template_kwargs": {"enable_thinking": False}} for r in preference_rows(4)]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    spec = {"datasets": [{"id": str(path), "columns": ["chosen", "rejected", "prompt", "chat_template_kwargs"]}]}
    train, _, _ = load_mixture(mixture_from_args(data_args(dataset_mixture=spec), "r", seed=0), kind="preference")
    first = train.dataset[0]
    assert [m["role"] for m in first["chosen"]] == ["user", "assistant"]
    assert first["chosen"][0] == first["rejected"][0] and first["chat_template_kwargs"] == {"enable_thinking": False}


@pytest.mark.parametrize("keys, message", [
    ({"dataset_mixture": {"datasets": [{"id": "x", "weight": 2}]}}, "dataset_mixture.datasets[0].weight must be in"),
    ({"dataset_mixture": {"datasets": [{"id": "x", "fraction": 0.5}]}}, "has unknown key(s) ['fraction']"),
    ({"dataset_mixture": {"datasets": []}}, "key 'dataset_mixture' expects"),
    ({"dataset_mixture": {"datasets": [{"id": "x"}], "shuffle": True}}, "unknown key(s) ['shuffle']"),
    ({"datasets": [{"path": "x", "fraction": 0.5}, {"path": "y"}]}, "set 'fraction' for every dataset or for none"),
    ({"datasets": [{"path": "x", "fraction": 0.5}], "streaming": True}, "cannot be used with streaming"),
    ({"datasets": [{"path": "x"}], "dataset_mixture": {"datasets": [{"id": "x"}]}}, "each describe the training"),
    ({"dataset_mixture": {"datasets": [{"id": "x", "columns": ["messages"]}, {"id": "y", "columns": ["text"]}]}},
     "every dataset must select the same columns"),
    ({"datasets": "[unclosed"}, "key 'datasets' is not valid JSON/YAML"),
])
def test_mixture_spec_errors_name_the_key(keys, message):
    with pytest.raises(UserError) as err:
        mixture_from_args(data_args(**keys), "r.yaml", seed=0)
    assert message in str(err.value) and str(err.value).startswith("r.yaml")


def test_rows_that_do_not_fit_are_one_line_errors(two_sources):
    a, b = two_sources
    too_big = {"datasets": [{"id": str(b)}], "test_split_size": 10}
    with pytest.raises(UserError, match="test_split_size 10 does not fit 4 rows"):
        load_mixture(mixture_from_args(data_args(dataset_mixture=too_big), "r", seed=0), kind="chat")
    wrong_columns = {"datasets": [{"id": str(b), "columns": ["chosen", "rejected"]}]}
    with pytest.raises(UserError, match="a chat dataset needs"):
        load_mixture(mixture_from_args(data_args(dataset_mixture=wrong_columns), "r", seed=0), kind="chat")
    bad = write_jsonl(a.parent / "bad.jsonl", [{"messages": [{"role": "user", "content": "only a question"}]}])
    with pytest.raises(UserError, match=f"{bad}:1: the last message must be the assistant's"):
        load_mixture(mixture_from_args(data_args(dataset_mixture={"datasets": [{"id": str(bad)}]}), "r", seed=0),
                     kind="chat")


def test_dataset_name_on_the_command_line_replaces_the_recipes_mixture(tmp_path):
    from trl import SFTConfig

    from align.train.recipe import parse_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text("model_name_or_path: m\nbf16: false\ndataset_mixture: {datasets: [{id: some/hub-data}]}\n")
    common = ["--config", str(recipe), "--output_dir", str(tmp_path / "o")]
    data, *_ = parse_recipe(SFTConfig, common)
    assert mixture_from_args(data, "r", seed=0).sources[0].path == "some/hub-data"
    data, *_ = parse_recipe(SFTConfig, [*common, "--dataset_name", "local.jsonl"])
    assert data.dataset_mixture is None and mixture_from_args(data, "r", seed=0) is None
