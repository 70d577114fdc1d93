"""judges: MT-Bench answers, judgments and comparison tables (evaluation side).

Reads only files the training side wrote (checkpoints); never imports training code.
Shared plumbing (errors, atomic files) comes from `align.common`, which imports no ML library.
"""
