"""A known casework history -> audit bundles -> the oversight -> the Board's figures, asserted exactly.

The history is ``tests/oversight/history.py``'s: two exports (2026 Q3, then Q4), imported here
in the wrong order to show the gap quarantined and released. The demographic figures are derived
independently of the figures code: from the candidate list the terminal recorded for case A and
the library fields the history set.
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from engine import audit
from engine.casework.monitoring import MonitoringFigures
from engine.oversight.imports import import_bundle
from engine.oversight.report import Period, board_figures, board_report, write_report
from engine.oversight.service import Oversight
from engine.security.users import Session
from tests.oversight.history import TERMINAL, World, expected_q3, expected_q4
from tests.terminals import PASSWORD


def imported(world: World, oversight: tuple[Oversight, Session]) -> tuple[Oversight, Session]:
    ov, olive = oversight
    key = world.private_key()
    later = import_bundle(ov, olive, world.bundles["q4"].read_bytes(), key, source="q4")
    assert later.outcome == "quarantined" and later.first is not None and later.first > 1
    first = import_bundle(ov, olive, world.bundles["q3"].read_bytes(), key, source="q3")
    assert (first.outcome, first.first, first.released) == ("accepted", 1, (later.bundle_id,))
    return ov, olive


def test_the_boards_figures_are_the_known_history(world: World, oversight: tuple[Oversight, Session]) -> None:
    ov, olive = imported(world, oversight)
    q3, q4 = expected_q3(world), expected_q4(world)
    assert q3.problems() == [] and q4.problems() == []

    quarter = board_report(ov, olive, Period.parse("2026Q3"))
    assert quarter.totals == q3
    assert quarter.by_terminal == {TERMINAL: q3}
    assert board_figures(ov, Period.parse("2026Q4")).totals == q4
    year = board_figures(ov, Period.parse(year="2026"))
    assert year.totals == q3.add(q4)
    assert year.by_quarter == {"2026Q1": MonitoringFigures(), "2026Q2": MonitoringFigures(), "2026Q3": q3, "2026Q4": q4}
    # One population: the Potential Matches are those of the cases closed, never those of case D while it was open.
    assert q3.adjudicated == 4 * q3.closed and q4.adjudicated == 4 * q4.closed

    # Coverage: Q3 is wholly held (the log reaches into October); the year is not over.
    (held,) = quarter.coverage
    assert held.terminal == TERMINAL and held.complete and held.open_findings == [] and quarter.complete
    assert not year.complete and year.coverage[0].last_event_at is not None
    # The library as the terminal reported it at export 1.
    (custody,) = quarter.libraries
    assert custody.library == "custody" and custody.composition["subjects"]["total"] == 4
    assert custody.composition["subjects"]["by_sex"] == {"female": 2, "male": 2, "unknown": 0}
    assert custody.composition["images"]["by_age_range"]["25-34"] == 8
    with ov.ws.reading() as conn:
        looked = [e for e in audit.events(conn) if e.action == "oversight.report"]
    assert looked[-1].actor == "olive" and looked[-1].details["period"] == "2026Q3"


def test_the_report_files(world: World, oversight: tuple[Oversight, Session], tmp_path: Path) -> None:
    ov, olive = imported(world, oversight)
    report = board_report(ov, olive, Period.parse("2026Q3"))
    written = write_report(report, tmp_path / "q3")
    assert [p.name for p in written] == [
        "report.html",
        "figures.csv",
        "rates.csv",
        "library_composition.csv",
        "coverage.csv",
    ]

    rows = list(csv.DictReader(io.StringIO((tmp_path / "q3" / "figures.csv").read_text())))
    cell = {(r["terminal"], r["figure"], r["group"], r["outcome"]): int(r["count"]) for r in rows}
    assert cell[("all", "searches", "", "")] == 3
    assert cell[("all", "rejections_by_use_case", "identify_unknown_subject", "")] == 1
    assert cell[("all", "closed_by_age_band", "16-17", "no_viable_match")] == 1
    assert cell[(TERMINAL, "potential_matches", "viable", "")] == 1
    coverage = list(csv.DictReader(io.StringIO((tmp_path / "q3" / "coverage.csv").read_text())))
    assert coverage[0]["terminal"] == TERMINAL and coverage[0]["complete"] == "yes"

    page = (tmp_path / "q3" / "report.html").read_text()
    assert "<script" not in page.lower() and not re.search(r"(https?:)?//[a-z]", page.split("</style>", 1)[1])
    assert "intelligence lead only" in page and "FR Technology Board quarterly figures, 2026Q3" in page
    charts = re.findall(r"<svg .*?</svg>", page, flags=re.S)
    assert len(charts) >= 8
    for chart in charts:
        ET.fromstring(chart)  # each chart is well-formed SVG
    for name, definition in MonitoringFigures.definitions().items():
        assert name in page and definition.split(":")[0].replace("'", "&#x27;") in page
    with pytest.raises(Exception, match="never overwritten"):
        write_report(report, tmp_path / "q3")


def test_the_annual_public_report_names_no_terminal(world: World, oversight: tuple[Oversight, Session]) -> None:
    ov, olive = imported(world, oversight)
    year = board_report(ov, olive, Period.parse(year="2026"))
    payload = year.to_json()
    assert payload["by_terminal"] == {} and payload["totals"]["searches"] == 4
    from engine.oversight.report import figures_csv, render_html

    assert TERMINAL not in figures_csv(year).decode()
    assert "By terminal" not in render_html(year) and "By quarter" in render_html(year)


def test_what_the_oversight_keeps(world: World, oversight: tuple[Oversight, Session]) -> None:
    ov, _olive = imported(world, oversight)
    q3 = world.bundle("q3")
    q4 = world.bundle("q4")
    statuses = ov.ws.query("SELECT first_seq, last_seq, status FROM oversight_bundles ORDER BY first_seq")
    assert statuses == [
        (1, q3.predicate.last_seq, "accepted"),
        (q4.predicate.first_seq, q4.predicate.last_seq, "accepted"),
    ]
    events = ov.ws.query("SELECT seq, hash FROM oversight_events WHERE terminal = ? ORDER BY seq", (TERMINAL,))
    assert [s for s, _ in events] == list(range(1, q4.predicate.last_seq + 1))
    assert events[-1][1] == q4.predicate.head_hash
    # Export 2 begins with the terminal's record of export 1, naming its range and file.
    first = q4.events[0]
    assert first.action == "audit.export" and f'"last":{q3.predicate.last_seq}' in first.details
    assert ov.ws.query("SELECT kind, resolved_at IS NOT NULL FROM oversight_findings") == [("gap", 1)]
    terminal = ov.terminal(TERMINAL)
    assert terminal.accepted_through == q4.predicate.last_seq and terminal.bundles == {"accepted": 2}
    assert terminal.workspace_id == q3.predicate.workspace_id


def test_the_findings_as_an_auditor_screen_reads_them(world: World, oversight: tuple[Oversight, Session]) -> None:
    ov, olive = imported(world, oversight)
    assert ov.findings(olive) == []  # the gap was closed when the missing bundle arrived
    (gap,) = ov.findings(olive, include_resolved=True)
    assert (gap.terminal, gap.kind, gap.resolved_at is not None) == (TERMINAL, "gap", True)
    assert gap.to_json()["kind"] == "gap"
    with ov.ws.reading() as conn:
        looks = [e for e in audit.events(conn) if e.action == "oversight.findings_view"]
    assert [(e.actor, e.details["findings"]) for e in looks] == [("olive", 0), ("olive", 1)]
    engineer = ov.accounts.login("eng1", PASSWORD)
    with pytest.raises(Exception, match="needs the Auditor role"):
        ov.findings(engineer)
