"""A series run: every entry through base -> [cpt] -> sft -> dpo -> answer and the judge-free measures,
each judge of the series (and a pairwise call), one report per judge; locally or as Slurm jobs.

    spec.py           the series YAML, validated (Series, Entry, load_series: what everyone imports); its
                      typed blocks in spec_blocks.py (`judge:` one or a list, `eval:`, `answer:`, every default),
                      the value checks both use in spec_values.py (${VAR}, keys, files, checkpoints, numbers);
                      entry_names.py: entry names that fit every file name; cluster.py: the `cluster:` block
    stage_kind.py     what a stage is: the protocol of a stage kind (outputs, verify, command, reset, resumable,
                      inputs, skip with its reason, resources, before_run) and the programs stages run
    stages.py         the stage table: prepare steps, the built-in stages, every later judge; in walk order
    checkpoint_stages.py  base (grow / init), cpt, sft, dpo: a checkpoint each
    eval_stages.py    the judge-free measures (`eval:`): lm-eval base evaluation, held-out loss and preferences
    judge_stages.py   answers, every judge (single, pairwise; first and later), every report
    stage_outputs.py  where each stage writes, the checkpoints a stage starts from, judgment file checks
    pretraining.py    the cpt stage's token budgets (chinchilla2x, staged) and the report's pretraining curves
    configs.py        what model an entry is, from config.json files and growth/shape specs (no weights)
    runner.py         `align series`: the command (walk.py walks the table; stage_run.py runs and records one
                      stage; finish.py: how the run ended, the --only rule; plan.py: the --dry-run plan)
    process.py        a stage as a subprocess (process group, log, heartbeat)
    manifest.py       per-stage records (state, fingerprints), the run lock
    preflight.py      --dry-run: the training checks of every recipe (eval_preflight.py: the eval inputs')
    estimate.py       --dry-run compute estimates
    slurm_submit.py   --submit slurm: a job per stage with its kind's resources, chained per entry
    requeue.py        a Slurm job warned of its end checkpoints its stage and requeues itself
    rendezvous.py     one node's `accelerate launch` in a Slurm allocation (rendezvous, world size)
"""
