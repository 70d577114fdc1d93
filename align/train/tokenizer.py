"""The tokenizer a training run trains with: the checkpoint's own, as it is saved (a checkpoint without one is
a one-line error); for chat rows (SFT, DPO) with the chat template prepared, for plain text (CPT) unchanged
but for a pad token."""

from __future__ import annotations

from align.plumbing.errors import UserError


def checkpoint_tokenizer(model_args, training_args):
    """The checkpoint's tokenizer as it is saved; a checkpoint without one is a one-line error."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision,
                                             trust_remote_code=training_args.trust_remote_code)
    except OSError as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(f"model_name_or_path {model_args.model_name_or_path!r}: no tokenizer ({first})") from None


def chat_tokenizer(model_args, training_args, *, assistant_only_loss: bool, chat_template_path: str | None,
                   chat_template: str | None = None):
    """The checkpoint's tokenizer with the chat template training renders conversations with (and saves)."""
    from align.train.chat import prepare_tokenizer

    tok = checkpoint_tokenizer(model_args, training_args)
    return prepare_tokenizer(tok, chat_template_path=chat_template_path, assistant_only_loss=assistant_only_loss,
                             source=model_args.model_name_or_path, chat_template=chat_template)


def text_tokenizer(model_args, training_args):
    """The checkpoint's own tokenizer, unchanged but for a pad token (= eos) when it has none: no chat template
    is added, the text is trained as it is."""
    tok = checkpoint_tokenizer(model_args, training_args)
    eos = training_args.eos_token or tok.eos_token
    if eos is None:
        raise UserError(f"{model_args.model_name_or_path}: the tokenizer has no eos token (it separates documents): "
                        "set eos_token in the recipe")
    if tok.pad_token is None:
        tok.pad_token = eos  # only the last, short block is padded; the collator masks padding by attention mask
    return tok
