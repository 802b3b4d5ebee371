"""The FR Technology Board's quarterly figures and the annual public report's aggregates, from accepted bundles.

``board_report`` sums the figures of every accepted bundle for the quarters of the period (figures
count events, so a terminal's bundles add up, and a bundle spanning two quarters carries each
quarter's part), and says how complete they are: for each terminal, how far its accepted log
reaches, and what is quarantined or held as evidence. The library composition is a state, not a
count: for each library, the composition most recently reported (at or before the period's end)
by any terminal holding it, since terminals hold copies of the same libraries.

``write_report`` writes the figures as CSV (``figures.csv``, ``rates.csv``,
``library_composition.csv``, ``coverage.csv``) and as one readable HTML document with bar charts
drawn here as inline SVG: no script, no network, nothing fetched. The annual report is the public
one: it gives no per-terminal figures.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from engine import audit
from engine.casework.monitoring import (
    MIN_RECORDS,
    MonitoringFigures,
    case_breakdowns,
    potential_match_breakdowns,
    quarter_bounds,
    quarters_between,
)
from engine.errors import UsageError
from engine.files import write_new_file
from engine.oversight.service import Oversight
from engine.scoring.statistics import OutcomeBreakdown
from engine.security.users import Session

_YEAR = re.compile(r"^\d{4}$")
REPORT_FILES = ("report.html", "figures.csv", "rates.csv", "library_composition.csv", "coverage.csv")
INTELLIGENCE_LEAD = "A Viable Match is an intelligence lead only. It is not an identification and it is not evidence."


@dataclass(frozen=True)
class Period:
    """A calendar quarter (``2026Q3``) or year (``2026``): ``[since, until)`` and its quarters."""

    label: str
    since: date
    until: date
    quarters: tuple[str, ...]
    annual: bool

    @classmethod
    def parse(cls, quarter: str | None = None, year: str | None = None) -> Period:
        if (quarter is None) == (year is None):
            raise UsageError("give one period: --quarter 2026Q3 or --year 2026")
        if quarter is not None:
            try:
                since, until = quarter_bounds(quarter)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            return cls(quarter.strip().upper(), since, until, (quarter.strip().upper(),), False)
        assert year is not None
        if not _YEAR.fullmatch(year.strip()):
            raise UsageError(f"{year!r} is not a year such as 2026")
        since, until = date(int(year), 1, 1), date(int(year) + 1, 1, 1)
        return cls(year.strip(), since, until, tuple(quarters_between(since, until)), True)


@dataclass(frozen=True)
class Coverage:
    """How much of one terminal's log the figures rest on."""

    terminal: str
    accepted_through: int
    last_event_at: str | None
    complete: bool
    quarantined: int
    evidence: int
    open_findings: list[str]

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class LibraryHeld:
    """One library's composition as a terminal last reported it."""

    library: str
    kind: str
    terminal: str
    as_at: str
    composition: dict[str, Any]


@dataclass(frozen=True)
class BoardReport:
    """The figures of one period across every terminal, with their coverage; what the auditor screens show."""

    title: str
    period: Period
    generated_at: str
    totals: MonitoringFigures
    by_quarter: dict[str, MonitoringFigures]
    by_terminal: dict[str, MonitoringFigures]
    coverage: list[Coverage]
    libraries: list[LibraryHeld]
    by_case: list[OutcomeBreakdown] = field(default_factory=list)
    by_potential_match: list[OutcomeBreakdown] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return bool(self.coverage) and all(c.complete and not c.open_findings for c in self.coverage)

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "period": {
                "label": self.period.label,
                "since": self.period.since.isoformat(),
                "until": self.period.until.isoformat(),
            },
            "generated_at": self.generated_at,
            "complete": self.complete,
            "totals": self.totals.to_json(),
            "by_quarter": {q: f.to_json() for q, f in self.by_quarter.items()},
            "by_terminal": {} if self.period.annual else {t: f.to_json() for t, f in self.by_terminal.items()},
            "coverage": [c.to_json() for c in self.coverage],
            "library_composition": [
                {"library": h.library, "kind": h.kind, "terminal": h.terminal, "as_at": h.as_at, **h.composition}
                for h in self.libraries
            ],
            "rates": {
                "by_case": [b.to_json() for b in self.by_case],
                "by_potential_match": [b.to_json() for b in self.by_potential_match],
                "min_records": MIN_RECORDS,
            },
            "definitions": MonitoringFigures.definitions(),
        }


def board_figures(ov: Oversight, period: Period) -> BoardReport:
    """The period's figures from the accepted bundles, without recording a look (for the engine's own use)."""
    marks = ", ".join("?" for _ in period.quarters)
    by_quarter = {q: MonitoringFigures() for q in period.quarters}
    by_terminal: dict[str, MonitoringFigures] = {}
    sql = (
        "SELECT b.terminal, f.quarter, f.figures FROM oversight_figures f "  # noqa: S608 - placeholders only
        "JOIN oversight_bundles b ON b.id = f.bundle_id "
        f"WHERE b.status = 'accepted' AND f.quarter IN ({marks}) ORDER BY b.terminal, b.first_seq"
    )
    rows = ov.ws.query(sql, period.quarters)
    for terminal, quarter, text in rows:
        figures = MonitoringFigures.from_json(json.loads(text))
        by_quarter[str(quarter)] = by_quarter[str(quarter)].add(figures)
        by_terminal[str(terminal)] = by_terminal.get(str(terminal), MonitoringFigures()).add(figures)
    totals = MonitoringFigures()
    for figures in by_quarter.values():
        totals = totals.add(figures)
    until = f"{period.until.isoformat()}T00:00:00.000000Z"
    coverage = [_coverage(ov, str(name), until) for (name,) in ov.ws.query("SELECT name FROM oversight_terminals")]
    title = (
        f"RFR annual report aggregates, {period.label}"
        if period.annual
        else f"FR Technology Board quarterly figures, {period.label}"
    )
    return BoardReport(
        title,
        period,
        audit.format_utc(ov.ws.now()),
        totals,
        by_quarter,
        dict(sorted(by_terminal.items())),
        sorted(coverage, key=lambda c: c.terminal),
        _libraries(ov, until),
        case_breakdowns(totals),
        potential_match_breakdowns(totals),
    )


def board_report(ov: Oversight, session: Session, period: Period) -> BoardReport:
    """The period's figures for an auditor (the look is recorded): what ``rfr oversight report`` and screens show."""
    user = ov.auditor(session, "the oversight report")
    report = board_figures(ov, period)
    ov.record(
        user.username,
        "oversight.report",
        period=period.label,
        searches=report.totals.searches,
        closed_cases=report.totals.closed,
        complete=report.complete,
    )
    return report


def _coverage(ov: Oversight, terminal: str, until: str) -> Coverage:
    head = ov.ws.query_one(
        "SELECT seq, at FROM oversight_events WHERE terminal = ? ORDER BY seq DESC LIMIT 1", (terminal,)
    )
    counts = dict(
        ov.ws.query("SELECT status, count(*) FROM oversight_bundles WHERE terminal = ? GROUP BY status", (terminal,))
    )
    findings = [
        str(detail)
        for (detail,) in ov.ws.query(
            "SELECT detail FROM oversight_findings WHERE terminal = ? AND resolved_at IS NULL ORDER BY id", (terminal,)
        )
    ]
    last_at = None if head is None else str(head[1])
    complete = last_at is not None and last_at >= until  # the accepted log reaches past the period's end
    return Coverage(
        terminal,
        0 if head is None else int(head[0]),
        last_at,
        complete,
        int(counts.get("quarantined", 0)),
        int(counts.get("evidence", 0)),
        findings,
    )


def _libraries(ov: Oversight, until: str) -> list[LibraryHeld]:
    """Each library once: from each terminal's latest composition before ``until``, the most recently reported."""
    held: dict[str, LibraryHeld] = {}
    rows = ov.ws.query(
        "SELECT b.terminal, c.as_at, c.libraries FROM oversight_compositions c "
        "JOIN oversight_bundles b ON b.id = c.bundle_id WHERE b.status = 'accepted' AND c.as_at < ? "
        "AND c.as_at = (SELECT MAX(c2.as_at) FROM oversight_compositions c2 "
        "JOIN oversight_bundles b2 ON b2.id = c2.bundle_id "
        "WHERE b2.terminal = b.terminal AND b2.status = 'accepted' AND c2.as_at < ?) "
        "ORDER BY c.as_at, b.terminal",
        (until, until),
    )
    for terminal, as_at, text in rows:
        for library in json.loads(text):
            composition = {k: v for k, v in library.items() if k not in ("library", "kind")}
            held[str(library["library"])] = LibraryHeld(
                str(library["library"]), str(library["kind"]), str(terminal), str(as_at), composition
            )
    return [held[name] for name in sorted(held)]


# ---- CSV ----------------------------------------------------------------------------------------


def _figure_rows(scope_quarter: str, terminal: str, figures: MonitoringFigures) -> list[list[object]]:
    rows: list[list[object]] = []
    kinds = MonitoringFigures.kinds()
    for name, value in figures.to_json().items():
        if kinds[name] == "count":
            rows.append([scope_quarter, terminal, name, "", "", value])
        elif kinds[name] == "counts":
            rows += [[scope_quarter, terminal, name, group, "", n] for group, n in value.items()]
        else:
            for group, outcomes in value.items():
                rows += [[scope_quarter, terminal, name, group, outcome, n] for outcome, n in outcomes.items()]
    return rows


def _csv(header: list[str], rows: list[list[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue().encode("utf-8")


def _cell(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula is quoted with a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def figures_csv(report: BoardReport) -> bytes:
    """Every figure as one row: quarter ('all' for the period), terminal ('all'), figure, group, outcome, count."""
    rows = _figure_rows("all", "all", report.totals)
    for quarter, figures in report.by_quarter.items():
        if len(report.by_quarter) > 1:
            rows += _figure_rows(quarter, "all", figures)
    if not report.period.annual:
        for terminal, figures in report.by_terminal.items():
            rows += _figure_rows("all", terminal, figures)
    return _csv(["quarter", "terminal", "figure", "group", "outcome", "count"], rows)


def rates_csv(report: BoardReport) -> bytes:
    rows: list[list[object]] = []
    for section, breakdowns in (("cases closed", report.by_case), ("potential matches", report.by_potential_match)):
        for breakdown in breakdowns:
            for row in breakdown.rows:
                p = row.positive
                rows.append(
                    [
                        section,
                        breakdown.field_name,
                        row.value,
                        row.records,
                        row.outcomes.get(breakdown.positive_outcome, 0),
                        "" if p is None else f"{p.rate:.4f}",
                        "" if p is None else f"{p.low:.4f}",
                        "" if p is None else f"{p.high:.4f}",
                        row.too_small or "",
                    ]
                )
    header = ["population", "field", "group", "records", "positive", "rate", "low_95", "high_95", "note"]
    return _csv(header, rows)


def composition_csv(report: BoardReport) -> bytes:
    rows: list[list[object]] = []
    for held in report.libraries:
        for part in ("subjects", "images"):
            section = held.composition[part]
            rows.append([held.library, held.kind, held.terminal, held.as_at, part, "total", "", section["total"]])
            for name, counts in section.items():
                if name != "total":
                    rows += [
                        [held.library, held.kind, held.terminal, held.as_at, part, name, group, n]
                        for group, n in counts.items()
                    ]
    return _csv(["library", "kind", "reported_by", "as_at", "counted", "breakdown", "group", "count"], rows)


def coverage_csv(report: BoardReport) -> bytes:
    rows: list[list[object]] = [
        [
            c.terminal,
            c.accepted_through,
            c.last_event_at or "",
            "yes" if c.complete else "no",
            c.quarantined,
            c.evidence,
            " | ".join(c.open_findings),
        ]
        for c in report.coverage
    ]
    header = ["terminal", "accepted_through_seq", "last_event_at", "complete", "quarantined", "evidence", "findings"]
    return _csv(header, rows)


def write_report(report: BoardReport, out_dir: Path) -> list[Path]:
    """Write the report's files into ``out_dir`` (made if absent); an existing file is never overwritten."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir} is not a folder: give a folder for the report")
    clash = [name for name in REPORT_FILES if (out_dir / name).exists()]
    if clash:
        raise UsageError(
            f"{out_dir} already holds {', '.join(clash)}: choose a new folder; reports are never overwritten"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    contents = {
        "report.html": render_html(report).encode("utf-8"),
        "figures.csv": figures_csv(report),
        "rates.csv": rates_csv(report),
        "library_composition.csv": composition_csv(report),
        "coverage.csv": coverage_csv(report),
    }
    written = []
    for name in REPORT_FILES:
        write_new_file(out_dir / name, contents[name], what="report file", error=UsageError, mode=0o640)
        written.append(out_dir / name)
    return written


# ---- HTML with inline SVG charts ------------------------------------------------------------------

_PALETTE = ("#1f5f8b", "#d9822b", "#5a8f29", "#8e3b74", "#7f7f7f", "#b23a48")
_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6rem 0 1.2rem; font-size: 0.92rem; }
th, td { border: 1px solid #bbb; padding: 0.25rem 0.55rem; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.warn { background: #fff4d6; border-left: 4px solid #d9822b; padding: 0.6rem 1rem; }
.lead { background: #eef4fa; border-left: 4px solid #1f5f8b; padding: 0.6rem 1rem; }
figure { margin: 1rem 0; } figcaption { font-weight: 600; margin-bottom: 0.3rem; }
dl dt { font-weight: 600; margin-top: 0.5rem; } dl dd { margin-left: 1.2rem; }
@media print { body { margin: 0; max-width: none; } }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def bar_chart(title: str, categories: list[str], series: list[tuple[str, list[int]]]) -> str:
    """A horizontal (stacked when several series) bar chart as inline SVG, with its numbers beside each bar."""
    if not categories:
        return f"<figure><figcaption>{_e(title)}</figcaption><p>None in this period.</p></figure>"
    label_width, bar_width, row, top = 230, 420, 24, 10
    totals = [sum(values[i] for _, values in series) for i in range(len(categories))]
    scale = max(max(totals), 1)
    legend = 22 if len(series) > 1 else 0
    height = top + legend + row * len(categories) + 8
    width = label_width + bar_width + 70
    parts = [
        f'<svg role="img" aria-label="{_e(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="12">'
    ]
    if len(series) > 1:
        at = label_width
        for i, (name, _) in enumerate(series):
            colour = _PALETTE[i % len(_PALETTE)]
            parts.append(f'<rect x="{at}" y="{top}" width="12" height="12" fill="{colour}"/>')
            parts.append(f'<text x="{at + 16}" y="{top + 10}">{_e(name)}</text>')
            at += 24 + 7 * len(name)
    for j, category in enumerate(categories):
        y = top + legend + j * row
        short = category if len(category) <= 34 else category[:33] + "…"
        parts.append(f'<text x="{label_width - 6}" y="{y + 15}" text-anchor="end">{_e(short)}</text>')
        x = float(label_width)
        for i, (name, values) in enumerate(series):
            w = bar_width * values[j] / scale
            if w > 0:
                colour = _PALETTE[i % len(_PALETTE)]
                parts.append(
                    f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{colour}">'
                    f"<title>{_e(category)}: {_e(name)} {values[j]}</title></rect>"
                )
            x += w
        parts.append(f'<text x="{x + 5:.1f}" y="{y + 15}">{totals[j]}</text>')
    parts.append("</svg>")
    return f"<figure><figcaption>{_e(title)}</figcaption>{''.join(parts)}</figure>"


def _counts_chart(title: str, counts: dict[str, int]) -> str:
    keys = sorted(counts, key=lambda k: (-counts[k], k))
    return bar_chart(title, keys, [("count", [counts[k] for k in keys])])


def _table_chart(title: str, table: dict[str, dict[str, int]], outcomes: tuple[str, ...]) -> str:
    keys = sorted(table)
    present = [o for o in outcomes if any(o in row for row in table.values())]
    present += sorted({o for row in table.values() for o in row} - set(present))
    return bar_chart(title, keys, [(o, [table[k].get(o, 0) for k in keys]) for o in present])


def _merge(a: dict[str, int], b: dict[str, int]) -> dict[str, dict[str, int]]:
    return {k: {"approved": a.get(k, 0), "rejected": b.get(k, 0)} for k in sorted(set(a) | set(b))}


def _rates_table(breakdowns: list[OutcomeBreakdown], positive_label: str) -> str:
    rows = []
    for breakdown in breakdowns:
        for row in breakdown.rows:
            p = row.positive
            figure = row.too_small or ("" if p is None else f"{p.rate:.1%} (95% interval {p.low:.1%} to {p.high:.1%})")
            rows.append(
                f"<tr><td>{_e(breakdown.field_name)}</td><td>{_e(row.value)}</td><td class=n>{row.records}</td>"
                f"<td class=n>{row.outcomes.get(breakdown.positive_outcome, 0)}</td><td>{_e(figure)}</td></tr>"
            )
    if not rows:
        return "<p>None in this period.</p>"
    return (
        f"<table><tr><th>field</th><th>group</th><th>records</th><th>{_e(positive_label)}</th><th>rate</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def summary_rows(t: MonitoringFigures) -> list[tuple[str, int]]:
    """The report's summary lines, labelled as the written report and the auditor's screen both say them."""
    return [
        ("Searches run", t.searches),
        ("Searches of a Probe Image recorded as under 18", t.searches_under_18),
        ("Searches of a Probe Image recorded as under 16", t.searches_under_16),
        ("Submissions", t.submissions),
        ("Approvals", t.approvals),
        ("Rejections", t.rejections),
        ("Cases closed", t.closed),
        ("Cases closed with a Viable Match", t.viable_match_cases),
        ("Potential Matches adjudicated (in the cases closed)", t.adjudicated),
        ("Viable Matches (in the cases closed)", t.viable_matches),
        ("Peer reviews agreeing no Viable Match", t.peer_reviews.get("agreed", 0)),
        ("Peer reviews sending a case back", t.peer_reviews.get("sent_back", 0)),
        ("Cases withdrawn", t.cases_withdrawn),
        ("Cases expired", t.cases_expired),
    ]


def render_html(report: BoardReport) -> str:
    """The report as one self-contained HTML document: text, tables and inline SVG charts; no script."""
    t = report.totals
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>{_e(report.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(report.title)}</h1>",
        f"<p>Period {_e(report.period.since.isoformat())} to {_e(report.period.until.isoformat())} (the end excluded; "
        f"times are the terminals' UTC clocks). Made {_e(report.generated_at)} from the signed audit bundles "
        "accepted by the oversight workspace.</p>",
        f'<p class="lead">{_e(INTELLIGENCE_LEAD)}</p>',
    ]
    incomplete = [c for c in report.coverage if not c.complete or c.open_findings]
    if not report.coverage:
        out.append('<p class="warn">No terminal is registered: there are no figures.</p>')
    elif incomplete:
        items = "".join(
            f"<li>{_e(c.terminal)}: "
            + (
                "no accepted bundle"
                if c.last_event_at is None
                else f"accepted up to seq {c.accepted_through} ({_e(c.last_event_at)})"
            )
            + ("" if c.complete else ", which does not reach the end of the period")
            + "".join(f"; {_e(f)}" for f in c.open_findings)
            + "</li>"
            for c in incomplete
        )
        out.append(
            '<div class="warn"><strong>These figures are incomplete.</strong> For these terminals the oversight '
            f"does not yet hold the whole period, or holds findings an auditor must resolve:<ul>{items}</ul></div>"
        )
    out += [
        "<h2>Summary</h2><table>",
        *(f"<tr><td>{_e(label)}</td><td class=n>{value}</td></tr>" for label, value in summary_rows(t)),
        "</table>",
    ]
    if len(report.by_quarter) > 1:
        quarters = list(report.by_quarter)
        out.append("<h2>By quarter</h2>")
        out.append(
            bar_chart(
                "Searches and cases closed, by quarter",
                quarters,
                [
                    ("searches", [report.by_quarter[q].searches for q in quarters]),
                    ("cases closed", [report.by_quarter[q].closed for q in quarters]),
                ],
            )
        )
    out.append("<h2>Searches</h2>")
    out.append(_counts_chart("Searches by use case", t.searches_by_use_case))
    out.append(_counts_chart("Searches by the Probe Image's apparent age band", t.searches_by_age_band))
    out.append(
        _table_chart(
            "Approvals and rejections by use case",
            _merge(t.approvals_by_use_case, t.rejections_by_use_case),
            ("approved", "rejected"),
        )
    )
    out.append("<h2>Outcomes of the cases closed</h2>")
    outcomes = ("viable_match", "no_viable_match")
    out.append(_table_chart("Cases closed by use case and outcome", t.closed_by_use_case, outcomes))
    out.append(_table_chart("Cases closed by apparent age band and outcome", t.closed_by_age_band, outcomes))
    out.append(
        f"<p>Rates are given only for groups of at least {MIN_RECORDS} records; smaller groups show their counts "
        "(an interval on fewer would be too wide to read).</p>"
    )
    out.append(_rates_table(report.by_case, "viable_match"))
    out.append("<h2>Potential Matches adjudicated, by the reference subject's recorded fields</h2>")
    decisions = ("viable", "not_viable")
    out.append(_table_chart("By sex", t.potential_matches_by_sex, decisions))
    out.append(_table_chart("By ethnicity (IC code)", t.potential_matches_by_ic_code, decisions))
    out.append(_table_chart("By age range at capture", t.potential_matches_by_age_range, decisions))
    out.append(_rates_table(report.by_potential_match, "viable"))
    out.append("<h2>Composition of the Image Reference Libraries</h2>")
    if not report.libraries:
        out.append("<p>No library composition was reported for this period.</p>")
    else:
        images: dict[str, dict[str, int]] = {"by_sex": {}, "by_ic_code": {}, "by_age_range": {}}
        rows = []
        for held in report.libraries:
            rows.append(
                f"<tr><td>{_e(held.library)}</td><td>{_e(held.kind)}</td><td class=n>"
                f"{held.composition['subjects']['total']}</td><td class=n>{held.composition['images']['total']}</td>"
                f"<td>{_e(held.terminal)}, {_e(held.as_at)}</td></tr>"
            )
            for name, counts in images.items():
                for group, n in held.composition["images"][name].items():
                    counts[group] = counts.get(group, 0) + int(n)
        out.append(
            "<table><tr><th>library</th><th>kind</th><th>subjects</th><th>images</th><th>as reported by</th></tr>"
            + "".join(rows)
            + "</table>"
        )
        out.append(_counts_chart("Images by sex", images["by_sex"]))
        out.append(_counts_chart("Images by ethnicity (IC code)", images["by_ic_code"]))
        out.append(_counts_chart("Images by age range at capture", images["by_age_range"]))
    if not report.period.annual and report.by_terminal:
        out.append("<h2>By terminal</h2><table><tr><th>terminal</th><th>searches</th><th>cases closed</th>")
        out.append("<th>Viable Matches</th></tr>")
        for name, figures in report.by_terminal.items():
            out.append(
                f"<tr><td>{_e(name)}</td><td class=n>{figures.searches}</td><td class=n>{figures.closed}</td>"
                f"<td class=n>{figures.viable_matches}</td></tr>"
            )
        out.append("</table>")
    out.append("<h2>What each figure counts</h2><dl>")
    for name, definition in MonitoringFigures.definitions().items():
        out.append(f"<dt>{_e(name)}</dt><dd>{_e(definition)}</dd>")
    out.append("</dl></body></html>")
    return "\n".join(out) + "\n"
