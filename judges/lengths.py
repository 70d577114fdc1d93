"""Answer-length distribution (tokens per turn), for the answer file's meta and the log."""

from __future__ import annotations


def length_summary(lengths: list[int], cap: int | None) -> dict:
    """median, p90 (nearest rank), max, and how many turns hit `cap` (the --max-new-token limit)."""
    if not lengths:
        return {"turns": 0}
    ordered = sorted(lengths)
    n = len(ordered)
    middle = n // 2
    median = ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    p90 = ordered[max(0, -(-9 * n // 10) - 1)]  # nearest rank: the ceil(0.9 n)-th smallest
    summary = {"turns": n, "median": median, "p90": p90, "max": ordered[-1]}
    if cap is not None:
        summary["at_cap"] = sum(length >= cap for length in ordered)
    return summary
