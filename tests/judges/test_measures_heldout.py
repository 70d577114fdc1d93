"""`align heldout`: held-out SFT loss and DPO preference accuracy equal TRL's own eval numbers, per row ids."""

from __future__ import annotations

import json
import math

import pytest
from conftest import chat_rows, make_tiny_llama, preference_rows, write_jsonl

from align.cli import main

ROWS = 6


@pytest.fixture(scope="module")
def chat_models(tmp_path_factory, smollm2_tokenizer_dir):
    """Two tiny chat models saved with the tokenizer SFT trains with (template with generation markers)."""
    from transformers import AutoTokenizer

    from align.train.chat import prepare_tokenizer

    root = tmp_path_factory.mktemp("heldout-models")
    dirs = []
    for seed in (0, 1):
        out = make_tiny_llama(root / f"m{seed}", smollm2_tokenizer_dir, seed=seed)
        prepare_tokenizer(AutoTokenizer.from_pretrained(out), assistant_only_loss=True).save_pretrained(out)
        dirs.append(out)
    return dirs


def _heldout(*args: str) -> dict:
    assert main(["heldout", *args]) == 0
    out = args[args.index("--out") + 1]
    with open(f"{out}/heldout.json") as fh:
        return json.load(fh)


def _trl_args(config_cls, tmp_path, batch: int, **kwargs):
    return config_cls(output_dir=str(tmp_path / "trl"), bf16=False, report_to="none", per_device_eval_batch_size=batch,
                      gradient_checkpointing=False, dataloader_num_workers=0, **kwargs)


def test_sft_loss_equals_trl_eval_loss(chat_models, tmp_path):
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    rows = chat_rows(ROWS)
    data = write_jsonl(tmp_path / "test_sft.jsonl", rows)
    result = _heldout("--kind", "sft", "--model-path", str(chat_models[0]), "--data", str(data), "--rows", str(ROWS),
                      "--batch-size", "4", "--out", str(tmp_path / "sft"))
    assert set(result["rows"]) == {r["prompt_id"] for r in rows} and result["id_field"] == "prompt_id"
    tok = AutoTokenizer.from_pretrained(chat_models[0])
    eval_set = Dataset.from_list([{"messages": r["messages"]} for r in rows])
    for batch, ours in ((1, "loss_per_row"), (ROWS, "loss")):  # TRL averages batch means: 1 row or all rows
        trainer = SFTTrainer(model=str(chat_models[0]), processing_class=tok, train_dataset=eval_set,
                             eval_dataset=eval_set,
                             args=_trl_args(SFTConfig, tmp_path, batch, assistant_only_loss=True, max_length=2048))
        assert result["measures"][ours]["value"] == pytest.approx(trainer.evaluate()["eval_loss"], rel=1e-5)
    per_row = result["rows"]["p0"]
    assert per_row["tokens"] > 0 and per_row["nll"] > 0


def test_dpo_rewards_equal_trl_eval_metrics(chat_models, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    rows = preference_rows(ROWS)
    data = write_jsonl(tmp_path / "test_prefs.jsonl", rows)
    policy, reference = chat_models
    result = _heldout("--kind", "dpo", "--model-path", str(policy), "--ref-model-path", str(reference),
                      "--data", str(data), "--rows", str(ROWS), "--beta", "0.1", "--out", str(tmp_path / "dpo"))
    tok = AutoTokenizer.from_pretrained(policy)
    eval_set = Dataset.from_list([{"chosen": r["chosen"], "rejected": r["rejected"]} for r in rows])
    trainer = DPOTrainer(model=str(policy), ref_model=AutoModelForCausalLM.from_pretrained(reference),
                         processing_class=tok, train_dataset=eval_set, eval_dataset=eval_set,
                         args=_trl_args(DPOConfig, tmp_path, ROWS, beta=0.1, max_length=2048))
    trl = trainer.evaluate()
    measures = result["measures"]
    assert measures["preference_accuracy"]["value"] == pytest.approx(trl["eval_rewards/accuracies"])
    assert measures["reward_margin"]["value"] == pytest.approx(trl["eval_rewards/margins"], rel=1e-4, abs=1e-6)
    assert measures["reward_chosen"]["value"] == pytest.approx(trl["eval_rewards/chosen"], rel=1e-4, abs=1e-6)
    assert 0 < measures["preference_accuracy"]["value"] < 1  # the two random models disagree on some pairs
    row = result["rows"]["q0"]
    assert row["reward_chosen"] == pytest.approx(0.1 * (row["chosen_logp"] - row["ref_chosen_logp"]))
    assert row["correct"] == float(row["reward_chosen"] > row["reward_rejected"])


def test_rows_cut_by_max_length_and_bad_rows_are_named(chat_models, tmp_path):
    rows = chat_rows(4)
    rows[1] = {"prompt_id": "p1", "messages": [{"role": "user", "content": "no answer"}]}
    data = write_jsonl(tmp_path / "chat.jsonl", rows)
    result = _heldout("--kind", "sft", "--model-path", str(chat_models[0]), "--data", str(data), "--rows", "3",
                      "--out", str(tmp_path / "out"))
    assert result["rows_read"] == 3 and set(result["rows"]) == {"p0", "p2"}
    assert "assistant" in result["skipped"]["p1"]
    short = _heldout("--kind", "sft", "--model-path", str(chat_models[0]), "--data", str(data), "--rows", "3",
                     "--max-length", "38", "--out", str(tmp_path / "short"))  # p0's answer starts at token 38
    assert set(short["rows"]) == {"p2"} and short["rows"]["p2"]["tokens"] == 1
    assert "--max-length 38" in short["skipped"]["p0"]
    card = json.loads((tmp_path / "out" / "heldout.run_card.json").read_text())
    assert card["stage"] == "heldout" and card["rows_requested"] == 3


def test_ids_are_indexes_without_unique_prompt_ids(chat_models, tmp_path):
    rows = [{"messages": r["messages"]} for r in chat_rows(3)]
    data = write_jsonl(tmp_path / "chat.jsonl", rows)
    result = _heldout("--kind", "sft", "--model-path", str(chat_models[1]), "--data", str(data), "--rows", "3",
                      "--out", str(tmp_path / "out"))
    assert result["id_field"] == "index" and set(result["rows"]) == {"0", "1", "2"}
    assert all(math.isfinite(v["nll"]) for v in result["rows"].values())


@pytest.mark.parametrize("args, says", [
    (["--kind", "dpo"], "--kind dpo needs --ref-model-path"),
    (["--kind", "sft", "--data", "missing.jsonl"], "--data missing.jsonl"),
    (["--kind", "sft", "--model-path", "no/such-model"], "hub ids cannot load"),
    (["--kind", "sft", "--data", "HuggingFaceH4/ultrachat_200k"], "a hub dataset, but HF_"),
])
def test_user_errors_are_one_line_exit_2(args, says, chat_models, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = write_jsonl(tmp_path / "prefs.jsonl", preference_rows(2))
    base = {"--model-path": str(chat_models[0]), "--data": str(data), "--out": str(tmp_path / "out")}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    with pytest.raises(SystemExit) as exit_info:
        main(["heldout", *[x for kv in base.items() for x in kv]])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and says in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "heldout.json").exists()


def test_preference_rows_take_trls_explicit_prompt_form_and_name_mismatches():
    from judges.measures.rows import checked

    prompt = [{"role": "user", "content": "Hi"}]
    answer = [{"role": "assistant", "content": "Hello"}]
    problem, row = checked({"prompt": prompt, "chosen": answer, "rejected": [{"role": "assistant", "content": "No"}]},
                           "dpo")
    assert problem is None and row["chosen"] == prompt + answer and row["rejected"][0] == prompt[0]
    other = [{"role": "user", "content": "Bye"}, {"role": "assistant", "content": "No"}]
    assert checked({"chosen": prompt + answer, "rejected": other}, "dpo")[0] == \
        "chosen and rejected do not share the same prompt"
    assert checked({"messages": prompt}, "sft")[0] == "messages: the last message must be the assistant's"


@pytest.mark.parametrize("command", ["eval", "heldout"])
def test_checkpoint_without_weights_refused_before_loading(command, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    args = ["--model-path", str(ckpt), "--out", str(tmp_path / "out")]
    args += ["--kind", "sft", "--data", str(write_jsonl(tmp_path / "c.jsonl", chat_rows(2)))] if command == "heldout" \
        else ["--tasks", "arc_easy"]
    with pytest.raises(SystemExit) as exit_info:
        main([command, *args])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith(f"error: --model-path {ckpt}: no weights")
