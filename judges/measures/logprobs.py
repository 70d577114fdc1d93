"""Token log-probabilities of held-out sequences, tokenized as TRL's trainers tokenize them.

SFT (TRL's SFTTrainer, `assistant_only_loss`): the conversation through the chat template with
`return_assistant_tokens_mask`; only assistant tokens count; cut to `max_length` from the end
(`keep_start`); a row left without assistant tokens is dropped, as TRL drops it.
DPO (TRL's DPOTrainer): prompt = the shared turns rendered with the generation prompt; each answer is
the rest of the full conversation's tokens after the longest common prefix with the prompt; prompt +
answer cut to `max_length`; a row whose prompt alone fills `max_length` is dropped, as TRL drops it.

A forward pass per batch (right padding, attention mask) gives, per sequence, the sum of the log-probs
of its counted tokens (each predicted from the tokens before it) and how many there are.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from align.plumbing.errors import UserError


@dataclass
class Sequence:
    ids: list[int]
    mask: list[int]  # 1 where the token counts (an assistant / answer token)


def _has_markers(template: str | None) -> bool:
    return bool(template) and re.search(r"\{%-?\s*generation\s*-?%\}", template) is not None


def chat_template_for(tokenizer, kind: str, where: str) -> str:
    """The checkpoint's own template (SFT/DPO save the one they trained with). SFT's loss needs
    `{% generation %}` markers; a template without them gets TRL's marked equivalent when TRL knows it."""
    template = tokenizer.chat_template
    if not template or isinstance(template, dict):
        raise UserError(f"{where}: its tokenizer has no (single) chat template; held-out measures need the "
                        "template the model was post-trained with (SFT and DPO checkpoints save it)")
    if kind == "sft" and not _has_markers(template):
        from trl.chat_template_utils import get_training_chat_template

        try:
            template = get_training_chat_template(tokenizer)
        except ValueError:
            template = None
        if not template:
            raise UserError(f"{where}: its chat template has no {{% generation %}} markers, so assistant tokens "
                            "cannot be told apart; use the SFT checkpoint's saved tokenizer")
    return template


def sft_sequence(tokenizer, template: str, messages: list[dict], max_length: int | None) -> Sequence | None:
    out = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
    if 1 not in mask:
        raise UserError("the chat template marks no assistant tokens in a held-out conversation")
    if max_length is not None:
        ids, mask = ids[:max_length], mask[:max_length]
    return Sequence(ids, mask) if 1 in mask[1:] else None



def dpo_sequences(tokenizer, template: str, chosen: list[dict], rejected: list[dict],
                  max_length: int | None) -> tuple[Sequence, Sequence] | None:
    def ids(messages, **kwargs):
        return list(tokenizer.apply_chat_template(messages, chat_template=template, tokenize=True,
                                                  return_dict=True, **kwargs)["input_ids"])

    prompt = ids(chosen[:-1], add_generation_prompt=True)
    full_chosen, full_rejected = ids(chosen), ids(rejected)
    prompt_len = len(os.path.commonprefix([prompt, full_chosen, full_rejected]))
    if max_length is not None and prompt_len >= max_length:
        return None
    pair = []
    for full in (full_chosen, full_rejected):
        seq, mask = full, [0] * prompt_len + [1] * (len(full) - prompt_len)
        if max_length is not None:
            seq, mask = seq[:max_length], mask[:max_length]
        pair.append(Sequence(seq, mask))
    return pair[0], pair[1]


def sequence_logprobs(model, sequences: list[Sequence], batch_size: int, pad_id: int,
                      progress: str = "") -> list[tuple[float, int]]:
    """(sum of counted tokens' log-probs, count) per sequence, in order."""
    import torch
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    out: list[tuple[float, int]] = []
    starts = range(0, len(sequences), batch_size)
    for start in tqdm(starts, desc=progress or "log-probs", unit="batch", disable=len(starts) < 2):
        batch = sequences[start:start + batch_size]
        width = max(len(s.ids) for s in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        counted = torch.zeros((len(batch), width), dtype=torch.bool)
        for i, seq in enumerate(batch):
            ids[i, :len(seq.ids)] = torch.tensor(seq.ids)
            attention[i, :len(seq.ids)] = 1
            counted[i, :len(seq.ids)] = torch.tensor(seq.mask, dtype=torch.bool)
        ids, attention, counted = ids.to(device), attention.to(device), counted.to(device)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=attention, use_cache=False).logits[:, :-1]
            # log p(token) = its logit - logsumexp(all logits), in float32, without log_softmax's vocabulary-sized
            # output; a bf16/fp16 model's logits are copied to float32 one sequence at a time, so beside the
            # logits there is at most one sequence's copy, not the batch's (same values: per position alike)
            target = logits.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1).float()
            logps = target - torch.stack([torch.logsumexp(row.float(), dim=-1) for row in logits])
        mask = counted[:, 1:]  # token t is predicted at position t-1; the first token never is
        sums = torch.where(mask, logps, 0.0).sum(dim=1)
        counts = mask.sum(dim=1)
        out.extend((float(s), int(c)) for s, c in zip(sums.tolist(), counts.tolist()))
    return out
