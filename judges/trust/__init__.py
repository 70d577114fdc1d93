"""How far to trust the judge (issue 23): agreement between judges, and win rates and score
differences with the answers' length and style held fixed.

    votes.py           any judgment file -> FastChat's vote records (pairwise, human votes, single scores)
    agreement.py       FastChat's agreement (compute_agreement.py's definitions), kappa, Spearman; two files
                       compared, and a report's --input-file split by judge
    command.py         `align mtbench agreement A B`
    length_control.py  AlpacaEval 2's length-controlled win rate (glm_winrate, minimal variant, fixed C)
    style_control.py   the equal-style win rate: FastChat's contextual Bradley-Terry (L2 0.5) on Arena-Hard-Auto's
                       style features, read at zero style difference (not Arena-Hard-Auto's own reading)
    single_length.py   single-answer Δ at equal length (paired OLS)
    support.py         where a controlled figure may be read (zero inside the data) and when length and model
                       are confounded
    matches.py         pairwise matches with their texts; percentile CIs over questions for a refitted statistic
    controlled.py      the report's controlled figures: per pair LC and equal-style win rates with their
                       warnings, per model the Δ at equal length (rendered by judges/reporting)

Imports only judges' reading/statistics modules and align's plumbing, never align.train|grow|series.
"""
