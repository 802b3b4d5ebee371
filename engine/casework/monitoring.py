"""Adjudication outcomes by the demographic fields the policy records, for the quarterly review.

The policy (Monitoring and reporting) has the FR Technology Board review, every quarter, how
RFR was used and its results with "aggregated demographic data about searches". This module
turns a terminal's own casework into those figures with the same code as the LFW equity
evaluation (``engine.scoring.statistics.outcome_breakdown``):

- per closed case: the outcome (Viable Match or none) by the Probe Image's recorded age band,
  the use case and the under-18 / under-16 monitoring flags;
- per adjudicated Potential Match: the RFR User's decision (viable or not) by the reference
  subject's sex, ethnicity by IC code and age range at capture, as the library records them.

Groups with too few records are shown with their counts and marked "too small for a stable
figure", never hidden and never given a rate. Nothing biometric is read: only decisions,
form fields and the library's demographic fields. A subject whose library was since destroyed
is counted as "not recorded".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.scoring.statistics import OutcomeBreakdown, Proportion, outcome_breakdown, wilson
from engine.workspace import Workspace

CASE_FIELDS = ("age_band", "use_case", "under_18", "under_16")
CANDIDATE_FIELDS = ("sex", "ic_code", "age_range", "library")
MIN_RECORDS = 30
"""Fewer records than this in a group gives counts only: the interval would be too wide to read."""

_CASES_SQL = (
    "SELECT id, outcome, form, monitoring_flags FROM cases WHERE state = 'closed' AND outcome IS NOT NULL"
    " AND closed_at >= ? AND closed_at < ? ORDER BY number"
)
_CANDIDATES_SQL = (
    "SELECT c.decision, s.sex, s.ic_code, i.age_range, c.library FROM case_candidates c"
    " JOIN cases k ON k.id = c.case_id"
    " LEFT JOIN subjects s ON s.id = c.subject_id LEFT JOIN images i ON i.id = c.image_id"
    " WHERE c.decision IS NOT NULL AND k.searched_at >= ? AND k.searched_at < ? ORDER BY k.number, c.rank"
)


@dataclass(frozen=True)
class OutcomeReport:
    """The quarterly outcome figures of one terminal for one period ``[since, until)``."""

    since: str
    until: str
    cases: int
    viable_match_cases: int
    case_rate: Proportion | None
    potential_matches: int
    viable_potential_matches: int
    by_case: list[OutcomeBreakdown]
    by_potential_match: list[OutcomeBreakdown]

    def to_json(self) -> dict[str, Any]:
        return {
            "period": {"since": self.since, "until": self.until},
            "closed_cases": self.cases,
            "viable_match_cases": self.viable_match_cases,
            "viable_match_rate": None if self.case_rate is None else self.case_rate.to_json(),
            "adjudicated_potential_matches": self.potential_matches,
            "viable_potential_matches": self.viable_potential_matches,
            "by_case": [b.to_json() for b in self.by_case],
            "by_potential_match": [b.to_json() for b in self.by_potential_match],
            "min_records": MIN_RECORDS,
        }


def case_records(ws: Workspace, since: str, until: str) -> list[dict[str, object]]:
    """One record per case closed in the period: its outcome and the monitoring fields of its form."""
    records: list[dict[str, object]] = []
    for _case_id, outcome, form, flags in ws.query(_CASES_SQL, (since, until)):
        fields = json.loads(form)
        monitoring = set(json.loads(flags))
        records.append(
            {
                "outcome": outcome,
                "age_band": fields.get("age_band"),
                "use_case": fields.get("use_case"),
                "under_18": "yes" if "under_18" in monitoring else "no",
                "under_16": "yes" if "under_16" in monitoring else "no",
            }
        )
    return records


def potential_match_records(ws: Workspace, since: str, until: str) -> list[dict[str, object]]:
    """One record per Potential Match adjudicated in cases searched in the period."""
    return [
        {"outcome": decision, "sex": sex, "ic_code": ic_code, "age_range": age_range, "library": library}
        for decision, sex, ic_code, age_range, library in ws.query(_CANDIDATES_SQL, (since, until))
    ]


def outcome_report(ws: Workspace, since: str, until: str, *, min_records: int = MIN_RECORDS) -> OutcomeReport:
    """The outcome figures for cases closed, and Potential Matches adjudicated, in ``[since, until)``."""
    cases = case_records(ws, since, until)
    matches = potential_match_records(ws, since, until)
    viable_cases = sum(r["outcome"] == "viable_match" for r in cases)
    return OutcomeReport(
        since,
        until,
        len(cases),
        viable_cases,
        wilson(viable_cases, len(cases)) if cases else None,
        len(matches),
        sum(r["outcome"] == "viable" for r in matches),
        outcome_breakdown(cases, CASE_FIELDS, positive_outcome="viable_match", min_records=min_records),
        outcome_breakdown(matches, CANDIDATE_FIELDS, positive_outcome="viable", min_records=min_records),
    )
