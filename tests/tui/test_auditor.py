"""The auditor's screens on a real terminal: verifying the audit log, browsing its events, the monitoring figures.

Pilot walks through the real screens, as an auditor signed in at the home screen: verify a clean
log and read the head to record; tamper with the log as an insider holding the workspace key
would (SQL through ``terminal.ws.transaction()``, a trigger dropped) and see FAILED with each
problem; check against a wrong public key file chosen from the media; catch a rollback with the
head recorded before it; browse and filter the events; read the figures for a quarter with
closed cases. Each walk asserts on what the screen shows and on the audit events the looks
recorded. Snapshots of every screen, default and high contrast, are at the end (update with
``--snapshot-update``; review the SVGs like code).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, DirectoryTree, Input, ProgressBar, Static

from engine import audit
from engine.audit.chain import AuditEvent
from engine.audit.store import ALL_TRIGGERS
from engine.audit.verify import VerifyResult
from engine.casework import MatchReport, SubmissionForm
from engine.casework.monitoring import MonitoringFigures
from engine.policy import load_default_policy
from engine.policy.model import Search
from engine.security.users import Session
from engine.terminal import Terminal
from rfr_tui.app import RfrApp
from rfr_tui.screens import audit_events
from rfr_tui.screens.audit_events import AuditEventsScreen, EventDetails
from rfr_tui.screens.audit_verify import WITH_HEAD, WITHOUT_HEAD, KeyFileChooser, VerifyScreen, grouped_hash, parse_head
from rfr_tui.screens.figures import FiguresScreen
from rfr_tui.screens.home import HomeScreen
from rfr_tui.widgets.bar_chart import Bar, BarChart, chart_lines
from rfr_tui.widgets.file_chooser import Place
from rfr_tui.widgets.state_label import StateLabel, Tone
from tests.synthetic import synthetic_jpeg, write_subject_folders
from tests.terminals import PASSWORD, make_terminal, provision
from tests.tui.support import poll as until
from tests.tui.support import run, settle, signed_in_then
from tests.tui.support import workers_done as done

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SIZE = (120, 40)
THEMES = pytest.mark.parametrize("high_contrast", [False, True], ids=["default", "high-contrast"])
CANDIDATES = 4
PEOPLE: dict[str, tuple[list[str], str | None]] = {
    "ann": (["auditor"], None),
    "alice": (["rfr_user"], "Constable"),
    "ivan": (["approver"], "Inspector"),
    "pat": (["peer_reviewer"], None),
}
CHECKS = {
    "local_intelligence": ("exhausted", "Local briefing and intelligence systems searched; no trace"),
    "circulation": ("exhausted", "Circulated to response and neighbourhood teams; nobody knew him"),
    "other_enquiries": ("exhausted", "Witnesses spoken to and shop records checked without result"),
    "biometric_identification": ("unviable", "No fingerprints or DNA were left at the scene"),
}
REPORT = {
    "factors": {
        "probe_image_quality": {"relevant": True, "assessment": "CCTV still, small face, some blur"},
        "reference_image_quality": {"relevant": False, "assessment": "custody image, frontal, sharp"},
        "time_lapse": {"relevant": True, "assessment": "about three years; weight gain"},
        "lighting": {"relevant": False, "assessment": "even light in both images"},
        "other": {"relevant": False, "assessment": "no coverings or eyewear in either"},
    },
    "reasoning": "Ear shape, nose and an eyebrow scar agree; the differences are explained by three years.",
}


class Clock:
    """A millisecond later on every reading: the same times on every run."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@dataclass
class World:
    terminal: Terminal
    clock: Clock
    root: Path

    def login(self, name: str) -> Session:
        return self.terminal.accounts.login(name, PASSWORD)

    def events(self, action: str | None = None) -> list[AuditEvent]:
        with self.terminal.ws.reading() as conn:
            return [e for e in audit.events(conn) if action is None or e.action == action]

    def verify(self, **kwargs: Any) -> VerifyResult:
        with self.terminal.ws.reading() as conn:
            return audit.verify(conn, self.terminal.ws.audit_public_key, **kwargs)

    def tamper(self, *statements: str, leave_dropped: tuple[str, ...] = ()) -> None:
        """As an insider holding the workspace key: plain SQL, the append-only triggers dropped and put back."""
        with self.terminal.ws.transaction() as conn:
            for name in ALL_TRIGGERS:
                conn.execute(f"DROP TRIGGER {name}")
            for statement in statements:
                conn.execute(statement)
            for name, sql in ALL_TRIGGERS.items():
                if name not in leave_dropped:
                    conn.execute(sql)

    def casework(self, viable: int, none: int) -> None:
        """Cases searched and closed through the engine: ``viable`` with a Viable Match, ``none`` peer-reviewed."""
        policy = self.terminal.policy
        for number in range(viable + none):
            form = SubmissionForm.create(
                policy,
                completed_by="alice",
                use_case="identify_unknown_subject",
                reference=f"OCC/2026/{number:04d}",
                offence="robbery",
                justification="Identify the robber of a shop; all other lines of enquiry are exhausted now.",
                pre_rfr_checks=CHECKS,
                probe_source="police",
                probe_captured="2026-02-27T21:40",
                probe_obtained="Exported from the shop's CCTV system by PC 1234",
                age_band="adult" if number % 2 else "16-17",
                libraries=["custody"],
                now=self.clock.now,
            )
            cases = self.terminal.cases
            case = cases.new_case(self.login("alice"), form, synthetic_jpeg(3, number))
            cases.submit(self.login("alice"), case.id)
            cases.approve(self.login("ivan"), case.id, "necessary and proportionate")
            case = cases.search(self.login("alice"), case.id).case
            for candidate in case.candidates:
                decision = "viable" if number < viable and candidate.rank == 1 else "not_viable"
                report = MatchReport.from_mapping(REPORT) if decision == "viable" else None
                case = cases.adjudicate(self.login("alice"), case.id, candidate.rank, decision, report)
            if number < viable:
                cases.close(self.login("alice"), case.id, "lead disseminated")
            else:
                cases.peer_review(self.login("pat"), case.id, True, "agree: none is viable")


def build(root: Path, *, viable: int = 0, none: int = 0) -> World:
    """A terminal with an auditor, an officer, an approver and a peer reviewer, one library, and some cases."""
    policy = replace(load_default_policy(), search=Search(candidate_list_size=CANDIDATES))
    clock = Clock()
    terminal = make_terminal(root / "ws", clock=clock, policy=policy)
    sessions = provision(terminal, PEOPLE)
    terminal.libraries.create(sessions["eng1"], "custody", "substantive")
    write_subject_folders(root / "custody", {f"custody-{i}": 2 for i in range(4)}, seed=0)
    terminal.libraries.enrol(sessions["eng1"], "custody", root / "custody")
    with terminal.ws.transaction() as conn:  # the library's recorded fields, as an enrolment's metadata gives them
        conn.execute("UPDATE subjects SET sex = 'male', ic_code = 'IC1'")
        conn.execute("UPDATE subjects SET sex = 'female', ic_code = 'IC3' WHERE reference = 'custody-0'")
    world = World(terminal, clock, root)
    world.casework(viable, none)
    return world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build(tmp_path)
    with built.terminal:
        yield built


def walk(world: World, body: Callable[[RfrApp, Pilot[Any]], Awaitable[None]], *, high_contrast: bool = False) -> None:
    """Open the application on the world's terminal, sign the auditor in, and run ``body``."""

    async def go() -> None:
        app = RfrApp(terminal=world.terminal)
        app.set_high_contrast(high_contrast)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.signed_in(world.terminal.sign_in("ann", PASSWORD))
            await pilot.pause()
            assert isinstance(app.screen, HomeScreen)
            await body(app, pilot)

    run(go)


def shown(app: RfrApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


# ---- verifying the audit log ----------------------------------------------------------------------


def test_an_auditor_verifies_a_clean_log_then_sees_each_problem_after_tampering(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Progress every ten events, not every 5,000 (the package's ``verify`` name is the function, not the module).
    monkeypatch.setattr(importlib.import_module("engine.audit.verify"), "_PROGRESS_EVERY", 10)
    seen: list[tuple[int, int, str]] = []
    show_progress = VerifyScreen.on_verify_screen_progress

    def spy(screen: VerifyScreen, event: VerifyScreen.Progress) -> None:
        show_progress(screen, event)
        if screen.running:  # progress that arrives after the verdict is ignored
            bar = screen.query_one("#verify-progress", ProgressBar)
            seen.append((int(bar.progress), int(bar.total or 0), shown(screen.rfr, "#verify-status")))

    monkeypatch.setattr(VerifyScreen, "on_verify_screen_progress", spy)
    made = VerifyScreen.Progress.__init__

    def slowly(message: VerifyScreen.Progress, read: int, total: int) -> None:
        time.sleep(0.05)  # a slow disk: the reading (in the worker) takes long enough for the screen to show it
        made(message, read, total)

    monkeypatch.setattr(VerifyScreen.Progress, "__init__", slowly)

    async def body(app: RfrApp, pilot: Pilot[Any]) -> None:
        await pilot.press("v")
        assert isinstance(app.screen, VerifyScreen)
        screen = app.screen
        assert WITHOUT_HEAD in shown(app, "#verify-limits")
        await pilot.press("v")
        await done(pilot)
        # The worker's progress reached the screen as it read (the last one may come after the verdict,
        # and is then ignored), then the bar went away with the verdict.
        total = screen.result.events if screen.result else 0
        expected = [*range(10, total + 1, 10), total]
        assert len(seen) >= 3 and [read for read, _total, _words in seen] == expected[: len(seen)]
        assert {bar_total for _read, bar_total, _words in seen} == {total}
        assert seen[0][2] == f"Reading events: 10 of {total:,}..."
        assert not screen.query_one("#verify-progress", ProgressBar).display
        state = screen.query_one("#verify-state", StateLabel)
        assert state.tone is Tone.GOOD and state.words.startswith("VERIFIED")
        result = screen.result
        assert result is not None and result.ok and result.head is not None
        seq, digest = result.head
        text = screen.verdict_text
        assert text.startswith("Audit log verified with this terminal's own audit key: ")
        assert f"Seq:   {seq}" in text
        for line in grouped_hash(digest):  # the hash in blocks of four, to copy by eye
            assert line in text and len(line.split()) == 8
        assert "".join("".join(grouped_hash(digest)).split()) == digest
        assert world.events("audit.verify")[-1].details == {
            "ok": True,
            "events": result.events,
            "problems": 0,
            "key": "the terminal's own",
            "expected": None,
        }

        # An insider with the workspace key edits an event and leaves a trigger dropped.
        world.tamper(
            "UPDATE audit_events SET actor = 'mallory' WHERE seq = 7", leave_dropped=("audit_events_no_update",)
        )
        await pilot.press("v")
        await done(pilot)
        result = screen.result
        assert result is not None and not result.ok
        failed = screen.query_one("#verify-state", StateLabel)
        assert failed.tone is Tone.BAD and failed.words == f"FAILED: {len(result.problems)} problems found"
        assert "append-only protection removed: trigger audit_events_no_update is missing" in result.problems
        assert "seq 7: hash mismatch (event edited)" in result.problems
        lines = screen.verdict_text.splitlines()
        assert lines[0].startswith("The audit log FAILED verification with this terminal's own audit key")
        assert lines[1:] == [f"• {problem}" for problem in result.problems]  # every problem, one a line
        assert "Record this head" not in screen.verdict_text
        recorded = world.events("audit.verify")[-1].details
        assert recorded["ok"] is False and recorded["problems"] == len(result.problems)

    walk(world, body)


def key_files(world: World, place: Path) -> dict[str, Path]:
    """The terminal's own public key, another terminal's, and a file that is no key, on the 'media'."""
    place.mkdir(parents=True, exist_ok=True)
    other = make_terminal(world.root / "other")
    files = {
        "other.pem": audit.public_key_pem(other.ws.audit_public_key),
        "terminal.pem": audit.public_key_pem(world.terminal.ws.audit_public_key),
        "notes.txt": "not a key at all\n",
    }
    other.close()
    for name, text in files.items():
        (place / "keys").mkdir(exist_ok=True)
        (place / "keys" / name).write_text(text)
    return {name: place / "keys" / name for name in files}


async def choose_key(pilot: Pilot[Any], name: str) -> None:
    """k, the place, the keys folder, then the file, all by keyboard."""
    await pilot.press("k")
    chooser = pilot.app.screen
    assert isinstance(chooser, KeyFileChooser)
    await pilot.press("enter")  # the first (only) place
    tree = chooser.query_one("#key-tree", DirectoryTree)
    await until(pilot, lambda: bool(tree.root.children))  # the tree reads folders in a worker that never ends
    await pilot.press("down", "enter")  # the keys folder, opened
    keys = tree.root.children[0]
    await until(pilot, lambda: bool(keys.children))
    names = [str(child.label) for child in keys.children]
    assert names == ["notes.txt", "other.pem", "terminal.pem"]
    await pilot.press(*["down"] * (names.index(name) + 1), "enter")
    await pilot.pause()
    assert isinstance(pilot.app.screen, VerifyScreen)


def test_the_auditors_key_file_from_the_media_wrong_right_and_not_a_key(world: World) -> None:
    media = world.root / "media"
    files = key_files(world, media)
    own_key_id = audit.AuditSigningKey.read_file(world.terminal.config.audit_key_file).key_id

    async def body(app: RfrApp, pilot: Pilot[Any]) -> None:
        app.push_screen(VerifyScreen(places=[Place("USB stick", media)]))
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, VerifyScreen)

        await choose_key(pilot, "other.pem")
        assert shown(app, "#verify-key") == "the public key file USB stick: keys/other.pem"
        assert screen.key_file == files["other.pem"]
        await pilot.press("v")
        await done(pilot)
        assert screen.result is not None and not screen.result.ok
        wrong = [p for p in screen.result.problems if p.startswith("the log is not signed with the public key given")]
        assert len(wrong) == 1 and f"its keys are {own_key_id[:16]}" in wrong[0]
        assert f"• {wrong[0]}" in screen.verdict_text.splitlines()
        assert world.events("audit.verify")[-1].details["key"] == "given by the auditor"

        await choose_key(pilot, "terminal.pem")
        await pilot.press("v")
        await done(pilot)
        assert screen.result is not None and screen.result.ok
        assert screen.verdict_text.startswith(
            "Audit log verified with the public key file USB stick: keys/terminal.pem: "
        )

        await choose_key(pilot, "notes.txt")
        events_before = len(world.events("audit.verify"))
        await pilot.press("v")
        await done(pilot)
        assert shown(app, "#verify-problem") == (
            "Not verified: the public key is neither PEM nor 32 raw bytes; export it again from the terminal"
        )
        assert screen.query_one("#verify-state", StateLabel).words == "Not verified"
        assert len(world.events("audit.verify")) == events_before  # nothing was verified, nothing recorded

        await pilot.press("t")  # back to the terminal's own key
        assert shown(app, "#verify-key") == "this terminal's own audit key" and screen.key_file is None
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)

    walk(world, body)


def test_a_head_recorded_before_a_rollback_shows_it(world: World) -> None:
    async def body(app: RfrApp, pilot: Pilot[Any]) -> None:
        await pilot.press("v")
        screen = app.screen
        assert isinstance(screen, VerifyScreen)
        await pilot.press("v")
        await done(pilot)
        assert screen.result is not None and screen.result.head is not None
        earlier = screen.result.head
        world.login("alice")  # more events, signed
        await pilot.press("v")
        await done(pilot)
        assert screen.result is not None and screen.result.head is not None
        later = screen.result.head
        assert later[0] > earlier[0]
        # The head as the auditor wrote it down: the seq, and the hash in its blocks (spaces and all).
        written = f"{later[0]}:" + " ".join(grouped_hash(later[1]))

        # Someone cuts the log back to the earlier signed head: a genuine, shorter log.
        world.tamper(
            f"DELETE FROM audit_events WHERE seq > {earlier[0]}",
            f"DELETE FROM audit_checkpoints WHERE seq > {earlier[0]}",
        )
        await pilot.press("v")
        await done(pilot)
        assert screen.result is not None and screen.result.ok  # without a recorded head: the documented limit
        assert WITHOUT_HEAD in shown(app, "#verify-limits")

        await pilot.press("h")
        assert isinstance(app.focused, Input) and app.focused.id == "verify-expect"
        await pilot.press("x", "y", "enter")
        assert shown(app, "#verify-problem").startswith("The recorded head is not SEQ:HASH")
        app.focused.value = written
        await pilot.press("enter")
        await done(pilot)
        result = screen.result
        assert result is not None and not result.ok
        assert result.problems == [
            f"the log does not hold the head recorded outside the terminal (seq {later[0]}, hash {later[1][:16]}): "
            "it was rolled back or rebuilt"
        ]
        assert screen.query_one("#verify-state", StateLabel).words == "FAILED: 1 problem found"
        assert f"• {result.problems[0]}" in screen.verdict_text
        assert WITH_HEAD in shown(app, "#verify-limits")
        assert world.events("audit.verify")[-1].details["expected"] == f"{later[0]}:{later[1]}"

    walk(world, body)


def test_the_recorded_head_is_read_as_written_down() -> None:
    digest = "0123456789abcdef" * 4
    assert parse_head("") is None
    assert parse_head(f" 42:{digest.upper()} ") == (42, digest)
    assert parse_head("42: " + " ".join(grouped_hash(digest))) == (42, digest)
    for wrong in ("42", f"seq 42 {digest}", f"42:{digest[:-1]}", f"-1:{digest}", f"42:{digest[:-1]}g"):
        with pytest.raises(ValueError, match=r"not SEQ:HASH"):
            parse_head(wrong)
    assert grouped_hash(digest) == ["0123 4567 89ab cdef 0123 4567 89ab cdef"] * 2


# ---- browsing the events --------------------------------------------------------------------------


def rows(app: RfrApp) -> list[list[str]]:
    table = app.screen.query_one("#events-table", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def filter_by(pilot: Pilot[Any], key: str, text: str) -> None:
    await pilot.press(key)
    field = pilot.app.focused
    assert isinstance(field, Input)
    field.value = text
    await pilot.press("enter")
    await done(pilot)


def test_an_auditor_browses_and_filters_the_events(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_events, "PAGE", 5)
    world.login("alice")

    async def body(app: RfrApp, pilot: Pilot[Any]) -> None:
        await pilot.press("e")
        await done(pilot)
        screen = app.screen
        assert isinstance(screen, AuditEventsScreen)
        every = world.events()
        shown_rows = rows(app)
        # Newest first: the look itself is the newest event, recorded after the page was read.
        assert [int(r[0]) for r in shown_rows] == [e.seq for e in reversed(every[:-1])][:5]
        newest = every[-2]
        assert shown_rows[0][1:] == [
            audit_events.show_time(newest.at),
            newest.actor,
            newest.action,
            audit_events.show_subjects(newest.subjects),
        ]
        assert every[-1].action == "audit.view" and every[-1].details == {"filter": {}, "events": 5}

        await pilot.press("f1")  # every key of the screen, in the help
        help_keys = {(k.key, k.description) for k in app.screen.keys}  # type: ignore[attr-defined]
        assert {("a", "Actor"), ("f", "Action"), ("s", "Subject"), ("d", "Days"), ("x", "Clear")} <= help_keys
        assert {("n", "Older"), ("p", "Newer"), ("esc", "Back")} <= help_keys
        await pilot.press("escape")
        assert app.screen is screen

        await pilot.press("n")  # older
        await done(pilot)
        older = [int(r[0]) for r in rows(app)]
        assert older == [e.seq for e in reversed(every[:-1])][5:10]
        assert world.events("audit.view")[-1].details == {"filter": {}, "events": 5}
        await pilot.press("p")  # newer again
        await done(pilot)
        assert int(rows(app)[0][0]) == world.events()[-2].seq  # the newest page again, with the looks since

        await filter_by(pilot, "f", "user")
        assert rows(app) and all(r[3].startswith("user.") for r in rows(app))
        assert isinstance(app.focused, DataTable)
        await filter_by(pilot, "a", "alice")
        assert rows(app) and all(r[2] == "alice" and r[3].startswith("user.") for r in rows(app))
        alice = [e for e in world.events() if e.actor == "alice" and e.action.startswith("user.")]
        assert [int(r[0]) for r in rows(app)] == [e.seq for e in reversed(alice)][:5]
        assert world.events("audit.view")[-1].details == {
            "filter": {"actor": "alice", "action": "user"},
            "events": min(5, len(alice)),
        }
        summary = shown(app, "#events-summary")
        assert summary.startswith("Filtered by actor alice, action user. ")

        # One event in full.
        await pilot.press("enter")
        details = app.screen
        assert isinstance(details, EventDetails) and details.event.seq == int(rows_of(screen)[0][0])
        text = shown(app, "#event-details-text")
        assert f"Actor:    {details.event.actor}" in text and grouped_hash(details.event.hash)[0] in text
        await pilot.press("escape")
        assert app.screen is screen

        # Days: a wrong one is named; a range with nothing in it says so; clearing shows everything.
        await filter_by(pilot, "d", "2026-02-30")
        assert (
            shown(app, "#events-problem")
            == "From day '2026-02-30' is not a day: write it as YYYY-MM-DD, e.g. 2026-03-31."
        )
        since = screen.query_one("#filter-since", Input)
        assert since.has_focus  # still there, to be put right
        since.value = "2026-03-03"
        await pilot.press("enter")
        await done(pilot)
        assert rows(app) == [] and shown(app, "#events-summary").endswith("No event matches.")
        assert world.events("audit.view")[-1].details["filter"]["since"] == "2026-03-03T00:00:00.000000Z"
        await pilot.press("x")
        await done(pilot)
        assert len(rows(app)) == 5 and shown(app, "#events-summary").startswith("Every event (no filter).")
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)

    walk(world, body)


def rows_of(screen: AuditEventsScreen) -> list[list[str]]:
    table = screen.query_one("#events-table", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


# ---- the monitoring figures -----------------------------------------------------------------------


# One terminal with eight closed cases for the figures walk and every snapshot: what they assert and show
# does not change with the looks each of them records.
@pytest.fixture(scope="module")
def closed_cases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = build(tmp_path_factory.mktemp("closed-cases"), viable=3, none=5)
    built.terminal.faces.get(timeout=30)  # loaded before any screen shows the status bar
    key_files(built, built.root / "media")
    with built.terminal:
        yield built


def test_an_auditor_reads_the_figures_for_a_quarter_with_closed_cases(closed_cases: World) -> None:
    world = closed_cases

    async def body(app: RfrApp, pilot: Pilot[Any]) -> None:
        await pilot.press("f")
        await done(pilot)
        screen = app.screen
        assert isinstance(screen, FiguresScreen)
        assert screen.query_one("#period-first", Input).value == "2026-01-01"
        assert screen.query_one("#period-last", Input).value == "2026-03-31"
        text = screen.shown_text
        assert "Period 2026-01-01 to 2026-03-31, both days included." in text
        assert "Closed cases: 8; with a Viable Match: 3 of 8 = 37.5% (Wilson 95%: 13.7% to 69.4%)." in text
        assert "Searches run: 8." in text
        assert "Potential Matches adjudicated in the cases closed: 32; decided viable: 3." in text
        charts = {chart.title: chart for chart in screen.query(BarChart)}
        by_band = charts["Closed cases with a Viable Match, by the apparent age band on the form"]
        assert by_band.lines == [  # the policy's words for the bands; no bar, and no axis, without a figure
            "16 to 17            too small for a stable figure (4 records; needs 30)",
            "adult (18 or over)  too small for a stable figure (4 records; needs 30)",
        ]
        assert by_band.footnote == (
            "No ratio across groups: fewer than two groups large enough. Too small to compare: 16 to 17, "
            "adult (18 or over)."
        )
        by_library = charts["Potential Matches decided viable, by the library searched"].lines
        # 3 of 32 is 9.4% of the 30-cell scale: two and three-quarter cells, then the figure and its interval.
        assert by_library == [
            "custody  ██▊" + " " * 29 + "3 of 32 = 9.4%  (Wilson 95%: 3.2% to 24.2%)",
            "         ├──────┤",
            "         0%            50%         100%",
        ]
        assert world.events("casework.outcome_report")[-1].details == {
            "since": "2026-01-01",
            "until": "2026-04-01",
            "closed_cases": 8,
        }
        assert world.events("casework.outcome_report")[-1].actor == "ann"

        await pilot.press("a")  # every figure, with the engine's definition of each
        closed = charts_of(screen)["Cases closed"]
        assert closed.lines == [
            "no Viable Match  ██████████████████████████████  5",
            "Viable Match     ██████████████████              3",
        ]
        assert closed.footnote == MonitoringFigures.definitions()["cases_closed"]
        assert "Searches: 8" in screen.shown_text

        await pilot.press("l")
        assert "Library custody (substantive): 4 subjects, 8 images" in screen.shown_text
        sexes = charts_of(screen)["Subjects by sex"].lines
        assert [line.split()[0] for line in sexes] == ["female", "male", "unknown"]
        assert [line.split()[-1] for line in sexes] == ["1", "3", "0"]
        await pilot.press("t")
        case_table = screen.query_one("#case-table", DataTable)
        assert [str(cell) for cell in case_table.get_row_at(0)] == [
            "apparent age band",
            "16 to 17",
            "4",
            "no Viable Match 2, Viable Match 2",
            "too small for a stable figure (4 records; needs 30)",
        ]
        match_table = screen.query_one("#match-table", DataTable)
        assert [str(cell) for cell in match_table.get_row_at(match_table.row_count - 1)] == [
            "library",
            "custody",
            "32",
            "not viable 29, viable 3",
            "3 of 32 = 9.4%  (Wilson 95%: 3.2% to 24.2%)",
        ]

        for key in ("left_square_bracket", "left_square_bracket", "right_square_bracket"):
            await pilot.press(key)  # two quarters back and one forward: the quarter before this one
            await done(pilot)
        assert screen.query_one("#period-first", Input).value == "2025-10-01"
        assert screen.query_one("#period-last", Input).value == "2025-12-31"
        assert "No case was closed in this period." in screen.shown_text
        assert world.events("casework.outcome_report")[-1].details["since"] == "2025-10-01"

        await pilot.press("d")
        app.focused.value = "2026-04-01"  # type: ignore[union-attr]
        await pilot.press("enter", "enter")
        assert shown(app, "#figures-problem") == (
            "The period is empty: the To day (2025-12-31) is before the From day (2026-04-01)."
        )

    walk(world, body)


def charts_of(screen: FiguresScreen) -> dict[str, BarChart]:
    return {chart.title: chart for chart in screen.query(BarChart)}


def test_bar_charts_read_without_colour() -> None:
    lines = chart_lines(
        [
            Bar("IC1 White - North European", 0.25, "8 of 32 = 25.0%", interval=(0.133, 0.421)),
            Bar("IC3 Black", None, note="too small for a stable figure (4 records; needs 30)"),
        ],
        rates=True,
        width=20,
    )
    assert lines == [
        "IC1 White - North European  █████                 8 of 32 = 25.0%",
        "                              ├─────┤",  # cells 2 to 8 of 20: 10% to 45%, holding 13.3% and 42.1%
        "IC3 Black                   too small for a stable figure (4 records; needs 30)",
        "                            0%       50%    100%",
    ]
    counts = chart_lines([Bar("female", 1, "1"), Bar("male", 12, "12"), Bar("none", 0, "0")], width=12)
    assert counts == ["female  █             1", "male    ████████████  12", "none                  0"]
    assert chart_lines([Bar("tiny", 1, "1"), Bar("big", 1000, "1,000")], width=10)[0] == "tiny  ▏           1"


# ---- snapshots ------------------------------------------------------------------------------------
# On the ``closed_cases`` terminal: what they show does not change with the looks the walks and the
# snapshots record (the events screen is filtered to case approvals; a verified verdict is shown for a
# fixed head, since every hash of a new log differs from run to run).

FIXED_HASH = "3f2a9c1b77e0d4aa0c5e8d9f1b2a3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
FIXED_PREVIOUS = "9e8d7c6b5a4938271605f4e3d2c1b0a99887766554433221100ffeeddccbbaa9"


def snapshot_app(world: World, high_contrast: bool) -> RfrApp:
    app = RfrApp(terminal=world.terminal)
    app.set_high_contrast(high_contrast)
    return app


class TestSnapshots:
    @THEMES
    def test_verified_with_the_head_to_record(
        self, snap_compare: Any, closed_cases: World, high_contrast: bool
    ) -> None:
        async def steps(pilot: Pilot[Any]) -> None:
            await pilot.press("v")
            screen = pilot.app.screen
            assert isinstance(screen, VerifyScreen)
            result = VerifyResult(True, 186, [], 170, 186, (186, FIXED_HASH), ("a" * 64,))
            screen.show_verdict(result, "this terminal's own audit key")

        app = snapshot_app(closed_cases, high_contrast)
        assert snap_compare(app, terminal_size=SIZE, run_before=signed_in_then("ann", steps))

    @THEMES
    def test_failed_after_tampering(self, snap_compare: Any, tmp_path: Path, high_contrast: bool) -> None:
        world = build(tmp_path)
        world.terminal.faces.get(timeout=30)
        world.tamper(
            "UPDATE audit_events SET actor = 'mallory' WHERE seq = 7",
            "DELETE FROM audit_events WHERE seq = 9",
            leave_dropped=("audit_events_no_update",),
        )

        async def steps(pilot: Pilot[Any]) -> None:
            await pilot.press("v", "v")

        with world.terminal:
            app = snapshot_app(world, high_contrast)
            assert snap_compare(app, terminal_size=SIZE, run_before=signed_in_then("ann", steps))

    @THEMES
    def test_choosing_the_public_key_file(self, snap_compare: Any, closed_cases: World, high_contrast: bool) -> None:
        async def steps(pilot: Pilot[Any]) -> None:
            pilot.app.push_screen(VerifyScreen(places=[Place("USB stick", closed_cases.root / "media")]))
            await pilot.pause()
            await pilot.press("k", "enter")
            tree = pilot.app.screen.query_one("#key-tree", DirectoryTree)
            await until(pilot, lambda: bool(tree.root.children))
            await pilot.press("down", "enter")
            await until(pilot, lambda: bool(tree.root.children[0].children))
            await pilot.press("down", "down")

        async def run_before(pilot: Pilot[Any]) -> None:  # the folder tree's worker never ends: no waiting for it
            app = pilot.app
            assert isinstance(app, RfrApp)
            app.signed_in(app.terminal.sign_in("ann", PASSWORD))
            await pilot.pause()
            await app.workers.wait_for_complete()
            await steps(pilot)
            await settle(pilot)

        app = snapshot_app(closed_cases, high_contrast)
        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)

    @THEMES
    def test_events_filtered(self, snap_compare: Any, closed_cases: World, high_contrast: bool) -> None:
        async def steps(pilot: Pilot[Any]) -> None:
            await pilot.press("e")
            await done(pilot)
            await filter_by(pilot, "f", "case.approve")

        app = snapshot_app(closed_cases, high_contrast)
        assert snap_compare(app, terminal_size=SIZE, run_before=signed_in_then("ann", steps))

    @THEMES
    def test_one_event_in_full(self, snap_compare: Any, closed_cases: World, high_contrast: bool) -> None:
        event = AuditEvent(
            42,
            "2026-03-02T09:00:00.123000Z",
            "ivan",
            "case.approve",
            {"case": "RFR-000003"},
            {"reason": "necessary and proportionate", "rank": "Inspector", "flags": ["under_18"]},
            FIXED_PREVIOUS,
            FIXED_HASH,
        )

        async def steps(pilot: Pilot[Any]) -> None:
            await pilot.press("e")
            await done(pilot)
            await filter_by(pilot, "f", "case.approve")
            pilot.app.push_screen(EventDetails(event))

        app = snapshot_app(closed_cases, high_contrast)
        assert snap_compare(app, terminal_size=SIZE, run_before=signed_in_then("ann", steps))

    @pytest.mark.parametrize("tab", ["o", "a", "l", "t"], ids=["outcomes", "every-figure", "libraries", "tables"])
    @THEMES
    def test_figures(self, snap_compare: Any, closed_cases: World, high_contrast: bool, tab: str) -> None:
        async def steps(pilot: Pilot[Any]) -> None:
            await pilot.press("f")
            await done(pilot)
            await pilot.press(tab)

        app = snapshot_app(closed_cases, high_contrast)
        assert snap_compare(app, terminal_size=SIZE, run_before=signed_in_then("ann", steps))
