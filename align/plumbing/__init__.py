"""Shared plumbing: the one room that both align's wings (train, grow, series) and judges/ import.

errors (UserError, one-line exits), files (atomic writes, JSON lines), file_set (outputs swapped in whole),
locks (one writer per output), outputs (what an output may replace), redact (no secret in a file or log),
runcard (what every output records), argtypes (command-line values), interrupt (SIGTERM as Ctrl-C),
extras (optional features), packaged (the packaged SmolLM2), accounting (tokens and FLOPs).
No torch at import; nothing here imports align's wings or judges.
"""
