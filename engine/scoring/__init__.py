"""What a score means, used at run time: calibration, operating threshold, versions, and the statistics behind them.

- ``meaning``: ``ScoreView`` shows a score as the policy says (similarity, estimated false-match rate or
  hidden) and ``ScoreMeaning`` turns a distance into what a person can weigh (the 1:1 rate, its 1:N
  meaning in the library searched, the equity caveat), with the versions that reproduce it
  (re-exported here; this is the package's face).
- ``calibration``: the out-of-sample distance -> false-match-rate table, read and hash-checked, the
  operating threshold derived from it, and the rule that no rate is stated on fewer than 30 errors.
- ``statistics``: proportions and their confidence intervals, and outcome rates by group.

Fitting a calibration from benchmark scores is offline evaluation (``engine.evaluation``), which
imports from here and never the other way round.
"""

from engine.scoring.meaning import (
    EVERYTHING,
    INTELLIGENCE_LEAD,
    UNCALIBRATED,
    LibrarySize,
    ScoreMeaning,
    ScoreView,
    meaning_for_model,
    scoring_json,
    scoring_text,
)

__all__ = [
    "EVERYTHING",
    "INTELLIGENCE_LEAD",
    "UNCALIBRATED",
    "LibrarySize",
    "ScoreMeaning",
    "ScoreView",
    "meaning_for_model",
    "scoring_json",
    "scoring_text",
]
