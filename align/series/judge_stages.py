"""The stages after training: the MT-Bench answers, every judge of the series' `judge:` list, every report.

    <output_dir>/<entry>/model_answer/<entry>.jsonl                  answer (one per entry)
    <output_dir>/model_judgment/judgments.jsonl (+ judgments_pair.jsonl with mode: pairwise)   the first judge
    <output_dir>/table.md, table.csv, ... report.html                report (the first judge's table)
    <output_dir>/model_judgment/<name>/judgments.jsonl (+ _pair)     judge:<name> / pairwise:<name>, a later judge
    <output_dir>/judges/<name>/table.md, ... summary.json            report:<name> (with its agreement)

The first judge judges entry by entry (one command for every entry that needs it); each later judge judges
the entries the first one judged, in one series-wide stage, and its report waits for its judgments
(`needs`). `--only judge` selects every judge. No reset of a pairwise or a later judge's file: the judgment
file doubles as the judge's cache, keyed on the whole prompt, so a changed answer is judged again and an
unchanged one is not paid for twice.
"""

from __future__ import annotations

import json
from pathlib import Path

from align.plumbing.argtypes import option_args
from align.plumbing.errors import UserError
from align.plumbing.files import atomic_write_jsonl, file_sha256, read_jsonl
from align.plumbing.locks import output_lock
from align.series import eval_stages, pretraining
from align.series.checkpoint_stages import remove_output
from align.series.manifest import fingerprint
from align.series.spec import JudgeConfig, Series, resolve_packaged
from align.series.stage_kind import Skip, Stage, StageCommand, align_cli
from align.series.stage_outputs import (
    JUDGMENT_FILES,
    answers_verified,
    every_turn,
    judgment_records,
    judgments_verified,
    output_path,
    scratch_baseline,
)
from align.series.study import STUDY_FILE, write_study
from judges.judging.controls import control_of
from judges.records import failed_list_path


def judge_kinds(series: Series) -> list[str]:
    """The judgment stages of one judge: single scores, and the pairwise matches with `mode: pairwise`."""
    return ["judge", "pairwise"] if series.judge.mode == "pairwise" else ["judge"]


def judge_config(series: Series, name: str | None) -> JudgeConfig:
    """The `judge:` mapping of the first judge (None), or of the later judge called `name`."""
    return series.judge if name is None else next(j for j in series.more_judges if j.name == name)


def judgment_file(series: Series, judge: JudgeConfig, kind: str) -> Path:
    """A later judge's judgment file, beside the first judge's under its own folder."""
    return series.output_dir / "model_judgment" / judge.name / JUDGMENT_FILES[kind]


def report_dir(series: Series, judge: JudgeConfig) -> Path:
    return series.output_dir / "judges" / judge.name


def answer_files(series: Series) -> list[str]:
    """Every entry's answer file that exists: the report shows answer lengths and the answers."""
    return [str(p) for p in (output_path(series, e.name, "answer") for e in series.models) if p.is_file()]


def judged_entries(series: Series) -> list[str]:
    """The entries whose first judge's single judgments are complete: the ones every later judge judges too."""
    return [e.name for e in series.models if judgments_verified(series, e.name) is not None]


class AnswerStage(Stage):
    """`align mtbench answer` with the entry's DPO model; it skips the questions it already answered."""

    name = "answer"
    resources = "answer"

    def outputs(self, series: Series, entry: str | None) -> list[Path]:
        return [output_path(series, entry, "answer")]

    def verify(self, series: Series, entry: str | None) -> str | None:
        return answers_verified(series, entry)

    def resumable(self, series: Series, entry: str | None) -> bool:
        return True

    def reset(self, series: Series, entry: str | None) -> None:
        remove_output(output_path(series, entry, "answer"))

    def command(self, series: Series, entry: str | None, **_) -> StageCommand:
        a = series.answer
        args = ["mtbench", "answer", "--model-path", str(output_path(series, entry, "dpo")), "--model-id", entry,
                "--answer-file", str(output_path(series, entry, "answer")),
                *option_args(vars(a), {"question_begin": "--question-begin", "question_end": "--question-end",
                                 "max_new_token": "--max-new-token", "backend": "--backend",
                                 "batch_size": "--batch-size", "question_dir": "--question-dir"}),
                *map(str, a.extra_args + (series.entry(entry).answer.get("extra_args") or []))]
        return StageCommand(align_cli(), args)


class JudgeStage(Stage):
    """Single scores (`judge`) or pairwise matches (`pairwise`: each entry against its same-size scratch entry,
    both orders: FastChat's pairwise-baseline) by the first judge (`judge_name` None: per entry, batched) or
    by a later judge (series-wide: every entry the first judge judged)."""

    unfingerprinted = ("--parallel",)

    def __init__(self, kind: str, judge_name: str | None = None):
        self.kind, self.judge_name = kind, judge_name
        self.name = kind if judge_name is None else f"{kind}:{judge_name}"
        self.per_entry = self.batched = judge_name is None

    @property
    def pairwise(self) -> bool:
        return self.kind == "pairwise"

    def file(self, series: Series) -> Path:
        if self.judge_name is None:
            return output_path(series, None, self.kind)
        return judgment_file(series, judge_config(series, self.judge_name), self.kind)

    def outputs(self, series: Series, entry: str | None) -> list[Path]:
        return [self.file(series)]

    def resumable(self, series: Series, entry: str | None) -> bool:
        return True  # the judge skips what it already judged

    def later_names(self, series: Series) -> list[str]:
        """A later judge's entries: those the first judge judged (pairwise: the matches with both sides judged)."""
        judged = judged_entries(series)
        return [n for n in judged if scratch_baseline(series, n) in judged] if self.pairwise else judged

    def verify(self, series: Series, entry: str | None) -> str | None:
        if self.judge_name is not None:
            return self.later_verified(series)
        if not self.pairwise:
            return judgments_verified(series, entry)
        # every match of entry vs its scratch judged; with the entry's single judgments (the report reads both)
        baseline = scratch_baseline(series, entry)
        rows = [r for r in judgment_records(series, self.file(series), pairwise=True)
                if (r.get("model_1"), r.get("model_2")) == (entry, baseline)]
        if not every_turn(series, {(r.get("question_id"), r.get("turn")) for r in rows}):
            return None
        return fingerprint(judgments_verified(series, entry), sorted(json.dumps(r, sort_keys=True) for r in rows))

    def later_verified(self, series: Series) -> str | None:
        """The fingerprint of the file's records about its entries once every (question, turn) of each is judged."""
        names = self.later_names(series)
        rows = judgment_records(series, self.file(series), self.pairwise)
        key = (lambda r: r.get("model_1")) if self.pairwise else (lambda r: r.get("model"))
        have = {(key(r), r.get("question_id"), r.get("turn")) for r in rows}
        if not names or any((name, qid, t) not in have
                            for name in names for qid, n in series.question_turns for t in range(1, n + 1)):
            return None
        return fingerprint(sorted(json.dumps(r, sort_keys=True) for r in rows if key(r) in names))

    def skip(self, series: Series, entry: str | None) -> Skip | None:
        """An entry without a pairwise match (single mode, a scratch entry, no scratch of its size) has nothing
        to run; its output is its single judgments."""
        if not self.pairwise or self.judge_name is not None or scratch_baseline(series, entry):
            return None
        return Skip("not needed", fingerprint("no match", judgments_verified(series, entry)))

    def inputs(self, series: Series, entry: str | None) -> list[str]:
        """Pairwise: the scratch entry's answers are half of every match: their content is part of the
        fingerprint."""
        baseline = scratch_baseline(series, entry) if self.pairwise and self.judge_name is None else None
        path = output_path(series, baseline, "answer") if baseline else None
        return [str(path)] if path is not None and path.is_file() else []

    def reset(self, series: Series, entry: str | None) -> None:
        """The first judge's single file is shared: drop this entry's and its control's rows (and failures), keep
        the rest."""
        if self.pairwise or self.judge_name is not None:
            return
        path = self.file(series)
        with output_lock(path, "stage reset: judgments"):  # a judge appending meanwhile would lose its records
            for file in (path, failed_list_path(path)):
                if file.is_file():
                    keep = [r for r in read_jsonl(file) if r.get("model") not in (entry, control_of(entry))]
                    atomic_write_jsonl(file, keep)

    def command(self, series: Series, entry: str | None, *, resolve: bool = True, batch: list[str] | None = None,
                **_) -> StageCommand:
        """Single scores, with the judge check's @mismatched controls unless `controls: false`; pairwise with
        `pair_prefill`, not `prefill`: a score prefill ("Rating: [[") fits no [[A]]/[[B]] verdict."""
        j = judge_config(series, self.judge_name)
        if self.judge_name is None:
            names = batch or [entry]
        else:
            names = self.later_names(series)
            if not names:  # the runner starts this stage only once the first judge has judged an entry
                raise UserError(f"{self.name}: nothing to judge yet: no entry's judgments by the first judge are "
                                "complete")
        model = resolve_packaged(str(j.model)) if resolve else str(j.model)
        head = ["mtbench", "judge"]
        if self.pairwise:
            pairs = [(name, scratch_baseline(series, name)) for name in names]
            answers = list(dict.fromkeys(str(output_path(series, n, "answer")) for pair in pairs for n in pair))
            head += ["--mode", "pairwise-baseline"]
            flags = [arg for pair in pairs for arg in ("--pair", *pair)]
            prefill = "pair_prefill"
        else:
            answers = [str(output_path(series, name, "answer")) for name in names]
            flags = ["--controls"] if j.controls else []
            prefill = "prefill"
        args = [*head, "--answer-file", *answers, "--judge-model", model, "--output-file", str(self.file(series)),
                *flags, *option_args(vars(j), {"base_url": "--base-url", "parallel": "--parallel",
                                         "max_tokens": "--max-tokens", prefill: "--judge-prefill"}),
                *option_args(vars(series.answer), {"question_dir": "--question-dir"}), *map(str, j.extra_args)]
        return StageCommand(align_cli(), args)


class ReportStage(Stage):
    """`align mtbench report`: the first judge's table (`judge_name` None) from its judgment files, every entry's
    answers, the judge-free measures and the pretraining curves; or a later judge's table and its agreement with
    the first judge."""

    per_entry = False

    def __init__(self, judge_name: str | None = None, needs: tuple[str, ...] = ()):
        self.judge_name, self.needs = judge_name, needs
        self.name = "report" if judge_name is None else f"report:{judge_name}"

    def folder(self, series: Series) -> Path:
        if self.judge_name is None:
            return output_path(series, None, "report")
        return report_dir(series, judge_config(series, self.judge_name))

    def outputs(self, series: Series, entry: str | None) -> list[Path]:
        return [self.folder(series)]

    def verify(self, series: Series, entry: str | None) -> str | None:
        out = self.folder(series)
        table = out / "table.csv"
        return file_sha256(table) if table.is_file() and (out / "table.md").is_file() else None

    def judgment_files(self, series: Series) -> list[str]:
        """The first judge's files; a later judge's: its own first (its table), then the first judge's (their
        agreement)."""
        files = [output_path(series, None, kind) for kind in judge_kinds(series)]
        if self.judge_name is not None:
            judge = judge_config(series, self.judge_name)
            files = [judgment_file(series, judge, kind) for kind in judge_kinds(series)] + files
        return [str(f) for f in files if f.is_file()]

    def inputs(self, series: Series, entry: str | None) -> list[str]:
        # a later judge's: new judgments of either judge redo its table
        return [] if self.judge_name is None else self.judgment_files(series)

    def before_run(self, series: Series, entry: str | None) -> None:
        """What the report reads that the series writes, written when the report is about to run: the study table
        (the entries, their sizes, constructions and baselines) and, with cpt stages, the pretraining curves'
        sources."""
        write_study(series)
        if self.judge_name is None:
            pretraining.write_curve_sources(series)

    def command(self, series: Series, entry: str | None, **_) -> StageCommand:
        args = ["mtbench", "report", "--input-file", *self.judgment_files(series), "--answer-file",
                *answer_files(series), "--out-dir", str(self.folder(series)),
                "--study", str(series.output_dir / STUDY_FILE),
                *option_args(vars(series.answer), {"question_dir": "--question-dir"})]
        if self.judge_name is None:
            curves = pretraining.curve_sources_path(series)
            args += [*eval_stages.report_args(series), *(["--pretraining", str(curves)] if curves else [])]
        return StageCommand(align_cli(), args + [*map(str, series.report.get("extra_args") or [])])


def later_judge_stages(series: Series, judge: JudgeConfig) -> list[Stage]:
    """One later judge's stages, in order: its judgments (single, then pairwise), then its report."""
    judging = [JudgeStage(kind, judge.name) for kind in judge_kinds(series)]
    return [*judging, ReportStage(judge.name, needs=tuple(st.name for st in judging))]
