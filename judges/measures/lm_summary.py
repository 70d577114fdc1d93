"""`base_eval.json`: lm-eval's numbers in a compact form, with per-item values for paired comparisons.

    {"measures": {"arc_easy/acc": {"value": 0.71, "stderr": 0.009, "n": 2376}, ...},
     "items": {"arc_easy/acc": {"0": 1.0, "1": 0.0, ...},
               "wikitext/word_perplexity": {"0": {"loglikelihood": -1834.2, "words": 1201}, ...}}}

Values are read from lm-eval's results and its logged samples, never recomputed. Items are keyed by
lm-eval's doc id (the document's index in the task's split), the same for every model evaluated on
the same task. A metric under a filter other than `none` is named `task/metric,filter`. An item is what
lm-eval logged for the document: 0/1 for acc / acc_norm, {loglikelihood, words|bytes} for word and byte
perplexity and bits per byte, the target's loglikelihood for lambada's token `perplexity`.
"""

from __future__ import annotations

from judges.stats import finite_or_none

# Perplexity-like metrics log (loglikelihood, count) per document; the count's unit by metric.
PAIR_UNITS = {"word_perplexity": "words", "byte_perplexity": "bytes", "bits_per_byte": "bytes"}


def measure_name(task: str, metric: str, filter_name: str) -> str:
    return f"{task}/{metric}" if filter_name == "none" else f"{task}/{metric},{filter_name}"


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):  # lm-eval writes "N/A" for a stderr it does not compute
        return None
    return finite_or_none(number)


def measures(results: dict) -> dict[str, dict]:
    """{task/metric: {value, stderr, n}} from lm-eval's `results` (its `n-samples` gives n)."""
    out = {}
    for task, scores in results.get("results", {}).items():
        n = results.get("n-samples", {}).get(task, {}).get("effective")
        for key, value in scores.items():
            if "," not in key or "_stderr," in key:
                continue
            metric, filter_name = key.split(",", 1)
            stderr = scores.get(f"{metric}_stderr,{filter_name}")
            out[measure_name(task, metric, filter_name)] = {"value": _number(value), "stderr": _number(stderr),
                                                            "n": n}
    return out


def _item_value(metric: str, logged):
    """One document's logged value: a number, or {loglikelihood, words|bytes} for perplexities."""
    if metric in PAIR_UNITS and isinstance(logged, (list, tuple)) and len(logged) == 2:
        return {"loglikelihood": float(logged[0]), PAIR_UNITS[metric]: int(logged[1])}
    if isinstance(logged, bool):
        return float(logged)
    return _number(logged)


def items(samples: dict[str, list[dict]], measure_names: set[str]) -> dict[str, dict[str, object]]:
    """{task/metric: {doc_id: value}} for every measure lm-eval logged per sample."""
    out: dict[str, dict[str, object]] = {}
    for task, records in samples.items():
        for record in records:
            for metric in record.get("metrics", []):
                name = measure_name(task, metric, record.get("filter", "none"))
                if name not in measure_names or metric not in record:
                    continue
                value = _item_value(metric, record[metric])
                if value is not None:
                    out.setdefault(name, {})[str(record["doc_id"])] = value
    return out


def summarize(results: dict, samples: dict[str, list[dict]]) -> dict:
    found = measures(results)
    return {"measures": found, "items": items(samples, set(found))}
