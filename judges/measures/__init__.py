"""measures: evidence without a judge.

- `base_eval` (`align eval`): lm-evaluation-harness on a base checkpoint (the study's Table 1),
  lm-eval's own results and samples plus a compact `base_eval.json` with per-item values.
- `heldout` (`align heldout`): held-out SFT loss and DPO preference accuracy, per row.

Per-item values are keyed by ids that are the same for every model (lm-eval's doc ids, the data's
row ids), so a later report can pair them across models.
"""
