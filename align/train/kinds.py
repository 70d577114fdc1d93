"""The training kinds in one table: what SFT, CPT and DPO each do their own way, so the shared run
(stage.py), the recipe parser (recipe.py), the checks and the launcher read it instead of keeping a switch.

A kind is its TRL config class, its trainer class, the rows it reads, and a hook at each point of a run
where the kinds differ, called by stage.py in this order:

    apply_budget      after the recipe is parsed: a budget in tokens -> max_steps (CPT)
    load_tokenizer    the checkpoint's tokenizer, with the chat template (SFT, DPO) or as it is (CPT)
    prepare_trainer   the trainer class for these rows (CPT: token shards get a block trainer)
    check_rows        before the model loads: max_length keeps something to train in some row (SFT, DPO)
    prepare_rows      the last change to the rows, and the run card's extras (DPO: reference, rows to
                      precompute; CPT: the budget and packing)
    check_data_use    once TRL prepared the rows: how the run uses its data (CPT: a budget that repeats it)

Adding a kind means one class and one entry here, plus its command module. Classes are named
"module:name" and every hook imports what it needs when called: importing this table imports no TRL
(`align --help` stays fast).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

log = logging.getLogger("align")


def _load(spec: str) -> type:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class TrainingKind:
    """What every kind has; each hook's default is "nothing to do here"."""

    name: str
    config: str  # its TRL config class, "module:name"
    trainer: str  # its trainer class, "module:name"
    rows: str  # the rows it reads (align.train.data: chat, preference, text)
    trained: str = "answer"  # a row's trained tokens, as a max_length refusal names them (SFT: assistant)

    @property
    def config_class(self) -> type:
        return _load(self.config)

    @property
    def trainer_class(self) -> type:
        return _load(self.trainer)

    def apply_budget(self, training_args, resolved: dict, given: set[str]) -> str | None:
        """Turn a budget the recipe gives into training arguments; the note saying so, or None."""
        return None

    def load_tokenizer(self, model_args, training_args, data_args):
        raise NotImplementedError

    def prepare_trainer(self, train, tokenizer, model_args, training_args) -> type:
        """The trainer class these rows train with."""
        return self.trainer_class

    def check_rows(self, dataset, tokenizer, training_args) -> None:
        """Refuse, before the model loads, rows the trainer would drop to nothing."""

    def prepare_rows(self, train, model_args, training_args) -> dict:
        """The last change to the training rows before the trainer gets them; returns the run card's extras."""
        return {}

    def check_data_use(self, trainer, train, tokenizer, training_args, resolved: dict, given: set[str],
                       extra: dict) -> None:
        """Once the trainer prepared the rows: check how the run uses them, said in `extra` (the run card's)."""


class SFT(TrainingKind):
    """Chat rows (`messages`); with assistant_only_loss only the assistant's tokens are trained."""

    def load_tokenizer(self, model_args, training_args, data_args):
        from align.train.tokenizer import chat_tokenizer

        tokenizer = chat_tokenizer(model_args, training_args, assistant_only_loss=training_args.assistant_only_loss,
                                   chat_template_path=training_args.chat_template_path,
                                   chat_template=data_args.chat_template)
        training_args.chat_template_path = None  # applied above (to the tokenizer that gets saved)
        return tokenizer

    def check_rows(self, dataset, tokenizer, training_args) -> None:
        from align.train.values import check_max_length_keeps_answers

        if training_args.assistant_only_loss:  # else every token is trained: a prompt is trained too
            check_max_length_keeps_answers(dataset, tokenizer, training_args, "messages", self.trained)


class DPO(TrainingKind):
    """Preference rows (`chosen` / `rejected` sharing the prompt), compared against a reference model."""

    def load_tokenizer(self, model_args, training_args, data_args):
        from align.train.tokenizer import chat_tokenizer

        return chat_tokenizer(model_args, training_args, assistant_only_loss=False, chat_template_path=None,
                              chat_template=data_args.chat_template)

    def check_rows(self, dataset, tokenizer, training_args) -> None:
        from align.train.values import check_max_length_keeps_answers

        check_max_length_keeps_answers(dataset, tokenizer, training_args, "chosen", self.trained)

    def prepare_rows(self, train, model_args, training_args) -> dict:
        from align.train.reference import reference_kind, rows_to_precompute

        extra = {"reference": reference_kind(model_args, training_args)}
        train.dataset, extra["precompute_note"] = rows_to_precompute(train.dataset, training_args)
        log.info("DPO reference: %s", extra["reference"]["description"])
        return extra


class CPT(TrainingKind):
    """Plain text (or token shards), packed into blocks, every token trained."""

    def apply_budget(self, training_args, resolved: dict, given: set[str]) -> str | None:
        from align.train.cpt_parts import apply_token_budget

        return apply_token_budget(training_args, resolved, given)

    def load_tokenizer(self, model_args, training_args, data_args):
        from align.train.tokenizer import text_tokenizer

        return text_tokenizer(model_args, training_args)  # plain text: no chat template

    def prepare_trainer(self, train, tokenizer, model_args, training_args) -> type:
        from align.train.token_blocks import prepare_shard_training

        # token shards: ready blocks (text rows: unchanged)
        return prepare_shard_training(train, tokenizer, model_args.model_name_or_path, training_args,
                                      self.trainer_class)

    def prepare_rows(self, train, model_args, training_args) -> dict:
        from align.train.cpt_parts import run_card_extra

        return run_card_extra(training_args)

    def check_data_use(self, trainer, train, tokenizer, training_args, resolved: dict, given: set[str],
                       extra: dict) -> None:
        from align.train.cpt_parts import data_use
        from align.train.values import key_source

        # tokens once through, passes, truncation: said; a budget that repeats the data refused
        budget = "max_tokens" if training_args.max_tokens else "max_steps"
        extra["cpt"]["data_use"] = data_use(trainer, train.dataset, tokenizer, training_args,
                                            key_source(budget, resolved, given))


KINDS: dict[str, TrainingKind] = {
    "sft": SFT("sft", "trl:SFTConfig", "align.train.lean:LeanSFTTrainer", "chat", trained="assistant"),
    "cpt": CPT("cpt", "align.train.cpt_config:CPTConfig", "align.train.lean:LeanSFTTrainer", "text"),
    "dpo": DPO("dpo", "trl:DPOConfig", "trl:DPOTrainer", "preference"),
}


def kind_of(config_cls: type) -> TrainingKind:
    """The kind a config class (or a subclass of one) belongs to: the most derived match (CPTConfig is an
    SFTConfig)."""
    matches = [kind for kind in KINDS.values() if issubclass(config_cls, kind.config_class)]
    if not matches:
        raise KeyError(f"{config_cls.__name__} is not the config of any kind in {sorted(KINDS)}")
    return max(matches, key=lambda kind: len(kind.config_class.__mro__))
