"""What the report is made of: a table row (Row) and the whole study (Study). Its own module so the
report, its tables and its HTML page all import it and none of them imports another's command."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from judges.reporting.judge_free import JudgeFree


@dataclass
class Row:
    """One row of the table: a model and where it sits in the series."""
    name: str
    size: str = ""
    construction: str = ""
    valid: int = 0
    invalid: int = 0
    missing: int = 0
    score: float = math.nan
    ci: tuple[float, float] = (math.nan, math.nan)
    turn1: float = math.nan
    turn2: float = math.nan
    categories: dict[str, float] = field(default_factory=dict)
    per_question: dict[int, float] = field(default_factory=dict)
    baseline: str | None = None
    diff: object = None  # stats.PairedResult against `baseline`
    n_questions: int = 0  # questions with at least one valid score
    words: float = math.nan  # mean words per answer turn (needs --answer-file)
    length_adjusted: dict | None = None  # Δ vs baseline at equal answer length (judges/trust; needs answers)


@dataclass
class Study:
    """Everything the report's files are made from."""
    judge: str = "unknown"
    rows: list[Row] = field(default_factory=list)
    judged: dict = field(default_factory=dict)  # (model, question, turn) -> latest single judgment
    checks: dict = field(default_factory=dict)  # model -> judge check (check.judge_check)
    controls_seen: bool = False
    warning: str | None = None
    pair_judge: str = "unknown"
    pairs: list = field(default_factory=list)  # pair_report.PairRow
    pair_judged: dict = field(default_factory=dict)
    bias: dict | None = None
    questions: list[dict] = field(default_factory=list)
    answers: dict = field(default_factory=dict)  # model -> question_id -> answer record
    agreement: dict | None = None  # two judges' files given: their agreement (judges/trust)
    agreement_judges: tuple[str, str] = ("", "")
    free: JudgeFree = field(default_factory=JudgeFree)  # the judge-free measures (base models, held-out)
