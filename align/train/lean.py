"""TRL's SFTTrainer without the per-step entropy and token-accuracy metrics (used by `align sft` and `align cpt`).

TRL 1.16's SFTTrainer asks its fused LM head for each token's entropy and whether the target is the
top-1 prediction, on every training step, only to log `entropy` and `mean_token_accuracy`: extra
passes over every vocabulary-wide tile of logits (earlier TRL versions computed them from the full
logits). Training does not need them: the loss and its gradient come from the log-probabilities
alone, so asking only for those changes no weight (tested: weights after N steps are bit-identical to
the stock trainer's). The two metrics are left out of the logs instead of being logged as zeros.
What it saves on a CPU is measured in BENCHMARKS.md (bench/bench_cpt_throughput.py --stock).
"""

from __future__ import annotations

import functools

import torch
from trl import SFTTrainer

UNUSED_METRICS = ("entropy", "mean_token_accuracy")


def trained_token_count(inputs: dict, *, padded_to_multiple: bool) -> int:
    """Tokens the model was fed in one batch. A padded batch: its attention mask. A padding-free batch
    (bfd packing) has no mask: one row of packed sequences, padded only when pad_to_multiple_of is set,
    by a tail of position-0 entries. (Counting `!= pad_token_id` dropped every real eos when pad = eos.)"""
    if "attention_mask" in inputs:
        return int(inputs["attention_mask"].sum())
    total = inputs["input_ids"].numel()
    positions = inputs.get("position_ids")
    if not padded_to_multiple or positions is None:
        return total
    row = positions.reshape(-1).tolist()
    tail = next((i for i in range(len(row) - 1, -1, -1) if row[i] != 0), -1)  # last token of the last sequence
    return tail + 1 if tail >= 0 else total


def _log_probs_only(model) -> None:
    """Re-fit the model's fused LM head to compute log-probabilities only; fill the two metric fields
    TRL's compute_loss reads with zeros (cheap), which `log` then drops."""
    from trl.trainer.utils import add_fused_lm_head

    add_fused_lm_head(model, outputs=("log_probs",))
    fused = model.forward

    @functools.wraps(type(model).forward)
    def forward(*args, fused_lm_head: bool = False, **kwargs):
        outputs = fused(*args, fused_lm_head=fused_lm_head, **kwargs)
        if fused_lm_head:
            zero = outputs.log_probs.new_zeros(())
            outputs.entropy, outputs.is_top1 = zero, zero.bool()
        return outputs

    model.forward = forward


class LeanSFTTrainer(SFTTrainer):
    """SFTTrainer that computes no metric training does not use; everything else is TRL's."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from accelerate.utils import is_peft_model

        _log_probs_only(self.model.get_base_model() if is_peft_model(self.model) else self.model)

    def _track_num_input_tokens(self, inputs):
        """The run card's tokens_trained: every token fed, eos included even where pad = eos."""
        if self.args.include_num_input_tokens_seen == "non_padding" and "input_ids" in inputs:
            count = trained_token_count(inputs, padded_to_multiple=bool(self.args.pad_to_multiple_of))
            tokens = torch.as_tensor(count, device=self.args.device, dtype=torch.int64)
            self.state.num_input_tokens_seen += self.accelerator.gather(tokens).sum().item()
            return
        super()._track_num_input_tokens(inputs)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        for metrics in self._metrics.values():
            for name in UNUSED_METRICS:
                metrics.pop(name, None)
        super().log(logs, start_time)
