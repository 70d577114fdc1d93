"""judges: MT-Bench answers, judgments and comparison tables, and the judge-free measures (evaluation side).

Reads only files the training side wrote (checkpoints); never imports training code. From `align` it
imports only the shared plumbing (align.plumbing.errors, files, file_set, locks, runcard, argtypes, redact,
packaged, extras, interrupt, outputs), which imports no ML library at import time; align.train, align.grow and
align.series are never imported here.
"""
