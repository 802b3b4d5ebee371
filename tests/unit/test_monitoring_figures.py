"""The monitoring figures: each defined, each counted from one population, on a known history and by their rules.

The known history is ``tests/oversight/history.py``'s (a real terminal, two quarters of casework);
its expected figures are derived there without the figures code. The rest checks the schema's
rules directly: strict parsing (a bundle's figures are hostile input), adding up, the agreements
between figures, and which quarter an event falls in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from engine.casework.monitoring import (
    BundleFigures,
    MonitoringFigures,
    event_totals,
    figures_by_quarter,
    outcome_report,
    period_figures,
    quarter_bounds,
    quarter_label,
    quarters_between,
    totals_of,
)
from engine.security.keys import read_key_file
from engine.workspace import Workspace
from tests.oversight.history import World, expected_q3, expected_q4, run_history


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, Workspace]]:
    world = run_history(tmp_path_factory.mktemp("figures"))
    key = read_key_file(world.terminal_dir.with_name(world.terminal_dir.name + ".key"))
    with Workspace.open(world.terminal_dir, key) as ws:  # read only: opened without the audit key
        yield world, ws


def test_the_known_history_gives_the_known_figures(history: tuple[World, Workspace]) -> None:
    world, ws = history
    q3, q4 = expected_q3(world), expected_q4(world)
    assert period_figures(ws, "2026-07-01", "2026-10-01") == q3
    assert period_figures(ws, "2026-10-01", "2027-01-01") == q4
    assert period_figures(ws, "2026-01-01", "2027-01-01") == q3.add(q4)
    last = int(ws.query_one("SELECT MAX(seq) FROM audit_events")[0])  # type: ignore[index]
    assert figures_by_quarter(ws, 1, last) == {"2026Q3": q3, "2026Q4": q4}


def test_outcomes_count_one_population(history: tuple[World, Workspace]) -> None:
    """Found: 'N closed cases' beside Potential Matches of cases still open, and no count of searches."""
    _world, ws = history
    report = outcome_report(ws, "2026-07-01", "2026-10-01")
    # Case D was searched and adjudicated in Q3 but is open at its end: neither its case nor its 4 candidates count.
    assert (report.searches, report.cases, report.viable_match_cases) == (3, 2, 1)
    assert (report.potential_matches, report.viable_potential_matches) == (8, 1)
    for breakdown in report.by_case:
        assert sum(row.records for row in breakdown.rows) == report.cases
    for breakdown in report.by_potential_match:
        assert sum(row.records for row in breakdown.rows) == report.potential_matches
    payload = report.to_json()
    assert payload["searches"] == 3 and payload["closed_cases"] == 2 and payload["figures"] == report.figures.to_json()
    assert set(payload["definitions"]) == set(MonitoringFigures.definitions())


def test_every_figure_is_defined() -> None:
    definitions = MonitoringFigures.definitions()
    kinds = MonitoringFigures.kinds()
    assert list(definitions) == list(kinds) == list(MonitoringFigures().to_json())
    for name, text in definitions.items():
        assert len(text) > 40 and text.endswith("."), name
        assert kinds[name] in ("count", "counts", "table")
    # Each definition names its events or its population.
    assert all(
        "event" in text or "cases closed" in text or "Potential Matches" in text for text in definitions.values()
    )


def _consistent() -> dict[str, Any]:
    return MonitoringFigures(
        searches=2,
        searches_by_use_case={"identify_unknown_subject": 2},
        searches_by_age_band={"adult": 1, "13-15": 1},
        searches_under_18=1,
        searches_under_16=1,
        peer_reviews={"agreed": 1},
        cases_closed={"no_viable_match": 1, "viable_match": 1},
        closed_by_use_case={"identify_unknown_subject": {"no_viable_match": 1, "viable_match": 1}},
        closed_by_age_band={"adult": {"viable_match": 1}, "13-15": {"no_viable_match": 1}},
        closed_under_18={"no_viable_match": 1},
        closed_under_16={"no_viable_match": 1},
        potential_matches={"viable": 1, "not_viable": 3},
        potential_matches_by_sex={"female": {"viable": 1, "not_viable": 1}, "male": {"not_viable": 2}},
        potential_matches_by_ic_code={"IC1": {"viable": 1, "not_viable": 3}},
        potential_matches_by_age_range={"25-34": {"viable": 1, "not_viable": 3}},
        potential_matches_by_library={"custody": {"viable": 1, "not_viable": 3}},
    ).to_json()


def test_figures_read_back_strictly() -> None:
    data = _consistent()
    figures = MonitoringFigures.from_json(data)
    assert figures.to_json() == data and figures.problems() == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(extra=1), r"unknown figures \['extra'\]"),
        (lambda d: d.pop("searches"), r"missing figures \['searches'\]"),
        (lambda d: d.update(searches=-1), r"figures\.searches: expected a whole number"),
        (lambda d: d.update(searches=True), r"figures\.searches: expected a whole number"),
        (lambda d: d.update(searches=1.5), r"figures\.searches: expected a whole number"),
        (lambda d: d.update(searches=10**13), r"figures\.searches: expected a whole number"),
        (lambda d: d.update(peer_reviews=[1]), r"figures\.peer_reviews: expected an object"),
        (lambda d: d.update(peer_reviews={"": 1}), r"figures\.peer_reviews: a group name must be printable"),
        (lambda d: d.update(peer_reviews={"x\n": 1}), r"a group name must be printable"),
        (lambda d: d.update(peer_reviews={str(i): 1 for i in range(300)}), r"at most 256 counts"),
        (lambda d: d["closed_by_use_case"].update(x=3), r"figures\.closed_by_use_case\.x: expected an object"),
    ],
)
def test_malformed_figures_are_named(change: Any, message: str) -> None:
    data = _consistent()
    change(data)
    with pytest.raises(ValueError, match=message):
        MonitoringFigures.from_json(data)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.update(searches=3), "searches by use case: 2 against 3"),
        (lambda d: d.update(searches_under_18=5), "under-18 searches 5 exceed the searches 2"),
        (lambda d: d["closed_by_age_band"].pop("adult"), "closed by age band: 1 against 2"),
        (lambda d: d.update(closed_under_16={"no_viable_match": 2}), "closed under 16 (no_viable_match) 2 exceeds"),
        (
            lambda d: d["potential_matches_by_sex"]["male"].update(viable=1),
            "potential matches by sex (viable): 2 against 1",
        ),
        (lambda d: d.update(peer_reviews={}), "peer reviews agreed and cases closed with no Viable Match: 0 against 1"),
        (
            lambda d: d.update(potential_matches={"not_viable": 4}),
            "1 cases closed with a Viable Match but only 0 Viable Matches",
        ),
    ],
)
def test_figures_that_disagree_are_found(change: Any, problem: str) -> None:
    data = json.loads(json.dumps(_consistent()))
    change(data)
    assert any(problem in p for p in MonitoringFigures.from_json(data).problems())


def test_figures_add_up() -> None:
    one = MonitoringFigures.from_json(_consistent())
    two = MonitoringFigures(searches=1, searches_by_use_case={"exploited_children": 1}, cases_withdrawn=2)
    both = one.add(two)
    assert both == two.add(one) and both.add(MonitoringFigures()) == both
    assert both.searches == 3 and both.searches_by_use_case == {"exploited_children": 1, "identify_unknown_subject": 2}
    assert both.cases_withdrawn == 2 and both.closed_by_use_case == one.closed_by_use_case


def test_events_fall_in_the_quarter_of_their_utc_time() -> None:
    events = [
        ("2026-09-30T23:59:59.999999Z", "case.search", "{}"),
        ("2026-10-01T00:00:00.000000Z", "case.search", "{}"),
        ("2026-10-01T00:00:00.000001Z", "case.peer_review", '{"agree":true}'),
        ("2026-12-31T23:59:59.999999Z", "case.peer_review", '{"agree":false}'),
        ("2026-11-01T10:00:00.000000Z", "user.login", "{}"),
    ]
    totals = event_totals(events)
    assert sorted(totals) == ["2026Q3", "2026Q4"]
    assert totals["2026Q3"]["searches"] == 1 and totals["2026Q4"]["searches"] == 1
    assert totals["2026Q4"]["peer_reviews_agreed"] == 1 and totals["2026Q4"]["closed_no_viable_match"] == 1
    assert totals["2026Q4"]["peer_reviews_sent_back"] == 1
    assert set(totals["2026Q4"]) == set(totals_of(MonitoringFigures()))
    assert (
        quarter_label("2026-01-01T00:00:00.000000Z") == "2026Q1"
        and quarter_label("2026-12-31T00:00:00.000000Z") == "2026Q4"
    )
    assert [str(d) for d in quarter_bounds("2026q4")] == ["2026-10-01", "2027-01-01"]
    assert quarters_between(*quarter_bounds("2026Q2")) == ["2026Q2"]
    with pytest.raises(ValueError, match="not a quarter"):
        quarter_bounds("2026Q5")


def test_a_bundles_figures_read_back_strictly(history: tuple[World, Workspace]) -> None:
    world, _ws = history
    raw = world.bundle("q3").figures
    parsed = BundleFigures.from_json(raw)
    assert parsed.by_quarter == {"2026Q3": expected_q3(world)} and parsed.libraries[0]["library"] == "custody"
    broken = json.loads(json.dumps(raw))
    broken["library_composition"]["libraries"][0]["images"]["by_sex"]["female"] += 1
    with pytest.raises(ValueError, match=r"images\.by_sex: does not add up to the total"):
        BundleFigures.from_json(broken)
    broken = json.loads(json.dumps(raw))
    broken["by_quarter"]["2026Q9"] = broken["by_quarter"]["2026Q3"]
    with pytest.raises(ValueError, match="'2026Q9' is not a quarter"):
        BundleFigures.from_json(broken)
