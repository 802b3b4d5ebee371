"""What a score means, used at run time: calibration, operating threshold, versions, and the statistics behind them.

- ``meaning``: ``ScoreMeaning`` turns a distance into what a person can weigh, with the versions that
  reproduce it (re-exported here; this is the package's face).
- ``calibration``: the versioned distance -> false-match-rate table, read and hash-checked, and the
  operating threshold derived from it.
- ``statistics``: proportions and their confidence intervals, and outcome rates by group.

Fitting a calibration from benchmark scores is offline evaluation (``engine.evaluation``), which
imports from here and never the other way round.
"""

from engine.scoring.meaning import (
    INTELLIGENCE_LEAD,
    UNCALIBRATED,
    ScoreMeaning,
    candidate_meaning,
    meaning_for_model,
    scoring_json,
    scoring_text,
)

__all__ = [
    "INTELLIGENCE_LEAD",
    "UNCALIBRATED",
    "ScoreMeaning",
    "candidate_meaning",
    "meaning_for_model",
    "scoring_json",
    "scoring_text",
]
