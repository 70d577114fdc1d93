"""Chat templates: a default for base tokenizers, `{% generation %}` markers for assistant-only loss.

Base checkpoints (the study's use a GPT-2 tokenizer) have no chat template and no pad token.
They get DEFAULT_TEMPLATE: Zephyr-style role headers written as plain text and the tokenizer's
own eos token closing every turn, so no token is added and the embedding matrix keeps its size
(this matters for grown checkpoints and ZeRO-3). The assistant's text and its closing eos sit
inside `{% generation %}`, so TRL's assistant-only loss trains the model to stop.

A tokenizer that already has a template keeps it. When assistant-only loss needs markers the
template lacks, TRL's own patched training template is used if TRL knows the template;
otherwise a ChatML template with markers is used, but only after checking that it renders
exactly the same text as the original. The tokenizer is saved with the template it trained
with, so evaluation renders prompts exactly as training did.
"""

from __future__ import annotations

import re
from pathlib import Path

from align.plumbing.errors import UserError

DEFAULT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|assistant|>\\n' }}{% generation %}{{- message['content'] + eos_token }}{% endgeneration %}{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|assistant|>\\n' }}{%- endif %}"
)

# ChatML with markers; DEFAULT_SYSTEM is filled in from the original template when it has one.
_CHATML_TRAINING = (
    "{%- for message in messages %}"
    "{%- if loop.first and messages[0]['role'] != 'system' and DEFAULT_SYSTEM %}"
    "{{- '<|im_start|>system\\n' + DEFAULT_SYSTEM + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Conversations that exercise a template's branches, for the equivalence check.
_PROBES = [
    [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "A"},
     {"role": "assistant", "content": "B"}, {"role": "user", "content": "C"}, {"role": "assistant", "content": "D"}],
    [{"role": "user", "content": "Only a question"}],
]


def has_generation_markers(template: str | None) -> bool:
    return bool(template) and re.search(r"\{%-?\s*generation\s*-?%\}", template) is not None


def _renders_same(tokenizer, a: str, b: str) -> bool:
    for messages in _PROBES:
        for gen_prompt in (False, True):
            kwargs = dict(tokenize=False, add_generation_prompt=gen_prompt)
            try:
                if (tokenizer.apply_chat_template(messages, chat_template=a, **kwargs)
                        != tokenizer.apply_chat_template(messages, chat_template=b, **kwargs)):
                    return False
            except Exception:  # a template that raises on a probe (e.g. no system role) is not comparable
                return False
    return True


def _marked_equivalent(tokenizer) -> str | None:
    """A template with generation markers that renders exactly like the tokenizer's own, or None."""
    from trl.chat_template_utils import get_training_chat_template

    original = tokenizer.chat_template
    try:
        patched = get_training_chat_template(tokenizer)
        if patched:
            return patched
    except ValueError:  # TRL does not know this template
        pass
    if "<|im_start|>" in original:
        found = re.search(r"<\|im_start\|>system(?:\n|\\n)(.*?)<\|im_end\|>", original)
        default_system = found.group(1) if found else ""
        candidate = _CHATML_TRAINING.replace("DEFAULT_SYSTEM", repr(default_system))
        if _renders_same(tokenizer, original, candidate):
            return candidate
    return None


def prepare_tokenizer(tokenizer, *, chat_template_path: str | None = None, assistant_only_loss: bool = False,
                      source: str = "tokenizer", chat_template: str | None = None):
    """Give `tokenizer` a chat template, pad and eos fit for training; returns it (modified in place).

    - `chat_template_path` (a .jinja file) or `chat_template` (the template itself, the handbook's
      recipe key) replaces any template;
    - no template -> DEFAULT_TEMPLATE;
    - assistant-only loss without markers -> an equivalent template with markers, or a UserError;
    - no pad token -> pad = eos (the collators mask padding by attention mask, so real eos tokens still train).
    """
    if tokenizer.eos_token is None:
        raise UserError(f"{source}: the tokenizer has no eos token; set `eos_token` in the recipe")
    if chat_template and chat_template_path:
        raise UserError("chat_template and chat_template_path are both set: keep one")
    if chat_template:
        tokenizer.chat_template = chat_template
    elif chat_template_path:
        path = Path(chat_template_path)
        if not path.is_file():
            raise UserError(f"chat_template_path {path} is not a file (a .jinja chat template is expected)")
        tokenizer.chat_template = path.read_text(encoding="utf-8")
    elif not tokenizer.chat_template:
        tokenizer.chat_template = DEFAULT_TEMPLATE
    if isinstance(tokenizer.chat_template, dict):
        raise UserError(f"{source}: named chat-template variants are not supported; set chat_template_path")
    if assistant_only_loss and not has_generation_markers(tokenizer.chat_template):
        marked = _marked_equivalent(tokenizer)
        if marked is None:
            raise UserError(f"{source}: its chat template has no {{% generation %}} markers and no equivalent is "
                            "known; set chat_template_path to a template with markers, or assistant_only_loss: false")
        tokenizer.chat_template = marked
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def fix_generation_config(model_dir: str | Path, tokenizer) -> None:
    """Make the saved generation config stop at the tokenizer's eos and pad with its pad token."""
    from transformers import GenerationConfig

    try:
        gen = GenerationConfig.from_pretrained(model_dir)
    except OSError:
        gen = GenerationConfig()
    eos = gen.eos_token_id
    eos_ids = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
    if tokenizer.eos_token_id not in eos_ids:
        eos_ids.insert(0, tokenizer.eos_token_id)
    gen.eos_token_id = eos_ids[0] if len(eos_ids) == 1 else eos_ids
    gen.pad_token_id = tokenizer.pad_token_id
    gen.bos_token_id = tokenizer.bos_token_id if gen.bos_token_id is None else gen.bos_token_id
    gen.save_pretrained(model_dir)
