"""A series run: every entry through base -> [cpt] -> sft -> dpo -> answer and the judge-free measures,
each judge of the series (and a pairwise call), one report per judge; locally or as Slurm jobs.

    spec.py           the series YAML, validated (judge_list.py: `judge:` as one mapping or a list;
                      entry_names.py: entry names that fit every file name; cluster.py: the `cluster:` block)
    stages.py         the stage table: what each stage writes, how it is verified, resumed, reset, and its command
    stage_outputs.py  where each stage writes and how the runner tells it is done, resumable or reset
    eval_stages.py    the judge-free stages (`eval:`): lm-eval base evaluation, held-out loss and preferences
    more_judges.py    the judges after the first: their judgments and reports
    pretraining.py    the cpt stage's token budgets (chinchilla2x, staged) and the report's pretraining curves
    configs.py        what model an entry is, from config.json files and growth/shape specs (no weights)
    runner.py         `align series`: walks the table; skips what is current, resumes what was interrupted
    process.py        a stage as a subprocess (process group, log, heartbeat)
    manifest.py       per-stage records (state, fingerprints), the run lock
    preflight.py      --dry-run: the training checks of every recipe (eval_preflight.py: the eval inputs')
    estimate.py       --dry-run compute estimates
    slurm_submit.py   --submit slurm: a job per stage with its kind's resources, chained per entry
    requeue.py        a Slurm job warned of its end checkpoints its stage and requeues itself
    rendezvous.py     one node's `accelerate launch` in a Slurm allocation (rendezvous, world size)
"""
