"""A series run: every entry through base -> sft -> dpo -> answer, one judge call, one report.

    spec.py      the series YAML, validated
    stages.py    what each stage is (outputs, verification, reset, command)
    runner.py    `align series`: skip what is current, resume what was interrupted
    manifest.py  per-stage records (state, fingerprints), the run lock
    estimate.py  --dry-run compute estimates
"""
