"""align: post-training alignment workbench: SFT -> DPO -> MT-Bench, with continued pretraining, model
growth and judge-free measures.

This package holds the command line (cli.py), training (train/), model growth (grow/), series runs
(series/) and the plumbing both sides share (plumbing/: errors, files, locks, runcard, ...). The evaluation side is
the top-level package `judges`, which imports only that plumbing from here.
"""

__version__ = "0.1.0"
