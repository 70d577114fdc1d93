"""What continued pretraining adds to a training run: the token budget turned into steps, the run card's CPT
part, and how the run uses its data (the CPT entry of align/train/kinds.py calls them; its config is
align/train/cpt_config.py, its tokenizer align/train/tokenizer.py's text_tokenizer)."""

from __future__ import annotations

import math

from align.plumbing.errors import UserError
from align.train.values import key_source


def tokens_per_step(training_args) -> int:
    """Tokens one optimizer step trains on when every block is full: global batch x max_length."""
    return (training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
            * training_args.world_size * training_args.max_length)


def apply_token_budget(training_args, resolved: dict, cli_keys: set[str]) -> str | None:
    """`max_tokens` -> `max_steps` (rounded up). Returns the note saying so, or None without a budget."""
    budget = getattr(training_args, "max_tokens", None)
    if budget is None:
        return None
    where = key_source("max_tokens", resolved, cli_keys)
    if budget < 1:
        raise UserError(f"{where}: max_tokens must be at least 1, got {budget}")
    if training_args.max_steps != -1:
        raise UserError(f"{where}: max_tokens ({budget}) and max_steps ({training_args.max_steps}) both set the "
                        "length of training: keep one")
    if training_args.max_length is None:
        raise UserError(f"{where}: max_tokens needs max_length (the block size packing fills)")
    per_step = tokens_per_step(training_args)
    training_args.max_steps = math.ceil(budget / per_step)
    return (f"max_tokens: {budget} -> max_steps: {training_args.max_steps} ({per_step} tokens per step = "
            f"{training_args.per_device_train_batch_size} per device x {training_args.gradient_accumulation_steps} "
            f"accumulation x {training_args.world_size} processes x max_length {training_args.max_length})")


def truncates(training_args) -> bool:
    """TRL cuts each document at max_length without packing and with `bfd` packing (bfd_split splits it,
    wrapped runs it on into the next block)."""
    return training_args.max_length is not None and (
        not training_args.packing or training_args.packing_strategy == "bfd")


def run_card_extra(training_args) -> dict:
    """What a CPT run card adds: the token budget and how documents became blocks."""
    cut = truncates(training_args)
    keeps_end = not training_args.packing and training_args.truncation_mode == "keep_end"  # bfd keeps the start
    cut_note = (f"; a document longer than max_length {training_args.max_length} is cut to it: "
                + ("its start is not trained (truncation_mode keep_end)" if keeps_end else
                   "the rest of it, its eos included, is not trained"))
    return {"cpt": {"max_tokens": training_args.max_tokens, "tokens_per_step": tokens_per_step(training_args),
                    "text_column": training_args.text_column, "packing": training_args.packing,
                    "packing_strategy": training_args.packing_strategy if training_args.packing else None,
                    "block_length": training_args.max_length,
                    "allow_repeat_data": training_args.allow_repeat_data,
                    "loss": "every token (labels = input ids; eos appended to each document"
                            + (cut_note if cut else "") + ")"}}


def _tokens_in(dataset, block_length: int | None) -> int:
    """Tokens in the dataset the trainer iterates, read an Arrow batch at a time (no Python list of rows)."""
    if hasattr(dataset, "with_format") and "input_ids" in getattr(dataset, "column_names", ()):
        import pyarrow.compute as pc

        return sum(int(pc.sum(pc.list_value_length(batch.column("input_ids"))).as_py() or 0)
                   for batch in dataset.with_format("arrow").iter(batch_size=10_000))
    return len(dataset) * (block_length or 0)  # token shards: full blocks only


def truncation(rows, tokenizer, max_length: int) -> dict:
    """Documents TRL cuts at max_length and the tokens it drops, from each text row tokenized as TRL does
    (eos appended, no special tokens), a batch at a time."""
    eos, documents, cut, dropped = tokenizer.eos_token, 0, 0, 0
    for batch in rows.iter(batch_size=1000):
        texts = [t if t.endswith(eos) else t + eos for t in batch["text"]]
        for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
            documents += 1
            if len(ids) > max_length:
                cut, dropped = cut + 1, dropped + len(ids) - max_length
    return {"documents": documents, "documents_truncated": cut, "tokens_dropped_by_truncation": dropped}


def data_use(trainer, rows, tokenizer, training_args, where: str) -> dict:
    """How the run uses its data, for the log and the run card: tokens once through, steps one pass takes,
    passes the run makes, and (bfd / no packing) what truncation drops. A budget (max_tokens or max_steps)
    the data cannot fill once is refused unless `allow_repeat_data: true`: it would repeat the data."""
    import logging

    log = logging.getLogger("align")
    t = training_args
    if not hasattr(trainer.train_dataset, "__len__"):  # a stream (text_stream.py): not read ahead, not counted
        return {"streamed": True, "steps": t.max_steps, "note": "a stream is read as training goes: its size is "
                "not known ahead; max_tokens/max_steps end the run"}
    blocks = len(trainer.train_dataset)
    batches = math.ceil(math.ceil(blocks / t.per_device_train_batch_size) / t.world_size)  # per process
    steps_per_pass = max(1, math.ceil(batches / t.gradient_accumulation_steps))
    steps = t.max_steps if t.max_steps > 0 else math.ceil(t.num_train_epochs * steps_per_pass)
    use = {"tokens_in_data": _tokens_in(trainer.train_dataset, t.max_length), "blocks": blocks,
           "steps_per_pass": steps_per_pass, "steps": steps, "passes": round(steps / steps_per_pass, 3)}
    if t.max_steps > steps_per_pass:
        what = f"max_tokens {t.max_tokens} ({t.max_steps} steps)" if t.max_tokens else f"{t.max_steps} steps"
        said = (f"{what} is {use['passes']}x the data: {use['tokens_in_data']} tokens in {blocks} blocks fill "
                f"{steps_per_pass} step(s) once")
        if not t.allow_repeat_data:
            raise UserError(f"{where}: {said}; the data would be repeated: set allow_repeat_data: true to repeat "
                            "it deliberately, or give more data or a smaller budget")
        log.warning("%s: repeated, as allow_repeat_data asks", said)
    elif use["passes"] > 1:
        log.info("num_train_epochs %s: the data is trained %sx", t.num_train_epochs, use["passes"])
    use["repeated"] = use["passes"] > 1
    if truncates(t) and "text" in getattr(rows, "column_names", ()):
        use.update(truncation(rows, tokenizer, t.max_length))
        if use["documents_truncated"]:
            strategy = f"packing_strategy {t.packing_strategy}" if t.packing else "packing false"
            log.warning("%s cuts %d of %d documents at max_length %d: %d tokens are not trained (wrapped or "
                        "bfd_split packing keep them)", strategy, use["documents_truncated"], use["documents"],
                        t.max_length, use["tokens_dropped_by_truncation"])
    return use
