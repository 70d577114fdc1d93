"""The training stages in one table: stage -> TRL config class, trainer class, and the rows it reads.

Adding a stage means one entry here (plus its command module); stage.py, checks.py and launch.py
read this table instead of each keeping a switch.
"""

from __future__ import annotations

# stage -> (config class, trainer class, row kind); classes as "module:name", imported when asked for
STAGES = {
    "sft": ("trl:SFTConfig", "align.train.lean:LeanSFTTrainer", "chat"),
    "cpt": ("align.train.cpt:CPTConfig", "align.train.lean:LeanSFTTrainer", "text"),
    "dpo": ("trl:DPOConfig", "trl:DPOTrainer", "preference"),
}


def _load(spec: str):
    import importlib

    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def config_class(stage: str) -> type:
    return _load(STAGES[stage][0])


def trainer_class(stage: str) -> type:
    return _load(STAGES[stage][1])


def row_kind(stage: str) -> str:
    return STAGES[stage][2]


def stage_of(config_cls: type) -> str:
    """The stage a config class (or a subclass of one) belongs to: the most derived match (CPTConfig is an
    SFTConfig)."""
    matches = [stage for stage in STAGES if issubclass(config_cls, config_class(stage))]
    if not matches:
        raise KeyError(f"{config_cls.__name__} is not the config of any stage in {sorted(STAGES)}")
    return max(matches, key=lambda stage: len(config_class(stage).__mro__))
