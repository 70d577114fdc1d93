"""How far to trust the judge (issue 23): agreement between judges, and win rates and score
differences with the answers' length and style held fixed.

    votes.py           any judgment file -> FastChat's vote records (pairwise, human votes, single scores)
    agreement.py       FastChat's agreement (compute_agreement.py's definitions), kappa, Spearman
    command.py         `align mtbench agreement A B`
    length_control.py  AlpacaEval 2's length-controlled win rate (glm_winrate, minimal variant)
    style_control.py   Arena-Hard-Auto's style-controlled win rate
    single_length.py   single-answer Δ at equal length (paired OLS)
    bootstrap.py       percentile CIs over questions for a statistic that refits a model

Imports only judges' reading/statistics modules and align's plumbing, never align.train|grow|series.
"""
