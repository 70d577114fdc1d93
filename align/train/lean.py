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

from trl import SFTTrainer

UNUSED_METRICS = ("entropy", "mean_token_accuracy")


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

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        for metrics in self._metrics.values():
            for name in UNUSED_METRICS:
                metrics.pop(name, None)
        super().log(logs, start_time)
