"""DPO's reference model: which kind a run uses (for the log and run card), and precomputing only
the rows that will be trained.

TRL 1.16's DPOTrainer keeps no separate reference model when LoRA is on (the reference is the policy
with its adapter switched off) or when `precompute_ref_log_probs` is set (the reference log-probs are
scored once, before training, and stored with the rows); otherwise it keeps a frozen copy of the
initial model. Precomputing scores every row it is given, so a run that `max_steps` limits to a
few batches would score the whole dataset: it is given only the rows those steps use.
"""

from __future__ import annotations

import logging

log = logging.getLogger("align")

REFERENCE_KINDS = {
    "precomputed": "reference log-probs precomputed once before training from the initial model{peft}; "
                   "no reference model kept during training",
    "adapter_disabled": "the policy with its LoRA adapter switched off (no copy kept)",
    "frozen_copy": "a frozen copy of the initial model (model_name_or_path)",
}


def reference_kind(model_args, training_args) -> dict[str, str]:
    """{kind, description} of the reference DPO compares against, as TRL 1.16 chooses it."""
    if training_args.precompute_ref_log_probs:
        kind = "precomputed"
    elif model_args.use_peft:
        kind = "adapter_disabled"
    else:
        kind = "frozen_copy"
    peft = " (adapter switched off)" if model_args.use_peft else ""
    return {"kind": kind, "description": REFERENCE_KINDS[kind].format(peft=peft)}


def rows_to_precompute(dataset, training_args):
    """With precompute_ref_log_probs and max_steps: the first rows those steps train on, and a note
    for the run card; else the dataset unchanged and None."""
    if not training_args.precompute_ref_log_probs or training_args.max_steps <= 0:
        return dataset, None
    trained = (training_args.max_steps * training_args.per_device_train_batch_size
               * training_args.gradient_accumulation_steps * training_args.world_size)
    # At least two scoring batches per process: under DeepSpeed ZeRO-3 a single one leaves its parameter
    # prefetch trace unfinished and the first training step fails (`IndexError: pop from an empty deque`;
    # the same happens with any dataset that small, e.g. 4 rows on 2 processes).
    batch = training_args.precompute_ref_batch_size or training_args.per_device_train_batch_size
    needed = max(trained, 2 * batch * training_args.world_size)
    if needed >= len(dataset):
        return dataset, None
    note = (f"precompute_ref_log_probs with max_steps {training_args.max_steps}: kept and scored the first "
            f"{needed} of {len(dataset)} rows ({training_args.max_steps} steps train {trained}; at least two "
            "scoring batches per process), not all of them")
    log.info(note)
    return dataset.select(range(needed)), note
