"""Dataset mixtures in a recipe: the three forms people write, checked into one Mixture.

    dataset_mixture:                       # alignment-handbook
      datasets: [{id, config, split, columns, weight}]   # weight: fraction of THAT dataset's rows,
      test_split_size: 1000                               #   taken after a shuffle with `seed`
      seed: 0
    datasets: [{path, name, data_dir, data_files, split, columns, fraction}]   # TRL's CLI
    streaming: false                       # fraction: target share of the mixture, normalised,
    test_split_size: 0.05                  #   no dataset oversampled, first rows taken
    dataset_mixer: {id: weight}            # the handbook's older form: weight = first rows of each
    dataset_splits: [train_prefs, test_prefs]   #   train split; test splits are the eval set
    dataset_configs: [tiny]                #   one config name per dataset_mixer entry, in order

align.train.mixture reads them (one loader for all three).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from align.plumbing.errors import UserError

HANDBOOK_SOURCE_KEYS = {"id", "config", "split", "columns", "weight"}
TRL_SOURCE_KEYS = {"path", "name", "data_dir", "data_files", "split", "columns", "fraction"}


@dataclass
class MixtureArguments:
    """Recipe keys for dataset mixtures (mappings / lists; on the command line as JSON or YAML text)."""

    dataset_mixture: str | None = field(default=None, metadata={
        "help": "alignment-handbook mixture: {datasets: [{id, config, split, columns, weight}], "
                "test_split_size, seed}; weight = fraction of that dataset's rows"})
    datasets: str | None = field(default=None, metadata={
        "help": "TRL CLI mixture: [{path, name, data_dir, data_files, split, columns, fraction}]; "
                "fraction = normalised share of the mixture, no dataset oversampled"})
    streaming: bool = field(default=False, metadata={"help": "TRL CLI: stream the `datasets` sources"})
    test_split_size: float | None = field(default=None, metadata={
        "help": "TRL CLI: rows (>= 1) or fraction (< 1) of the mixture cut off as the eval set"})
    dataset_mixer: str | None = field(default=None, metadata={
        "help": "older alignment-handbook form {id: weight}, with dataset_splits"})
    dataset_splits: str | None = field(default=None, metadata={
        "help": "older alignment-handbook form: splits to load; names with 'train' train, with 'test' evaluate"})
    dataset_configs: str | None = field(default=None, metadata={
        "help": "older alignment-handbook form: the config name of each dataset_mixer entry, in the same order"})


@dataclass
class Source:
    path: str
    split: str = "train"
    name: str | None = None
    data_dir: str | None = None
    data_files: Any = None
    columns: list[str] | None = None
    weight: float | None = None      # handbook: fraction of this source's rows
    fraction: float | None = None    # TRL: share of the mixture
    role: str = "train"              # "eval": the older handbook form's test splits

    def label(self) -> str:
        return f"{self.path}[{self.split}]"


@dataclass
class Mixture:
    style: str                       # "handbook", "handbook-mixer" or "trl"
    sources: list[Source]
    seed: int = 0
    test_split_size: float | None = None
    streaming: bool = False
    key: str = "dataset_mixture"     # the recipe key it came from, for messages


def _structured(value: Any, key: str, source: str) -> Any:
    """A mapping/list key: kept as is from YAML, parsed from JSON/YAML text given on the command line."""
    if isinstance(value, str):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            raise UserError(f"{source}: key '{key}' is not valid JSON/YAML") from None
    return value


def _number(value: Any, where: str, lo: float, hi: float | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UserError(f"{where} expects a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise UserError(f"{where} expects a number, got {value!r}") from None
    if number < lo or (hi is not None and number > hi):
        raise UserError(f"{where} must be in [{lo}, {hi if hi is not None else 'inf'}], got {value!r}")
    return number


def _columns(value: Any, where: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise UserError(f"{where}.columns expects a list of column names, got {value!r}")
    return value


def _test_size(value: Any, where: str) -> float | int | None:
    if value is None:
        return None
    size = _number(value, where, 0, None)
    if size == 0:
        return None
    if size >= 1:
        if not size.is_integer():
            raise UserError(f"{where} is a row count when >= 1 (a fraction when < 1), got {value!r}")
        return int(size)
    return size


def _source_items(items: list, label: str, article: str, need: str,
                  allowed: set[str]) -> Iterator[tuple[str, dict]]:
    """(where, item) for each listed dataset, after the checks both mixture formats share: a mapping
    naming its dataset under `need`, with no key outside `allowed`."""
    for i, item in enumerate(items):
        where = f"{label}[{i}]"
        if not isinstance(item, dict) or not item.get(need):
            raise UserError(f"{where} needs {article} '{need}' (hub id, local file or directory)")
        extra = set(item) - allowed
        if extra:
            raise UserError(f"{where} has unknown key(s) {sorted(extra)} (expected {sorted(allowed)})")
        yield where, item


def _handbook(spec: Any, source: str) -> Mixture:
    if not isinstance(spec, dict) or not isinstance(spec.get("datasets"), list) or not spec["datasets"]:
        raise UserError(f"{source}: key 'dataset_mixture' expects {{datasets: [{{id, config, split, columns, "
                        "weight}], test_split_size, seed}")
    unknown = set(spec) - {"datasets", "test_split_size", "seed"}
    if unknown:
        raise UserError(f"{source}: dataset_mixture has unknown key(s) {sorted(unknown)} "
                        "(expected datasets, test_split_size, seed)")
    sources = []
    for where, item in _source_items(spec["datasets"], f"{source}: dataset_mixture.datasets", "an", "id",
                                     HANDBOOK_SOURCE_KEYS):
        weight = item.get("weight", 1.0)
        sources.append(Source(path=str(item["id"]), name=item.get("config"), split=str(item.get("split", "train")),
                              columns=_columns(item.get("columns"), where),
                              weight=None if weight is None else _number(weight, f"{where}.weight", 0, 1)))
    seed = spec.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"{source}: dataset_mixture.seed expects an integer, got {seed!r}")
    test_size = _test_size(spec.get("test_split_size"), f"{source}: dataset_mixture.test_split_size")
    return Mixture("handbook", sources, seed=seed, test_split_size=test_size)


def _trl(items: Any, source: str, streaming: bool, test_split_size: Any, seed: int) -> Mixture:
    if not isinstance(items, list) or not items:
        raise UserError(f"{source}: key 'datasets' expects a list of {{path, name, data_dir, data_files, split, "
                        "columns, fraction}")
    sources = []
    for where, item in _source_items(items, f"{source}: datasets", "a", "path", TRL_SOURCE_KEYS):
        fraction = item.get("fraction")
        sources.append(Source(path=str(item["path"]), name=item.get("name"), data_dir=item.get("data_dir"),
                              data_files=item.get("data_files"), split=str(item.get("split", "train")),
                              columns=_columns(item.get("columns"), where),
                              fraction=None if fraction is None else _number(fraction, f"{where}.fraction", 0, None)))
    given = [s.fraction is not None for s in sources]
    if any(given) and not all(given):
        raise UserError(f"{source}: datasets: set 'fraction' for every dataset or for none (as TRL requires)")
    if any(given) and streaming:
        raise UserError(f"{source}: datasets: 'fraction' cannot be used with streaming: true (as in TRL)")
    if any(given) and not sum(s.fraction for s in sources) > 0:
        raise UserError(f"{source}: datasets: the fractions add up to 0")
    return Mixture("trl", sources, seed=seed, streaming=streaming, key="datasets",
                   test_split_size=_test_size(test_split_size, f"{source}: test_split_size"))


def _mixer_configs(configs: Any, mixer: dict, source: str) -> list[str | None]:
    """dataset_configs: one config name per dataset_mixer entry (the handbook zips them), or none."""
    if configs is None:
        return [None] * len(mixer)
    if not isinstance(configs, list) or len(configs) != len(mixer) \
            or not all(c is None or isinstance(c, str) for c in configs):
        raise UserError(f"{source}: key 'dataset_configs' expects a list of {len(mixer)} config name(s), one per "
                        f"dataset_mixer entry, got {configs!r}")
    return configs


def _mixer(mixer: Any, splits: Any, source: str, seed: int, configs: Any = None) -> Mixture:
    if not isinstance(mixer, dict) or not mixer:
        raise UserError(f"{source}: key 'dataset_mixer' expects a mapping {{dataset id: weight}}")
    names = _mixer_configs(configs, mixer, source)
    splits = splits or ["train", "test"]
    if not isinstance(splits, list) or not all(isinstance(s, str) for s in splits):
        raise UserError(f"{source}: key 'dataset_splits' expects a list of split names")
    sources = []
    for split in splits:
        role = "train" if "train" in split else "eval" if "test" in split else None
        if role is None:
            raise UserError(f"{source}: dataset_splits: {split!r} names neither a train nor a test split")
        for (ds_id, weight), name in zip(mixer.items(), names, strict=True):
            w = _number(weight, f"{source}: dataset_mixer.{ds_id}", 0, 1)
            sources.append(Source(path=str(ds_id), split=split, name=name, weight=w if role == "train" else None,
                                  role=role))
    return Mixture("handbook-mixer", sources, seed=seed, key="dataset_mixer")


MIXTURE_KEYS = ("dataset_mixture", "datasets", "dataset_mixer")


def command_line_data_wins(data_args, cli_keys: dict) -> None:
    """`--dataset_name X` on the command line replaces a mixture the recipe file gives (the command
    line wins, as for every key); both in the same place: the mixture is used, as in TRL and the handbook."""
    if "dataset_name" in cli_keys:
        for key in MIXTURE_KEYS:
            if key not in cli_keys:
                setattr(data_args, key, None)
        if "dataset_mixer" not in cli_keys:  # its companions go with it
            for key in ("dataset_splits", "dataset_configs"):
                if key not in cli_keys:
                    setattr(data_args, key, None)


def mixture_from_args(data_args, source: str, seed: int) -> Mixture | None:
    """The recipe's mixture (at most one of the three forms), checked; None for a plain dataset_name."""
    given = [k for k in MIXTURE_KEYS if getattr(data_args, k, None) is not None]
    if len(given) > 1:
        raise UserError(f"{source}: keys {given} each describe the training data; keep one")
    if not given:
        for key in ("dataset_splits", "dataset_configs"):
            if getattr(data_args, key, None) is not None:
                raise UserError(f"{source}: key '{key}' goes with 'dataset_mixer'")
        return None
    key = given[0]
    value = _structured(getattr(data_args, key), key, source)
    if key == "dataset_mixture":
        mixture = _handbook(value, source)
    elif key == "datasets":
        mixture = _trl(value, source, data_args.streaming, data_args.test_split_size, seed)
    else:
        mixture = _mixer(value, _structured(data_args.dataset_splits, "dataset_splits", source), source, seed,
                         _structured(getattr(data_args, "dataset_configs", None), "dataset_configs", source))
    columns = [tuple(sorted(s.columns)) for s in mixture.sources if s.columns is not None]
    if len(set(columns)) > 1:
        raise UserError(f"{source}: {key}: every dataset must select the same columns, got {sorted(set(columns))}")
    return mixture
