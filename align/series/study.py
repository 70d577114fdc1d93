"""The study table the report reads (`align mtbench report --study FILE`): one entry per post-trained model of
the series, with its size, its construction and its baseline (the same-size scratch entry it is compared with).

    {"entries": [{"name": "2b-expanded", "size": "2B", "construction": "expanded", "baseline": "2b-scratch"},
                 {"name": "2b-scratch", "size": "2B", "construction": "scratch", "baseline": null}, ...]}

The series runner writes it into its output folder just before a report runs; `align mtbench report --series
FILE` builds the same table from a series file's `models:` (align/cli.py). The baseline rule lives here only
(stage_outputs.same_size_scratch); the report reads the table and never the series file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from align.plumbing.errors import UserError
from align.plumbing.files import atomic_write_json, read_yaml_mapping
from align.series.spec import Series
from align.series.stage_outputs import same_size_scratch

STUDY_FILE = "study.json"


@dataclass(frozen=True)
class StudyEntry:
    name: str
    size: str
    construction: str


def study_table(entries: list[StudyEntry]) -> dict:
    """The table of these entries (post-trained ones only: a pretrained-only ancestor has nothing to judge),
    each with its baseline among them."""
    return {"entries": [{"name": e.name, "size": e.size, "construction": e.construction,
                         "baseline": same_size_scratch(entries, e)} for e in entries]}


def series_study(series: Series) -> dict:
    return study_table([StudyEntry(e.name, e.size, e.construction) for e in series.models if e.post_train])


def write_study(series: Series) -> Path:
    """<output_dir>/study.json, the table a report of this series reads (written when a report is to run)."""
    path = series.output_dir / STUDY_FILE
    atomic_write_json(path, series_study(series))
    return path


def study_of_series_file(path: str) -> dict:
    """The study table of a series file's `models:` (name, size, construction; `post_train: false` entries left
    out), for `align mtbench report --series FILE`; the rest of the file is not read."""
    models = read_yaml_mapping(path, "series file").get("models")
    if not isinstance(models, list) or not models:
        raise UserError(f"{path}: expected a `models:` list")
    entries = []
    for i, entry in enumerate(models):
        if not isinstance(entry, dict) or not all(entry.get(k) not in (None, "") for k in
                                                  ("name", "size", "construction")):
            raise UserError(f"{path}: models[{i}] needs name, size and construction")
        if entry.get("post_train") is False:
            continue
        entries.append(StudyEntry(str(entry["name"]), str(entry["size"]), str(entry["construction"])))
    return study_table(entries)
