"""A series run: every entry through base -> sft -> dpo -> answer, one judge call, one report.

    spec.py      the series YAML, validated
    stages.py    the stage table: what each stage writes, how it is verified, resumed, reset, and its command
    runner.py    `align series`: walks the table; skips what is current, resumes what was interrupted
    process.py   a stage as a subprocess (process group, log, heartbeat)
    manifest.py  per-stage records (state, fingerprints), the run lock
    estimate.py  --dry-run compute estimates
    pretraining.py  the cpt stage's token budgets (chinchilla2x, staged) and the report's pretraining curves
"""
