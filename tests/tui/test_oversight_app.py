"""The oversight's application: an auditor imports real bundles through the screens, reads findings, terminals and
the quarter's report, and writes the report files; a non-auditor is refused by the engine.

The bundles are those of ``tests/oversight/history.py``'s known history (``CUSTODY-01``, 2026 Q3
then Q4), exported once per module from a real terminal and put on a "USB stick" (a folder given
to the application as its one place). Each walk signs in on the sign-in screen, drives the real
screens by key, and asserts on what they show and on the engine's own answers. Snapshots of the
import results, the findings and the report, default and high contrast, are at the end (update with
``pytest tests/tui/test_oversight_app.py --snapshot-update``; review the SVGs like code).
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, DirectoryTree, Input, Static

from engine import audit
from engine.oversight.imports import OUTCOMES
from engine.oversight.report import REPORT_FILES, Period, board_figures, figures_csv
from engine.oversight.service import Oversight, OversightConfig
from engine.security.keys import KdfSpec, WorkspaceKey
from rfr_tui.oversight.app import OversightApp
from rfr_tui.oversight.dialogs import OversightFileChooser, PassphraseDialog, ReportFolderChooser
from rfr_tui.screens.oversight_findings import FindingsScreen
from rfr_tui.screens.oversight_home import OversightHomeScreen
from rfr_tui.screens.oversight_import import OUTCOMES as OUTCOME_WORDS
from rfr_tui.screens.oversight_import import ImportScreen
from rfr_tui.screens.oversight_report import ReportScreen, last_ended_quarter, stepped
from rfr_tui.screens.oversight_sign_in import OversightSignInScreen, OversightUnlockScreen
from rfr_tui.screens.oversight_terminals import TerminalsScreen
from rfr_tui.screens.sign_in import LockScreen
from rfr_tui.widgets.bar_chart import BarChart
from rfr_tui.widgets.file_chooser import Place
from rfr_tui.widgets.state_label import StateLabel, Tone
from tests.oversight.history import PASSPHRASE, TERMINAL, Clock, World, at, expected_q3, run_history
from tests.terminals import FAST, PASSWORD, provision
from tests.tui.support import poll, run, signed_in_then
from tests.tui.support import workers_done as done

SIZE = (120, 40)
THEMES = pytest.mark.parametrize("high_contrast", [False, True], ids=["default", "high-contrast"])
JUNK = "notes.rfrbundle"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The known history's two bundles (2026 Q3, then Q4), exported once for every test here."""
    return run_history(tmp_path_factory.mktemp("history"))


@dataclass
class Desk:
    """An oversight workspace with CUSTODY-01 registered, and a USB stick holding the bundles and the key."""

    oversight: Oversight
    usb: Path
    q3: Path
    q4: Path
    key: Path

    @property
    def places(self) -> list[Place]:
        return [Place("USB stick", self.usb)]

    def app(self, *, high_contrast: bool = False, key: bool = True) -> OversightApp:
        app = OversightApp(oversight=self.oversight, places=self.places, private_key_file=self.key if key else None)
        app.set_high_contrast(high_contrast)
        return app

    def events(self, action: str) -> list[audit.AuditEvent]:
        with self.oversight.ws.reading() as conn:
            return [e for e in audit.events(conn) if e.action == action]


def new_desk(root: Path, history: World) -> Desk:
    """A fresh oversight on a fixed clock (5 October 2026: Q3 has ended) and the bundles copied to the stick."""
    directory = root / "oversight"
    config = OversightConfig(directory, root / "oversight.audit-key")
    oversight = Oversight.create(config, WorkspaceKey.generate(), scrypt=FAST, clock=Clock(at("2026-10-05T09:00:00")))
    sessions = provision(oversight, {"olive": (["auditor"], None)})  # type: ignore[arg-type]
    oversight.add_terminal(sessions["olive"], TERMINAL, history.audit_public_key)
    for session in sessions.values():
        oversight.accounts.logout(session)
    usb = root / "usb"
    (usb / "bundles").mkdir(parents=True)
    q3 = Path(shutil.copy2(history.bundles["q3"], usb / "bundles"))
    q4 = Path(shutil.copy2(history.bundles["q4"], usb / "bundles"))
    (usb / "bundles" / JUNK).write_bytes(b"not a bundle at all\n")
    key = Path(shutil.copy2(history.oversight_private, usb / "oversight.key"))
    return Desk(oversight, usb, q3, q4, key)


@pytest.fixture
def desk(tmp_path: Path, history: World) -> Iterator[Desk]:
    made = new_desk(tmp_path, history)
    with made.oversight:
        yield made


# ---- helpers -----------------------------------------------------------------------------------------


async def until(pilot: Pilot[Any], condition: Callable[[], bool], seconds: float = 10.0) -> None:
    await poll(pilot, condition, seconds)


async def type_into(pilot: Pilot[Any], selector: str, text: str) -> None:
    """Fill a field and press Enter in it (as typing does, without a screen refresh per key: the tests stay fast)."""
    field = pilot.app.screen.query_one(selector, Input)
    field.focus()
    field.value = text
    await pilot.press("enter")


async def sign_in(pilot: Pilot[Any], username: str, password: str = PASSWORD) -> None:
    """The name and password on the sign-in screen, then Enter in each field."""
    assert isinstance(pilot.app.screen, OversightSignInScreen)
    await type_into(pilot, "#username", username)
    await type_into(pilot, "#password", password)
    await done(pilot)


def walk(desk: Desk, body: Callable[[OversightApp, Pilot[Any]], Awaitable[None]], *, key: bool = True) -> None:
    async def go() -> None:
        app = desk.app(key=key)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await sign_in(pilot, "olive")
            assert isinstance(app.screen, OversightHomeScreen)
            await body(app, pilot)

    run(go)


def text_of(app: OversightApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def rows(table: DataTable[Any]) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def open_bundles_folder(pilot: Pilot[Any]) -> DirectoryTree:
    """a, then the stick's bundles folder opened in the chooser's tree."""
    await pilot.press("a")
    chooser = pilot.app.screen
    assert isinstance(chooser, OversightFileChooser)
    tree = chooser.query_one(DirectoryTree)
    await until(pilot, lambda: bool(tree.root.children))
    assert [str(c.label) for c in tree.root.children] == ["bundles"]  # the key is no bundle: not listed
    await pilot.press("down", "enter")
    await until(pilot, lambda: bool(tree.root.children[0].children))
    return tree


async def choose_bundle(pilot: Pilot[Any], name: str) -> None:
    tree = await open_bundles_folder(pilot)
    names = [str(c.label) for c in tree.root.children[0].children]
    await pilot.press(*["down"] * (names.index(name) + 1), "enter")
    await pilot.pause()


async def import_now(pilot: Pilot[Any], passphrase: str = PASSPHRASE) -> None:
    await pilot.press("ctrl+r")
    await done(pilot)
    assert isinstance(pilot.app.screen, PassphraseDialog)
    await type_into(pilot, "#password", passphrase)
    await done(pilot)
    assert isinstance(pilot.app.screen, ImportScreen)


# ---- importing --------------------------------------------------------------------------------------


def test_an_auditor_imports_a_gap_then_the_bundle_that_fills_it_then_a_replay(desk: Desk) -> None:
    async def body(app: OversightApp, pilot: Pilot[Any]) -> None:
        await pilot.press("i")
        screen = app.screen
        assert isinstance(screen, ImportScreen)
        assert text_of(app, "#import-key") == "oversight.key, in USB stick"
        assert text_of(app, "#import-pending") == "none yet: press a"

        # The Q4 bundle first: it starts after a range the oversight has not seen.
        await choose_bundle(pilot, desk.q4.name)
        assert screen.pending == [desk.q4]
        assert text_of(app, "#import-pending") == f"1. {desk.q4.name}"
        await import_now(pilot)
        (gap,) = screen.outcomes
        assert gap.outcome == "quarantined" and gap.terminal == TERMINAL and gap.first is not None and gap.first > 1
        table = screen.query_one("#import-results", DataTable)
        assert rows(table)[0][:3] == [desk.q4.name, "⚠ Gap: quarantined", f"{TERMINAL}\nseq {gap.first}-{gap.last}"]
        assert rows(table)[0][3].startswith(f"Gap: seq 1 to seq {gap.first - 1} have not arrived; quarantined")
        verdict = screen.query_one("#import-verdict", StateLabel)
        assert verdict.tone is Tone.WARNING and verdict.words == "1 bundle imported: 1 gap"
        assert text_of(app, "#import-next") == (
            "A quarantined bundle is accepted when the bundle with the missing range is imported."
        )
        assert text_of(app, "#import-pending") == "none yet: press a"  # what was imported is in the table

        # The Q3 bundle fills the gap: accepted, and the quarantined one after it.
        await choose_bundle(pilot, desk.q3.name)
        await import_now(pilot)
        (accepted,) = screen.outcomes
        assert (accepted.outcome, accepted.first, accepted.released) == ("accepted", 1, (gap.bundle_id,))
        assert rows(table)[0][1] == "✔ Accepted"
        assert rows(table)[0][3] == (
            f"Accepted: seq 1 to seq {accepted.last} continue the accepted log. Then accepted the quarantined "
            f"bundle {gap.bundle_id} it led to."
        )
        assert verdict.tone is Tone.GOOD and verdict.words == "1 bundle imported: 1 accepted"
        assert not screen.query_one("#import-next", Static).display

        # The whole folder again (ctrl+a): both are replays; the file that is no bundle is refused.
        await open_bundles_folder(pilot)
        await pilot.press("ctrl+a")
        await pilot.pause()
        assert screen.pending == [desk.usb / "bundles" / JUNK, desk.q3, desk.q4]
        await import_now(pilot)
        outcomes = [(o.source, o.outcome) for o in screen.outcomes]
        assert outcomes == [(JUNK, "refused"), (desk.q3.name, "replay"), (desk.q4.name, "replay")]
        shown = rows(table)
        replay = "• Replay: already held"
        assert [row[1] for row in shown] == ["✖ Refused: nothing kept", replay, replay]
        assert shown[1][3].startswith(f"A replay of bundle {accepted.bundle_id} (accepted): already held")
        assert shown[0][2] == "-" and shown[0][3].startswith("This is not an rfr audit bundle")
        assert verdict.tone is Tone.BAD and verdict.words == "3 bundles imported: 1 refused, 2 replay"
        assert text_of(app, "#import-next") == "1 needs an auditor's look: see Findings (f on the home screen)."
        # The engine recorded every import as olive's, and the refusal.
        assert [e.details["outcome"] for e in desk.events("oversight.import")] == [
            "quarantined",
            "accepted",
            "replay",
            "replay",
        ]
        assert [e.actor for e in desk.events("oversight.import_refused")] == ["olive"]

    walk(desk, body)


def test_the_private_key_is_chosen_from_the_media_and_a_wrong_passphrase_changes_nothing(desk: Desk) -> None:
    async def body(app: OversightApp, pilot: Pilot[Any]) -> None:
        await pilot.press("i")
        screen = app.screen
        assert isinstance(screen, ImportScreen)
        await choose_bundle(pilot, desk.q3.name)
        await pilot.press("ctrl+r")
        assert text_of(app, "#import-problem") == (
            "Choose the oversight private key file first (k): the bundles are encrypted to it."
        )
        await pilot.press("k")
        chooser = app.screen
        assert isinstance(chooser, OversightFileChooser)
        tree = chooser.query_one(DirectoryTree)
        await until(pilot, lambda: bool(tree.root.children))
        assert [str(c.label) for c in tree.root.children] == ["bundles", "oversight.key"]
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        assert screen.key_file == desk.key and text_of(app, "#import-key") == "oversight.key, in USB stick"

        await import_now(pilot, passphrase="not the passphrase")
        verdict = screen.query_one("#import-verdict", StateLabel)
        assert verdict.tone is Tone.BAD and verdict.words == "Not imported: nothing changed"
        assert "passphrase does not open the oversight private key" in text_of(app, "#import-problem")
        assert desk.events("oversight.import") == [] and screen.pending == [desk.q3]  # still there to try again

        await import_now(pilot)
        assert [o.outcome for o in screen.outcomes] == ["accepted"]

    walk(desk, body, key=False)


def test_every_outcome_has_words_and_a_symbol() -> None:
    assert set(OUTCOME_WORDS) == set(OUTCOMES)
    for words, tone in OUTCOME_WORDS.values():
        assert words and isinstance(tone, Tone)


# ---- findings, terminals, the report ------------------------------------------------------------------


def import_through_engine(desk: Desk, *names: str) -> None:
    """Bundles imported as the Import screen does it, for walks about what comes after."""
    from rfr_tui.screens.oversight_import import import_all

    session = desk.oversight.accounts.login("olive", PASSWORD)
    paths = [{"q3": desk.q3, "q4": desk.q4}[n] for n in names]
    import_all(desk.oversight, session, paths, desk.key, PASSPHRASE, lambda *_: None)
    desk.oversight.accounts.logout(session)


def test_findings_and_terminals_after_a_gap(desk: Desk) -> None:
    import_through_engine(desk, "q4")

    async def body(app: OversightApp, pilot: Pilot[Any]) -> None:
        await pilot.press("f")
        await done(pilot)
        screen = app.screen
        assert isinstance(screen, FindingsScreen)
        state = screen.query_one("#findings-state", StateLabel)
        assert state.tone is Tone.WARNING and state.words == "1 open finding: each needs an auditor's look"
        (row,) = rows(screen.query_one("#findings-table", DataTable))
        assert row[1:3] == [TERMINAL, "gap: a bundle quarantined"] and row[4] == "open"
        assert row[6].startswith("gap: seq 1 to seq")
        assert desk.events("oversight.findings_view")[-1].actor == "olive"
        await pilot.press("escape", "t")
        await done(pilot)
        terminals = app.screen
        assert isinstance(terminals, TerminalsScreen)
        (record,) = rows(terminals.query_one("#terminals-table", DataTable))
        assert record[0] == TERMINAL and record[2] == "nothing yet" and record[4] == "quarantined 1"
        assert terminals.query_one("#terminals-state", StateLabel).words == (
            "1 terminal registered; 1 with open findings (see Findings)"
        )
        # The quarter's report says it is incomplete, and why: nothing of Q3 is accepted, and the gap is open.
        await pilot.press("escape", "r")
        await done(pilot)
        report = app.screen
        assert isinstance(report, ReportScreen) and report.report is not None and not report.report.complete
        state = report.query_one("#report-state", StateLabel)
        assert state.tone is Tone.WARNING and state.words.startswith("INCOMPLETE")
        reasons = text_of(app, "#report-reasons").splitlines()
        assert reasons[0] == f"• {TERMINAL}: no accepted bundle, which does not reach the end of the period"
        assert reasons[1].startswith(f"• {TERMINAL}: gap: seq 1 to seq")
        assert report.summary["Searches run"] == "0"

    walk(desk, body)


def test_the_quarterly_report_shows_the_engines_figures_and_writes_its_files(desk: Desk, history: World) -> None:
    import_through_engine(desk, "q3", "q4")
    engine = board_figures(desk.oversight, Period.parse("2026Q3"))
    assert engine.totals == expected_q3(history)

    async def body(app: OversightApp, pilot: Pilot[Any]) -> None:
        await pilot.press("r")
        await done(pilot)
        screen = app.screen
        assert isinstance(screen, ReportScreen)
        # The quarter that has ended on the oversight's clock (5 October 2026) is the one shown first.
        assert screen.query_one("#report-quarter", Input).value == "2026Q3"
        report = screen.report
        assert report is not None and report.totals == engine.totals and report.by_terminal == engine.by_terminal
        state = screen.query_one("#report-state", StateLabel)
        assert state.tone is Tone.GOOD
        assert state.words == "Complete: every terminal's log covers the period; no open finding"
        assert text_of(app, "#report-title") == "FR Technology Board quarterly figures, 2026Q3"
        assert screen.summary == {
            "Searches run": "3",
            "Searches of a Probe Image recorded as under 18": "1",
            "Searches of a Probe Image recorded as under 16": "0",
            "Submissions": "4",
            "Approvals": "3",
            "Rejections": "1",
            "Cases closed": "2",
            "Cases closed with a Viable Match": "1",
            "Potential Matches adjudicated (in the cases closed)": "8",
            "Viable Matches (in the cases closed)": "1",
            "Peer reviews agreeing no Viable Match": "1",
            "Peer reviews sending a case back": "1",
            "Cases withdrawn": "1",
            "Cases expired": "0",
        }
        t = engine.totals
        assert (t.searches, t.approvals, t.closed, t.adjudicated, t.viable_matches) == (3, 3, 2, 8, 1)

        await pilot.press("c")
        charts = {c.title: c for c in screen.query(BarChart)}
        searches = charts["Searches by use case"]
        assert [b.figure for b in searches.bars] == ["1", "1", "1"]
        closed = charts["Cases closed by use case and outcome"]
        assert [(b.value, b.figure) for b in closed.bars] == [
            (1.0, "1 (Viable Match 1, no Viable Match 0)"),
            (1.0, "1 (Viable Match 0, no Viable Match 1)"),
        ]
        by_sex = charts["Potential Matches adjudicated, by the reference subject's sex"]
        expected_sex = {
            sex: f"{sum(row.values())} (viable {row.get('viable', 0)}, not viable {row.get('not_viable', 0)})"
            for sex, row in t.potential_matches_by_sex.items()
        }
        assert {b.label: b.figure for b in by_sex.bars} == expected_sex
        assert sum(int(b.figure.split()[0]) for b in by_sex.bars) == 8
        await pilot.press("t")
        (coverage,) = rows(screen.query_one("#coverage-table", DataTable))
        assert coverage[0] == TERMINAL and coverage[3] == "yes"
        assert rows(screen.query_one("#terminal-table", DataTable)) == [[TERMINAL, "3", "2", "1"]]
        await pilot.press("l")
        (library,) = rows(screen.query_one("#library-table", DataTable))
        assert library[:4] == ["custody", "substantive", "4", "8"]

        # ] is Q4: the case D closed in October.
        await pilot.press("right_square_bracket")
        await done(pilot)
        assert screen.report is not None and screen.report.period.label == "2026Q4"
        assert screen.summary["Searches run"] == "1" and screen.summary["Cases closed"] == "1"
        await pilot.press("left_square_bracket")
        await done(pilot)

        # Write the files into a new folder on the stick, as 'rfr oversight report --out' writes them.
        await pilot.press("w")
        chooser = app.screen
        assert isinstance(chooser, ReportFolderChooser)
        name = chooser.query_one("#chooser-name", Input)
        assert name.value == "rfr-report-2026Q3"
        await pilot.click("#chooser-name")
        await pilot.press("enter")
        await done(pilot)
        folder = desk.usb / "rfr-report-2026Q3"
        assert [p.name for p in screen.written] == list(REPORT_FILES)
        assert text_of(app, "#report-written").startswith(
            "✔ Written to rfr-report-2026Q3, in USB stick: report.html, figures.csv"
        )
        assert screen.report is not None
        assert (folder / "figures.csv").read_bytes() == figures_csv(screen.report) == figures_csv(engine)
        cells = {
            (r["terminal"], r["figure"], r["group"]): int(r["count"])
            for r in csv.DictReader(io.StringIO((folder / "figures.csv").read_text()))
        }
        assert cells[("all", "searches", "")] == 3 and cells[(TERMINAL, "potential_matches", "viable")] == 1
        assert "FR Technology Board quarterly figures, 2026Q3" in (folder / "report.html").read_text()
        # Again into the same folder: the engine never overwrites, and says so on the screen.
        await pilot.press("w")
        await pilot.click("#chooser-name")
        await pilot.press("enter")
        await done(pilot)
        assert text_of(app, "#report-written").startswith("✖ Not written: ")
        assert "reports are never overwritten" in text_of(app, "#report-written")
        looked = [e.details["period"] for e in desk.events("oversight.report")]
        assert looked == ["2026Q3", "2026Q4", "2026Q3"]

        # A period that is not one: the engine's sentence, and nothing read or recorded.
        await pilot.press("d")
        assert screen.focused is screen.query_one("#report-quarter", Input)
        await type_into(pilot, "#report-quarter", "2026Q5")
        await done(pilot)
        assert text_of(app, "#report-problem") == "'2026Q5' is not a quarter such as 2026Q3"
        assert len(desk.events("oversight.report")) == 3

    walk(desk, body)


def test_the_period_steps() -> None:
    assert last_ended_quarter(at("2026-10-05T09:00:00").date()) == "2026Q3"
    assert last_ended_quarter(at("2026-02-01T09:00:00").date()) == "2025Q4"
    assert stepped("2026Q4", 1) == "2027Q1" and stepped("2026Q1", -1) == "2025Q4" and stepped("2026", -1) == "2025"


# ---- people -------------------------------------------------------------------------------------------


def test_an_oversight_engineer_is_refused_by_the_engine_in_a_sentence(desk: Desk) -> None:
    async def go() -> None:
        app = desk.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await sign_in(pilot, "eng1")
            assert isinstance(app.screen, OversightHomeScreen)
            await pilot.press("f")
            await done(pilot)
            assert app.screen.query_one("#findings-state", StateLabel).words == "Not shown"
            assert (
                text_of(app, "#findings-problem")
                == "Reading the findings refused: it needs the Auditor role; eng1 lacks it"
            )
            await pilot.press("escape", "r")
            await done(pilot)
            assert text_of(app, "#report-problem") == (
                "The oversight report refused: it needs the Auditor role; eng1 lacks it"
            )
            await pilot.press("escape", "escape", "i")
            screen = app.screen
            assert isinstance(screen, ImportScreen)
            screen.pending = [desk.q3]
            await pilot.press("ctrl+r")
            await done(pilot)
            assert isinstance(app.screen, ImportScreen)  # refused before the key's passphrase is asked
            assert text_of(app, "#import-problem") == (
                "Importing audit bundles refused: it needs the Auditor role; eng1 lacks it"
            )
            assert desk.events("oversight.findings_view") == [] and desk.events("oversight.report") == []

    run(go)


def test_sign_in_refusal_lock_and_sign_out(desk: Desk) -> None:
    async def go() -> None:
        app = desk.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await sign_in(pilot, "olive", "wrong password entirely")
            assert isinstance(app.screen, OversightSignInScreen) and app.session is None
            assert text_of(app, "#problem") != "Signing in..."
            app.screen.query_one("#username", Input).value = ""
            await sign_in(pilot, "olive")
            assert isinstance(app.screen, OversightHomeScreen) and app.idle_timeout_minutes is not None
            assert "Signed in: olive (Auditor)" in str(app.screen.query_one("OversightStatusBar", Static).render())
            await pilot.press("ctrl+l")
            await pilot.pause()
            assert isinstance(app.screen, LockScreen)
            await type_into(pilot, "#password", PASSWORD)
            await done(pilot)
            assert isinstance(app.screen, OversightHomeScreen) and not app.locked
            await pilot.press("ctrl+q")
            await pilot.pause()
            assert isinstance(app.screen, OversightSignInScreen) and app.session is None

    run(go)


def test_the_app_opens_the_workspace_from_its_configuration_with_a_passphrase(tmp_path: Path) -> None:
    """No key file: an engineer types the workspace passphrase on the unlock screen, then people sign in."""
    config = OversightConfig(tmp_path / "oversight", tmp_path / "oversight.audit-key")
    key = WorkspaceKey.from_passphrase("the oversight workspace passphrase", KdfSpec.new_scrypt(n=2**10))
    with Oversight.create(config, key, scrypt=FAST) as made:
        provision(made, {"olive": (["auditor"], None)})  # type: ignore[arg-type]
    opened: list[Oversight] = []

    def open_oversight(cfg: OversightConfig, given: WorkspaceKey | None) -> Oversight:
        opened.append(Oversight.open(cfg, key=given, scrypt=FAST))
        return opened[-1]

    async def go() -> None:
        app = OversightApp(config=config, open_oversight=open_oversight, places=[])
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, OversightUnlockScreen)
            await type_into(pilot, "#passphrase", "not it")
            await done(pilot)
            assert isinstance(app.screen, OversightUnlockScreen) and not opened
            await type_into(pilot, "#passphrase", "the oversight workspace passphrase")
            await done(pilot)
            assert isinstance(app.screen, OversightSignInScreen) and len(opened) == 1
            await sign_in(pilot, "olive")
            assert isinstance(app.screen, OversightHomeScreen)

    run(go)


# ---- snapshots ----------------------------------------------------------------------------------------


class TestSnapshots:
    @THEMES
    def test_import_results(self, snap_compare: Any, desk: Desk, high_contrast: bool) -> None:
        async def steps(pilot: Pilot[Any]) -> None:
            await pilot.press("i")
            screen = pilot.app.screen
            assert isinstance(screen, ImportScreen)
            screen.pending = [desk.q4, desk.q3, desk.q3, desk.usb / "bundles" / JUNK]
            screen._run(desk.key, PASSPHRASE)

        app = desk.app(high_contrast=high_contrast)
        assert snap_compare(app, terminal_size=SIZE, run_before=signed_in_then("olive", steps))

    @THEMES
    def test_findings_with_a_gap(self, snap_compare: Any, desk: Desk, high_contrast: bool) -> None:
        import_through_engine(desk, "q4")

        async def steps(pilot: Pilot[Any]) -> None:
            await pilot.press("f")

        app = desk.app(high_contrast=high_contrast)
        assert snap_compare(app, terminal_size=SIZE, run_before=signed_in_then("olive", steps))

    @pytest.mark.parametrize("tab", ["s", "c"], ids=["summary", "charts"])
    @THEMES
    def test_report(self, snap_compare: Any, desk: Desk, high_contrast: bool, tab: str) -> None:
        import_through_engine(desk, "q3", "q4")

        async def steps(pilot: Pilot[Any]) -> None:
            await pilot.press("r")
            await done(pilot)
            await pilot.press(tab)

        app = desk.app(high_contrast=high_contrast)
        assert snap_compare(app, terminal_size=SIZE, run_before=signed_in_then("olive", steps))
