"""judges: MT-Bench answers, judgments and comparison tables (evaluation side).

Reads only files the training side wrote (checkpoints); never imports training code.
Shared plumbing (align.errors, align.files, align.runcard, align.packaged) imports no ML library;
align.train, align.grow and align.series are never imported here.
"""
