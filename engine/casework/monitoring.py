"""The monitoring figures the FR Technology Board reviews, each defined once and counted from one population.

The policy (Monitoring and reporting) has the Board review, every quarter, how RFR was used and
its results with "aggregated demographic data about searches", and an annual public report give
the same aggregates. ``MonitoringFigures`` is the schema of those figures: every field carries its
definition (``definitions()``; the audit bundle and the Board's report print them), and the
figures of a terminal, of an audit bundle and of the oversight's report are all this one type.

How every figure is counted (the population rule):

- A figure counts **events of the terminal's signed audit log** whose time (the terminal's UTC
  clock, as recorded) falls in the period: searches (``case.search``), submissions
  (``case.submit``), approvals (``case.approve``), rejections (``case.reject``), peer reviews
  (``case.peer_review``), withdrawals (``case.withdraw``), expiries (``case.expire``), and
  closures (``case.close``, which closes with a Viable Match, and a peer reviewer's agreement,
  which closes with no Viable Match).
- Outcomes, and the Potential Matches behind them, are counted over **the cases closed in the
  period** and nothing else: a closed case's decisions are final, so "cases closed" and
  "Potential Matches adjudicated" describe the same cases. Cases still open at the end of the
  period are in neither (the old report counted the candidates of open cases beside closed
  cases only, and had no count of searches).
- The case's use case, apparent age band and under-18 / under-16 flags are those its RFR
  Submission Form recorded; a Potential Match's sex, ethnicity by IC code and age range at
  capture are those the library records for its reference image when the figures are made (a
  subject since weeded counts as "not recorded").

Because each figure counts events, figures of disjoint stretches of the log add up
(``MonitoringFigures.add``): an audit bundle carries its figures split by calendar quarter
(``figures_by_quarter``), and the oversight's quarter is the sum of every terminal's bundles.
The oversight recounts the event-derived totals from the bundle's own events
(``event_totals``) and refuses a bundle whose figures disagree. Nothing biometric is read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any, cast

from engine.audit.clock import format_utc, parse_utc
from engine.scoring.statistics import NOT_RECORDED, OutcomeBreakdown, Proportion, outcome_breakdown, wilson
from engine.workspace import Workspace

FIGURES_FORMAT = "rfr-monitoring-figures/v1"
CASE_FIELDS = ("age_band", "use_case", "under_18", "under_16")
CANDIDATE_FIELDS = ("sex", "ic_code", "age_range", "library")
MIN_RECORDS = 30
"""Fewer records than this in a group gives counts only: the interval would be too wide to read."""

VIABLE_MATCH = "viable_match"
NO_VIABLE_MATCH = "no_viable_match"
VIABLE = "viable"
_COUNTED_ACTIONS = (
    "case.submit",
    "case.approve",
    "case.reject",
    "case.search",
    "case.peer_review",
    "case.close",
    "case.withdraw",
    "case.expire",
)
_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")
_MAX_COUNT = 10**12
_MAX_GROUPS = 256
_MAX_GROUP_TEXT = 128

Counts = dict[str, int]
Table = dict[str, dict[str, int]]
"""A breakdown: group value -> outcome (or decision) -> count."""


def _meta(definition: str, kind: str) -> dict[str, str]:
    return {"definition": definition, "kind": kind}


@dataclass(frozen=True)
class MonitoringFigures:
    """The figures of one period (or one stretch of the audit log), every one a count; see the module docstring.

    Each field's ``definition`` (``MonitoringFigures.definitions()``) says which events and which
    cases it counts. ``kind`` is ``count`` (a number), ``counts`` (group -> number) or ``table``
    (group -> outcome -> number).
    """

    searches: int = field(
        default=0,
        metadata=_meta(
            "Searches run: case.search events in the period (one per approved case searched; a case is searched once).",
            "count",
        ),
    )
    searches_by_use_case: Counts = field(
        default_factory=dict,
        metadata=_meta(
            "The searches (case.search events in the period), by the use case on the case's RFR Submission Form.",
            "counts",
        ),
    )
    searches_by_age_band: Counts = field(
        default_factory=dict,
        metadata=_meta(
            "The searches (case.search events in the period), by the apparent age band of the Probe Image's "
            "subject recorded on the form.",
            "counts",
        ),
    )
    searches_under_18: int = field(
        default=0,
        metadata=_meta(
            "Searches (case.search events in the period) whose Probe Image the RFR User recorded as appearing to "
            "involve someone under 18 (the "
            "case's under_18 monitoring flag, set by the policy from the apparent age band).",
            "count",
        ),
    )
    searches_under_16: int = field(
        default=0,
        metadata=_meta(
            "Searches (case.search events in the period) whose Probe Image the RFR User recorded as appearing to "
            "involve someone under 16 (the "
            "case's under_16 monitoring flag).",
            "count",
        ),
    )
    submissions_by_use_case: Counts = field(
        default_factory=dict,
        metadata=_meta("Submissions sent for approval: case.submit events in the period, by use case.", "counts"),
    )
    approvals_by_use_case: Counts = field(
        default_factory=dict,
        metadata=_meta(
            "Approvals: case.approve events in the period, by use case. Each is a decision: a case whose "
            "approval lapsed (a library changed) and was approved again counts twice.",
            "counts",
        ),
    )
    rejections_by_use_case: Counts = field(
        default_factory=dict,
        metadata=_meta("Rejections: case.reject events in the period, by use case.", "counts"),
    )
    peer_reviews: Counts = field(
        default_factory=dict,
        metadata=_meta(
            "Peer reviews: case.peer_review events in the period, 'agreed' (the reviewer confirmed no Viable "
            "Match: the case closes) or 'sent_back' (the reviewer disagreed: the case returns to adjudication).",
            "counts",
        ),
    )
    cases_closed: Counts = field(
        default_factory=dict,
        metadata=_meta(
            "Cases closed in the period, by outcome: viable_match (case.close events) and no_viable_match (a "
            "peer reviewer's agreement). The population of every outcome figure below.",
            "counts",
        ),
    )
    closed_by_use_case: Table = field(
        default_factory=dict,
        metadata=_meta("The cases closed in the period: use case -> outcome -> cases.", "table"),
    )
    closed_by_age_band: Table = field(
        default_factory=dict,
        metadata=_meta("The cases closed in the period: apparent age band on the form -> outcome -> cases.", "table"),
    )
    closed_under_18: Counts = field(
        default_factory=dict,
        metadata=_meta(
            "The cases closed in the period whose Probe Image was recorded as involving someone under 18, by outcome.",
            "counts",
        ),
    )
    closed_under_16: Counts = field(
        default_factory=dict,
        metadata=_meta(
            "The cases closed in the period whose Probe Image was recorded as involving someone under 16, by outcome.",
            "counts",
        ),
    )
    potential_matches: Counts = field(
        default_factory=dict,
        metadata=_meta(
            "Potential Matches adjudicated: every Potential Match of the cases closed in the period, by the RFR "
            "User's final decision (viable, not_viable). 'viable' is the number of Viable Matches.",
            "counts",
        ),
    )
    potential_matches_by_sex: Table = field(
        default_factory=dict,
        metadata=_meta(
            "Those Potential Matches: the reference subject's sex as the library records it -> decision -> count.",
            "table",
        ),
    )
    potential_matches_by_ic_code: Table = field(
        default_factory=dict,
        metadata=_meta(
            "Those Potential Matches: the reference subject's ethnicity by IC code -> decision -> count.", "table"
        ),
    )
    potential_matches_by_age_range: Table = field(
        default_factory=dict,
        metadata=_meta(
            "Those Potential Matches: the reference image's age range at capture -> decision -> count.", "table"
        ),
    )
    potential_matches_by_library: Table = field(
        default_factory=dict,
        metadata=_meta(
            "Those Potential Matches: the Permitted Image Reference Library searched -> decision -> count.", "table"
        ),
    )
    cases_withdrawn: int = field(
        default=0,
        metadata=_meta("Cases withdrawn before adjudication: case.withdraw events in the period.", "count"),
    )
    cases_expired: int = field(
        default=0,
        metadata=_meta(
            "Cases expired by the terminal (left waiting past the policy's days): case.expire events in the period.",
            "count",
        ),
    )

    # ---- derived figures (sums of the above, never counted separately) --------------------------

    @property
    def approvals(self) -> int:
        return sum(self.approvals_by_use_case.values())

    @property
    def rejections(self) -> int:
        return sum(self.rejections_by_use_case.values())

    @property
    def submissions(self) -> int:
        return sum(self.submissions_by_use_case.values())

    @property
    def closed(self) -> int:
        return sum(self.cases_closed.values())

    @property
    def viable_match_cases(self) -> int:
        return self.cases_closed.get(VIABLE_MATCH, 0)

    @property
    def adjudicated(self) -> int:
        return sum(self.potential_matches.values())

    @property
    def viable_matches(self) -> int:
        return self.potential_matches.get(VIABLE, 0)

    # ---- the schema ---------------------------------------------------------------------------

    @classmethod
    def definitions(cls) -> dict[str, str]:
        """Each figure's name and its definition, in schema order."""
        return {f.name: str(f.metadata["definition"]) for f in fields(cls)}

    @classmethod
    def kinds(cls) -> dict[str, str]:
        return {f.name: str(f.metadata["kind"]) for f in fields(cls)}

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: object, where: str = "figures") -> MonitoringFigures:
        """Strictly parsed figures (from an audit bundle, which is hostile input); ``ValueError`` names the field."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object of figures")
        kinds = cls.kinds()
        unknown = sorted(set(data) - set(kinds))
        missing = [name for name in kinds if name not in data]
        if unknown or missing:
            raise ValueError(f"{where}: unknown figures {unknown} or missing figures {missing}")
        values: dict[str, Any] = {}
        for name, kind in kinds.items():
            value = data[name]
            if kind == "count":
                values[name] = _count(value, f"{where}.{name}")
            elif kind == "counts":
                values[name] = _counts(value, f"{where}.{name}")
            else:
                if not isinstance(value, dict) or len(value) > _MAX_GROUPS:
                    raise ValueError(f"{where}.{name}: expected at most {_MAX_GROUPS} groups")
                values[name] = {
                    _group(k, f"{where}.{name}"): _counts(v, f"{where}.{name}.{k}") for k, v in value.items()
                }
        return cls(**values)

    def add(self, other: MonitoringFigures) -> MonitoringFigures:
        """The figures of both stretches together (each figure counts events, so they add)."""
        values: dict[str, Any] = {}
        for name, kind in self.kinds().items():
            mine, theirs = getattr(self, name), getattr(other, name)
            if kind == "count":
                values[name] = mine + theirs
            elif kind == "counts":
                values[name] = _add_counts(mine, theirs)
            else:
                values[name] = {
                    group: _add_counts(mine.get(group, {}), theirs.get(group, {}))
                    for group in sorted(set(mine) | set(theirs))
                }
        return MonitoringFigures(**values)

    def problems(self) -> list[str]:
        """Where the figures disagree with one another (none for figures counted by ``figures_for``)."""
        out: list[str] = []

        def same(what: str, left: int, right: int) -> None:
            if left != right:
                out.append(f"{what}: {left} against {right}")

        same("searches by use case", sum(self.searches_by_use_case.values()), self.searches)
        same("searches by age band", sum(self.searches_by_age_band.values()), self.searches)
        if self.searches_under_18 > self.searches:
            out.append(f"under-18 searches {self.searches_under_18} exceed the searches {self.searches}")
        if self.searches_under_16 > self.searches:
            out.append(f"under-16 searches {self.searches_under_16} exceed the searches {self.searches}")
        for name in ("closed_by_use_case", "closed_by_age_band"):
            same(name.replace("_", " "), _table_total(getattr(self, name)), self.closed)
            for outcome, n in _table_outcomes(getattr(self, name)).items():
                same(f"{name.replace('_', ' ')} ({outcome})", n, self.cases_closed.get(outcome, 0))
        for name in ("closed_under_18", "closed_under_16"):
            for outcome, n in getattr(self, name).items():
                if n > self.cases_closed.get(outcome, 0):
                    out.append(f"{name.replace('_', ' ')} ({outcome}) {n} exceeds the cases closed so")
        for name in (
            "potential_matches_by_sex",
            "potential_matches_by_ic_code",
            "potential_matches_by_age_range",
            "potential_matches_by_library",
        ):
            for decision, n in _table_outcomes(getattr(self, name)).items():
                same(f"{name.replace('_', ' ')} ({decision})", n, self.potential_matches.get(decision, 0))
            same(name.replace("_", " "), _table_total(getattr(self, name)), self.adjudicated)
        same(
            "peer reviews agreed and cases closed with no Viable Match",
            self.peer_reviews.get("agreed", 0),
            self.cases_closed.get(NO_VIABLE_MATCH, 0),
        )
        if self.viable_match_cases > self.viable_matches:
            out.append(
                f"{self.viable_match_cases} cases closed with a Viable Match but only {self.viable_matches} Viable "
                "Matches among their Potential Matches"
            )
        return out


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
        raise ValueError(f"{where}: expected a whole number from 0 to {_MAX_COUNT}")
    return value


def _group(value: object, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_GROUP_TEXT or not value.isprintable():
        raise ValueError(f"{where}: a group name must be printable text of 1 to {_MAX_GROUP_TEXT} characters")
    return value


def _counts(value: object, where: str) -> Counts:
    if not isinstance(value, dict) or len(value) > _MAX_GROUPS:
        raise ValueError(f"{where}: expected an object of at most {_MAX_GROUPS} counts")
    return {_group(k, where): _count(v, f"{where}.{k}") for k, v in value.items()}


def _add_counts(a: Mapping[str, int], b: Mapping[str, int]) -> Counts:
    return {key: a.get(key, 0) + b.get(key, 0) for key in sorted(set(a) | set(b))}


def _table_total(table: Table) -> int:
    return sum(sum(row.values()) for row in table.values())


def _table_outcomes(table: Table) -> Counts:
    totals: Counts = {}
    for row in table.values():
        for outcome, n in row.items():
            totals[outcome] = totals.get(outcome, 0) + n
    return totals


# ---- periods -----------------------------------------------------------------------------------


def quarter_of(day: date) -> tuple[date, date]:
    """The calendar quarter holding ``day``: its first day and the first day of the next (the review's period)."""
    start = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    end = date(start.year + 1, 1, 1) if start.month == 10 else date(start.year, start.month + 3, 1)
    return start, end


def quarter_label_of(day: date) -> str:
    """The calendar quarter holding ``day``, as the figures name it: ``2026Q3``."""
    return f"{day.year:04d}Q{(day.month - 1) // 3 + 1}"


def quarter_label(at: str) -> str:
    """The calendar quarter (UTC) of an audit event time such as ``2026-08-15T10:00:00.000000Z``: ``2026Q3``."""
    year, month = int(at[0:4]), int(at[5:7])
    if not 1 <= month <= 12:
        raise ValueError(f"{at!r} is not an audit time")
    return quarter_label_of(date(year, month, 1))


def quarter_bounds(label: str) -> tuple[date, date]:
    """``2026Q3`` -> (2026-07-01, 2026-10-01): the first day and the first day of the next quarter."""
    match = _QUARTER.fullmatch(label.strip().upper())
    if match is None:
        raise ValueError(f"{label!r} is not a quarter such as 2026Q3")
    return quarter_of(date(int(match.group(1)), 3 * (int(match.group(2)) - 1) + 1, 1))


def quarters_between(since: date, until: date) -> list[str]:
    """The quarter labels from the quarter holding ``since`` to the one before ``until`` (both quarter starts)."""
    labels: list[str] = []
    day = since
    while day < until:
        labels.append(quarter_label_of(day))
        day = quarter_of(day)[1]
    return labels


# ---- counting --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CaseFields:
    use_case: str
    age_band: str
    under_18: bool
    under_16: bool


@dataclass
class _Tally:
    """The records of one period, from which every figure is counted (so the figures agree by construction)."""

    searches: list[_CaseFields] = field(default_factory=list)
    submissions: list[str] = field(default_factory=list)
    approvals: list[str] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    peer_reviews: list[str] = field(default_factory=list)
    closed_cases: list[dict[str, object]] = field(default_factory=list)
    potential_matches: list[dict[str, object]] = field(default_factory=list)
    withdrawn: int = 0
    expired: int = 0

    def figures(self) -> MonitoringFigures:
        def by(values: Iterable[str]) -> Counts:
            out: Counts = {}
            for value in values:
                out[value] = out.get(value, 0) + 1
            return dict(sorted(out.items()))

        def table(records: list[dict[str, object]], key: str) -> Table:
            out: Table = {}
            for record in records:
                row = out.setdefault(str(record[key]), {})
                outcome = str(record["outcome"])
                row[outcome] = row.get(outcome, 0) + 1
            return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}

        closed = self.closed_cases
        return MonitoringFigures(
            searches=len(self.searches),
            searches_by_use_case=by(s.use_case for s in self.searches),
            searches_by_age_band=by(s.age_band for s in self.searches),
            searches_under_18=sum(s.under_18 for s in self.searches),
            searches_under_16=sum(s.under_16 for s in self.searches),
            submissions_by_use_case=by(self.submissions),
            approvals_by_use_case=by(self.approvals),
            rejections_by_use_case=by(self.rejections),
            peer_reviews=by(self.peer_reviews),
            cases_closed=by(str(r["outcome"]) for r in closed),
            closed_by_use_case=table(closed, "use_case"),
            closed_by_age_band=table(closed, "age_band"),
            closed_under_18=by(str(r["outcome"]) for r in closed if r["under_18"] == "yes"),
            closed_under_16=by(str(r["outcome"]) for r in closed if r["under_16"] == "yes"),
            potential_matches=by(str(r["outcome"]) for r in self.potential_matches),
            potential_matches_by_sex=table(self.potential_matches, "sex"),
            potential_matches_by_ic_code=table(self.potential_matches, "ic_code"),
            potential_matches_by_age_range=table(self.potential_matches, "age_range"),
            potential_matches_by_library=table(self.potential_matches, "library"),
            cases_withdrawn=self.withdrawn,
            cases_expired=self.expired,
        )


_CASE_SQL = "SELECT form, monitoring_flags FROM cases WHERE id = ?"
_CANDIDATES_SQL = (
    "SELECT c.decision, s.sex, s.ic_code, i.age_range, c.library FROM case_candidates c"
    " LEFT JOIN subjects s ON s.id = c.subject_id LEFT JOIN images i ON i.id = c.image_id"
    " WHERE c.case_id = ? ORDER BY c.rank"
)
_EVENTS_SQL = "SELECT seq, at, action, subjects, details FROM audit_events WHERE action IN ({marks})".format(  # noqa: S608
    marks=", ".join("?" for _ in _COUNTED_ACTIONS)
)


def _text(value: object) -> str:
    text = "" if value is None else str(value).strip()
    return text or NOT_RECORDED


class _Counter:
    """Reads the case fields and candidate decisions that the counted events refer to (cached per case)."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws
        self._cases: dict[str, _CaseFields] = {}

    def case(self, case_id: str) -> _CaseFields:
        if case_id not in self._cases:
            row = self._ws.query_one(_CASE_SQL, (case_id,))
            form: dict[str, Any] = {}
            flags: set[str] = set()
            if row is not None:
                form = json.loads(row[0])
                flags = set(json.loads(row[1]))
            self._cases[case_id] = _CaseFields(
                _text(form.get("use_case")), _text(form.get("age_band")), "under_18" in flags, "under_16" in flags
            )
        return self._cases[case_id]

    def closure(self, tally: _Tally, case_id: str, outcome: str) -> None:
        fields_of = self.case(case_id)
        tally.closed_cases.append(
            {
                "outcome": outcome,
                "use_case": fields_of.use_case,
                "age_band": fields_of.age_band,
                "under_18": "yes" if fields_of.under_18 else "no",
                "under_16": "yes" if fields_of.under_16 else "no",
            }
        )
        for decision, sex, ic_code, age_range, library in self._ws.query(_CANDIDATES_SQL, (case_id,)):
            tally.potential_matches.append(
                {
                    "outcome": _text(decision),
                    "sex": _text(sex),
                    "ic_code": _text(ic_code),
                    "age_range": _text(age_range),
                    "library": _text(library),
                }
            )

    def count(self, tally: _Tally, action: str, subjects: str, details: str) -> None:
        case_id = json.loads(subjects).get("case")
        if not isinstance(case_id, str):
            return
        said = json.loads(details)
        if action == "case.search":
            tally.searches.append(self.case(case_id))
        elif action == "case.submit":
            tally.submissions.append(self.case(case_id).use_case)
        elif action == "case.approve":
            tally.approvals.append(self.case(case_id).use_case)
        elif action == "case.reject":
            tally.rejections.append(self.case(case_id).use_case)
        elif action == "case.peer_review":
            agreed = said.get("agree") is True
            tally.peer_reviews.append("agreed" if agreed else "sent_back")
            if agreed:
                self.closure(tally, case_id, NO_VIABLE_MATCH)
        elif action == "case.close":
            self.closure(tally, case_id, _text(said.get("outcome", VIABLE_MATCH)))
        elif action == "case.withdraw":
            tally.withdrawn += 1
        elif action == "case.expire":
            tally.expired += 1


def _tallies(ws: Workspace, where: str, params: tuple[object, ...], key: Any) -> dict[str, _Tally]:
    counter = _Counter(ws)
    tallies: dict[str, _Tally] = {}
    rows = ws.query(_EVENTS_SQL + where + " ORDER BY seq", (*_COUNTED_ACTIONS, *params))
    for _seq, at, action, subjects, details in rows:
        counter.count(tallies.setdefault(key(str(at)), _Tally()), str(action), str(subjects), str(details))
    return tallies


def figures_by_quarter(ws: Workspace, first: int, last: int) -> dict[str, MonitoringFigures]:
    """The figures of the audit log's seq ``first`` to ``last``, split by the calendar quarter of each event.

    Every quarter in which an event of the range falls is present (with zero figures if none of
    its events is counted), so the oversight can check the quarters against the events.
    """
    tallies = _tallies(ws, " AND seq >= ? AND seq <= ?", (first, last), quarter_label)
    quarters = {
        quarter_label(str(at))
        for (at,) in ws.query("SELECT at FROM audit_events WHERE seq >= ? AND seq <= ?", (first, last))
    }
    return {q: (tallies[q].figures() if q in tallies else MonitoringFigures()) for q in sorted(quarters)}


def period_figures(ws: Workspace, since: str, until: str) -> MonitoringFigures:
    """The figures of the events in ``[since, until)`` (ISO dates or audit times, UTC) on this terminal."""
    return _period_tally(ws, since, until).figures()


def _period_tally(ws: Workspace, since: str, until: str) -> _Tally:
    return _tallies(ws, " AND at >= ? AND at < ?", (since, until), lambda _at: "period").get("period", _Tally())


def event_totals(events: Iterable[tuple[str, str, str]]) -> dict[str, dict[str, int]]:
    """What the events alone show, per quarter: (at, action, details JSON) -> the event-derived totals.

    The oversight compares these with a bundle's figures (``totals_of``): searches, submissions,
    approvals, rejections, peer reviews agreed and sent back, cases closed with and without a Viable
    Match, withdrawals and expiries must be exactly the events' counts.
    """
    out: dict[str, dict[str, int]] = {}
    for at, action, details in events:
        quarter = quarter_label(at)
        totals = out.setdefault(quarter, dict.fromkeys(_TOTALS, 0))
        name = _EVENT_TOTAL.get(action)
        if action == "case.peer_review":
            agreed = json.loads(details).get("agree") is True
            totals["peer_reviews_agreed" if agreed else "peer_reviews_sent_back"] += 1
            if agreed:
                totals["closed_no_viable_match"] += 1
        elif name is not None:
            totals[name] += 1
    return out


_EVENT_TOTAL = {
    "case.search": "searches",
    "case.submit": "submissions",
    "case.approve": "approvals",
    "case.reject": "rejections",
    "case.close": "closed_viable_match",
    "case.withdraw": "cases_withdrawn",
    "case.expire": "cases_expired",
}
_TOTALS = (
    "searches",
    "submissions",
    "approvals",
    "rejections",
    "peer_reviews_agreed",
    "peer_reviews_sent_back",
    "closed_viable_match",
    "closed_no_viable_match",
    "cases_withdrawn",
    "cases_expired",
)


def totals_of(figures: MonitoringFigures) -> dict[str, int]:
    """The event-derived totals of ``figures``, to compare with ``event_totals``."""
    return {
        "searches": figures.searches,
        "submissions": figures.submissions,
        "approvals": figures.approvals,
        "rejections": figures.rejections,
        "peer_reviews_agreed": figures.peer_reviews.get("agreed", 0),
        "peer_reviews_sent_back": figures.peer_reviews.get("sent_back", 0),
        "closed_viable_match": figures.cases_closed.get(VIABLE_MATCH, 0),
        "closed_no_viable_match": figures.cases_closed.get(NO_VIABLE_MATCH, 0),
        "cases_withdrawn": figures.cases_withdrawn,
        "cases_expired": figures.cases_expired,
    }


# ---- rates and breakdowns (the readable report) -----------------------------------------------


def _records(table: Table, key: str) -> Iterator[dict[str, object]]:
    for value, outcomes in table.items():
        for outcome, n in outcomes.items():
            for _ in range(n):
                yield {key: value, "outcome": outcome}


def case_breakdowns(figures: MonitoringFigures, *, min_records: int = MIN_RECORDS) -> list[OutcomeBreakdown]:
    """Outcome rates of the cases closed, by use case and apparent age band, and for the under-18/16 flags."""
    out: list[OutcomeBreakdown] = []
    for key, table in (("use_case", figures.closed_by_use_case), ("age_band", figures.closed_by_age_band)):
        out += outcome_breakdown(_records(table, key), [key], positive_outcome=VIABLE_MATCH, min_records=min_records)
    for key, flagged in (("under_18", figures.closed_under_18), ("under_16", figures.closed_under_16)):
        rest = {o: figures.cases_closed.get(o, 0) - flagged.get(o, 0) for o in figures.cases_closed}
        table = {"yes": dict(flagged), "no": {o: n for o, n in rest.items() if n}}
        out += outcome_breakdown(
            _records({k: v for k, v in table.items() if v}, key),
            [key],
            positive_outcome=VIABLE_MATCH,
            min_records=min_records,
        )
    return out


def potential_match_breakdowns(figures: MonitoringFigures, *, min_records: int = MIN_RECORDS) -> list[OutcomeBreakdown]:
    """Decisions on the Potential Matches of the cases closed, by the reference subject's recorded fields."""
    out: list[OutcomeBreakdown] = []
    for key in CANDIDATE_FIELDS:
        table = cast(Table, getattr(figures, f"potential_matches_by_{key}"))
        out += outcome_breakdown(_records(table, key), [key], positive_outcome=VIABLE, min_records=min_records)
    return out


@dataclass(frozen=True)
class OutcomeReport:
    """The quarterly figures of one terminal for one period ``[since, until)``: ``figures`` and their rates.

    ``cases`` (closed), ``potential_matches`` (adjudicated) and the breakdowns all count the cases
    closed in the period; ``searches`` counts the searches run in it (see ``MonitoringFigures``).
    """

    since: str
    until: str
    figures: MonitoringFigures
    by_case: list[OutcomeBreakdown]
    by_potential_match: list[OutcomeBreakdown]

    @property
    def searches(self) -> int:
        return self.figures.searches

    @property
    def cases(self) -> int:
        return self.figures.closed

    @property
    def viable_match_cases(self) -> int:
        return self.figures.viable_match_cases

    @property
    def case_rate(self) -> Proportion | None:
        return wilson(self.viable_match_cases, self.cases) if self.cases else None

    @property
    def potential_matches(self) -> int:
        return self.figures.adjudicated

    @property
    def viable_potential_matches(self) -> int:
        return self.figures.viable_matches

    def to_json(self) -> dict[str, Any]:
        return {
            "period": {"since": self.since, "until": self.until},
            "searches": self.searches,
            "closed_cases": self.cases,
            "viable_match_cases": self.viable_match_cases,
            "viable_match_rate": None if self.case_rate is None else self.case_rate.to_json(),
            "adjudicated_potential_matches": self.potential_matches,
            "viable_potential_matches": self.viable_potential_matches,
            "figures": self.figures.to_json(),
            "definitions": MonitoringFigures.definitions(),
            "by_case": [b.to_json() for b in self.by_case],
            "by_potential_match": [b.to_json() for b in self.by_potential_match],
            "min_records": MIN_RECORDS,
        }


def outcome_report(ws: Workspace, since: str, until: str, *, min_records: int = MIN_RECORDS) -> OutcomeReport:
    """The figures of ``[since, until)``: searches run, and the cases closed with their Potential Matches."""
    tally = _period_tally(ws, since, until)
    figures = tally.figures()
    return OutcomeReport(
        since,
        until,
        figures,
        outcome_breakdown(tally.closed_cases, CASE_FIELDS, positive_outcome=VIABLE_MATCH, min_records=min_records),
        outcome_breakdown(tally.potential_matches, CANDIDATE_FIELDS, positive_outcome=VIABLE, min_records=min_records),
    )


def case_records(ws: Workspace, since: str, until: str) -> list[dict[str, object]]:
    """One record per case closed in the period: its outcome and the monitoring fields of its form."""
    return _period_tally(ws, since, until).closed_cases


def potential_match_records(ws: Workspace, since: str, until: str) -> list[dict[str, object]]:
    """One record per Potential Match of the cases closed in the period, with its final decision."""
    return _period_tally(ws, since, until).potential_matches


# ---- library composition in a bundle -----------------------------------------------------------

_COMPOSITION_PARTS = {"subjects": ("by_sex", "by_ic_code"), "images": ("by_sex", "by_ic_code", "by_age_range")}
MAX_LIBRARIES = 1000


def parse_composition(data: object, where: str = "library_composition") -> list[dict[str, Any]]:
    """A bundle's library composition (``engine.library.store.Composition.to_json`` per library), checked strictly."""
    if not isinstance(data, list) or len(data) > MAX_LIBRARIES:
        raise ValueError(f"{where}: expected a list of at most {MAX_LIBRARIES} libraries")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(data):
        here = f"{where}[{i}]"
        if not isinstance(item, dict) or set(item) != {"library", "kind", "subjects", "images", "templates"}:
            raise ValueError(f"{here}: expected library, kind, subjects, images and templates")
        parsed: dict[str, Any] = {
            "library": _group(item["library"], f"{here}.library"),
            "kind": _group(item["kind"], f"{here}.kind"),
            "templates": _counts(item["templates"], f"{here}.templates"),
        }
        for part, breakdowns in _COMPOSITION_PARTS.items():
            section = item[part]
            if not isinstance(section, dict) or set(section) != {"total", *breakdowns}:
                raise ValueError(f"{here}.{part}: expected total and {', '.join(breakdowns)}")
            parsed[part] = {"total": _count(section["total"], f"{here}.{part}.total")}
            for name in breakdowns:
                counts = _counts(section[name], f"{here}.{part}.{name}")
                if sum(counts.values()) != parsed[part]["total"]:
                    raise ValueError(f"{here}.{part}.{name}: does not add up to the total")
                parsed[part][name] = counts
        out.append(parsed)
    return out


# ---- the figures of an audit bundle -------------------------------------------------------------


@dataclass(frozen=True)
class BundleFigures:
    """An audit bundle's ``figures.json``: the range's figures per calendar quarter, and the library composition.

    ``libraries`` is each library's composition (``engine.library.store.Composition.to_json``) as
    the terminal held it at ``as_at`` (when the bundle was made): a state, not a count of events.
    """

    by_quarter: dict[str, MonitoringFigures]
    as_at: str
    libraries: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FIGURES_FORMAT,
            "by_quarter": {q: f.to_json() for q, f in sorted(self.by_quarter.items())},
            "library_composition": {"as_at": self.as_at, "libraries": self.libraries},
            "definitions": MonitoringFigures.definitions(),
        }

    @classmethod
    def from_json(cls, data: object) -> BundleFigures:
        """Strictly parsed (a bundle is hostile input); ``ValueError`` names the part."""
        if not isinstance(data, dict) or data.get("format") != FIGURES_FORMAT:
            raise ValueError(f"figures.json is not {FIGURES_FORMAT}")
        if set(data) != {"format", "by_quarter", "library_composition", "definitions"}:
            raise ValueError("figures.json holds unexpected parts")
        quarters = data["by_quarter"]
        if not isinstance(quarters, dict) or len(quarters) > 400:
            raise ValueError("figures.json: by_quarter is not an object of quarters")
        by_quarter: dict[str, MonitoringFigures] = {}
        for label, figures in quarters.items():
            if not isinstance(label, str) or _QUARTER.fullmatch(label) is None:
                raise ValueError(f"figures.json: {label!r} is not a quarter such as 2026Q3")
            by_quarter[label] = MonitoringFigures.from_json(figures, f"figures.json {label}")
        held = data["library_composition"]
        if not isinstance(held, dict) or set(held) != {"as_at", "libraries"} or not isinstance(held["as_at"], str):
            raise ValueError("figures.json: library_composition needs as_at and libraries")
        as_at = held["as_at"]
        if len(as_at) != 27:
            raise ValueError("figures.json: library_composition.as_at is not an audit time")
        parse_utc(as_at)  # ValueError when it is not one
        return cls(by_quarter, as_at, parse_composition(held["libraries"]))


def bundle_figures(ws: Workspace, first: int, last: int) -> dict[str, Any]:
    """``figures.json`` of an audit bundle over seq ``first`` to ``last`` (``engine.audit.export`` calls this)."""
    from engine.library.store import composition, list_libraries

    libraries = [composition(ws, lib).to_json() for lib in list_libraries(ws)]
    return BundleFigures(figures_by_quarter(ws, first, last), format_utc(ws.now()), libraries).to_json()
