"""Chat templates: defaults for base tokenizers, kept templates, and the exact assistant-only label mask."""

from __future__ import annotations

import pytest
from conftest import chat_rows
from transformers import AutoTokenizer

from align.plumbing.errors import UserError
from align.train.chat import DEFAULT_TEMPLATE, has_generation_markers, prepare_tokenizer

CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is rain?"},
    {"role": "assistant", "content": "Water falling from clouds."},
    {"role": "user", "content": "And snow?"},
    {"role": "assistant", "content": "Frozen rain, roughly."},
]


def test_base_tokenizer_gets_default_template_and_pad(tiny_base_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_base_llama_dir)
    assert tok.chat_template is None and tok.pad_token is None
    prepare_tokenizer(tok)
    assert tok.chat_template == DEFAULT_TEMPLATE and has_generation_markers(tok.chat_template)
    assert tok.pad_token == tok.eos_token
    text = tok.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True)
    eos = tok.eos_token
    assert text == f"<|system|>\nAnswer briefly.{eos}\n<|user|>\nWhat is rain?{eos}\n<|assistant|>\n"


def test_existing_template_is_kept(tiny_llama_dir, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    original = tok.chat_template
    prepare_tokenizer(tok)
    assert tok.chat_template == original
    # assistant-only loss swaps in a template with markers that renders exactly the same text
    prepare_tokenizer(tok, assistant_only_loss=True)
    assert has_generation_markers(tok.chat_template)
    for messages in (CONVERSATION, CONVERSATION[1:3], CONVERSATION[1:2]):
        for gen in (False, True):
            assert (tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
                    == tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen,
                                               chat_template=original))
    # a recipe's chat_template_path overrides it
    path = tmp_path / "t.jinja"
    path.write_text(DEFAULT_TEMPLATE)
    assert prepare_tokenizer(tok, chat_template_path=str(path)).chat_template == DEFAULT_TEMPLATE


def test_unknown_template_without_markers_is_refused(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tok.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    with pytest.raises(UserError, match="no {% generation %} markers"):
        prepare_tokenizer(tok, assistant_only_loss=True, source="ckpt")


def expected_mask(tok, messages) -> tuple[list[int], list[int]]:
    """(input ids, 1 where the token lies inside an assistant reply or its end-of-turn token), from char offsets."""
    text = tok.apply_chat_template(messages, tokenize=False)
    spans, cursor = [], 0
    end_of_turn = "<|im_end|>"  # both templates close a turn with it (the SmolLM2 tokenizer's eos)
    for msg in messages:
        start = text.index(msg["content"], cursor)
        cursor = start + len(msg["content"])
        if msg["role"] == "assistant":
            assert text.startswith(end_of_turn, cursor)
            spans.append((start, cursor + len(end_of_turn)))
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = [int(any(a <= s and e <= b for a, b in spans)) for s, e in enc["offset_mapping"]]
    return enc["input_ids"], mask


@pytest.mark.parametrize("fixture", ["tiny_base_llama_dir", "tiny_llama_dir"])
def test_assistant_only_labels_mask_exactly_the_other_tokens(fixture, request, tmp_path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model_dir = request.getfixturevalue(fixture)
    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(model_dir), assistant_only_loss=True)
    conversations = [CONVERSATION, chat_rows(1)[0]["messages"]]
    args = SFTConfig(output_dir=str(tmp_path), assistant_only_loss=True, bf16=False, gradient_checkpointing=False,
                     report_to="none", max_length=512, dataloader_num_workers=0)
    trainer = SFTTrainer(model=str(model_dir), args=args, processing_class=tok,
                         train_dataset=Dataset.from_list([{"messages": m} for m in conversations]))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(conversations))])
    for row, messages in enumerate(conversations):
        ids, mask = expected_mask(tok, messages)
        n = len(ids)
        assert batch["input_ids"][row, :n].tolist() == ids
        labels = batch["labels"][row].tolist()
        assert labels[:n] == [t if m else -100 for t, m in zip(ids, mask)]
        assert all(label == -100 for label in labels[n:])  # padding
        assert 0 < sum(mask) < n
