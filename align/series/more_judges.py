"""The judges after the first of a series' `judge:` list: each judges the entries the first judge judged,
into its own files, and gets its own report (its table, and its agreement with the first judge).

    <output_dir>/model_judgment/<name>/judgments.jsonl (+ judgments_pair.jsonl with mode: pairwise)
    <output_dir>/judges/<name>/table.md, table.csv, summary.json (`agreement`), report.html

Each is a series-wide stage named `judge:<name>` / `pairwise:<name>` / `report:<name>` (so `--only judge`
selects every judge), fingerprinted, resumed and skipped like the others. No reset: the judgment file
doubles as the judge's cache, keyed on the whole prompt, so a changed answer is judged again and an
unchanged one is not paid for twice.
"""

from __future__ import annotations

import json
from pathlib import Path

from align.plumbing.argtypes import option_args
from align.plumbing.errors import UserError
from align.plumbing.files import file_sha256
from align.series import stages
from align.series.manifest import fingerprint
from align.series.spec import Series
from align.series.stage_outputs import always, judgment_records, output_path, scratch_baseline
from align.series.stages import Stage, StageCommand, align_cli

FILE_NAMES = {"judge": "judgments.jsonl", "pairwise": "judgments_pair.jsonl"}  # as the first judge's


def judgment_file(series: Series, judge: dict, kind: str) -> Path:
    return series.output_dir / "model_judgment" / judge["name"] / FILE_NAMES[kind]


def report_dir(series: Series, judge: dict) -> Path:
    return series.output_dir / "judges" / judge["name"]


def judged_entries(series: Series) -> list[str]:
    """The entries whose first judge's single judgments are complete: the ones every later judge judges too."""
    return [e.name for e in series.models if stages.STAGES["judge"].verify(series, e.name) is not None]


def _kinds(series: Series) -> list[str]:
    return ["judge", "pairwise"] if series.judge.get("mode") == "pairwise" else ["judge"]


def _pair_entries(series: Series, names: list[str]) -> list[str]:
    return [n for n in names if scratch_baseline(series, n) in names]  # a match with both sides judged


def _rows_complete(series: Series, path: Path, names: list[str], pairwise: bool) -> str | None:
    """The fingerprint of the file's records about `names` once every (question, turn) of each is judged."""
    rows = judgment_records(series, path, pairwise)
    key = (lambda r: r.get("model_1")) if pairwise else (lambda r: r.get("model"))
    have = {(key(r), r.get("question_id"), r.get("turn")) for r in rows}
    if not names or any((name, qid, t) not in have
                        for name in names for qid, n in series.question_turns for t in range(1, n + 1)):
        return None
    return fingerprint(sorted(json.dumps(r, sort_keys=True) for r in rows if key(r) in names))


def _judge_stage(judge: dict, kind: str) -> Stage:
    pairwise = kind == "pairwise"

    def names(series: Series) -> list[str]:
        judged = judged_entries(series)
        return _pair_entries(series, judged) if pairwise else judged

    def command(series: Series, entry: str | None, **options) -> StageCommand:
        make = stages._pairwise_command if pairwise else stages._judge_command
        options.pop("batch", None)
        batch = names(series)
        if not batch:  # the runner starts this stage only once the first judge has judged an entry
            raise UserError(f"{kind}:{judge['name']}: nothing to judge yet: no entry's judgments by the first "
                            "judge are complete")
        return make(series, None, batch=batch, judge=judge, output=judgment_file(series, judge, kind), **options)

    def verify(series: Series, entry: str | None) -> str | None:
        return _rows_complete(series, judgment_file(series, judge, kind), names(series), pairwise)

    return Stage(f"{kind}:{judge['name']}", outputs=lambda series, entry: [judgment_file(series, judge, kind)],
                 verify=verify, command=command, resumable=always, per_entry=False,
                 unfingerprinted=("--parallel",))


def _report_files(series: Series, judge: dict) -> list[str]:
    """This judge's files first (its table), then the first judge's (their agreement)."""
    files = [judgment_file(series, judge, kind) for kind in _kinds(series)]
    files += [output_path(series, None, kind) for kind in _kinds(series)]
    return [str(f) for f in files if f.is_file()]


def _report_stage(judge: dict) -> Stage:
    def command(series: Series, entry: str | None, **_) -> StageCommand:
        answers = [output_path(series, e.name, "answer") for e in series.models]
        return StageCommand(align_cli(), [
            "mtbench", "report", "--input-file", *_report_files(series, judge),
            "--answer-file", *[str(p) for p in answers if p.is_file()],
            "--out-dir", str(report_dir(series, judge)), "--series", str(series.file),
            *option_args(series.answer, {"question_dir": "--question-dir"}),
            *map(str, series.report.get("extra_args") or [])])

    def verify(series: Series, entry: str | None) -> str | None:
        out = report_dir(series, judge)
        return file_sha256(out / "table.csv") if (out / "table.csv").is_file() and (out / "table.md").is_file() \
            else None

    # the judgment files' content is part of the fingerprint: new judgments of either judge redo the table
    return Stage(f"report:{judge['name']}", outputs=lambda series, entry: [report_dir(series, judge)],
                 verify=verify, command=command, per_entry=False,
                 inputs=lambda series, entry: _report_files(series, judge))


def judge_stages(series: Series, judge: dict) -> list[Stage]:
    """One later judge's stages, in order: its judgments (single, then pairwise), then its report."""
    return [*(_judge_stage(judge, kind) for kind in _kinds(series)), _report_stage(judge)]
