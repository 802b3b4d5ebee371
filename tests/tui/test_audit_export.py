"""Exporting the audit log from the application: the plan, the folder on the media, the bundle, the record.

A real terminal (encrypted workspace and keys, the stand-in face engine, a fixed clock) configured
with an oversight's public key, as ``tests/oversight/test_export.py`` uses. Pilot walks the real
screens by key, as the auditor (and an engineer) signed in at the home screen; assertions are on
what the screen says, on the file on the "media" (a folder in the test's own) and on the audit
events the export recorded. A person the engine does not allow gets no entry on their home screen
and, on the screen itself, the engine's refusal as a sentence. Snapshots of the plan, the result
and a refusal, default and high contrast, are at the end (update with ``--snapshot-update``; review
the SVGs like code).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DirectoryTree, OptionList, Static

from engine import audit
from engine.audit.bundle import SUFFIX
from engine.audit.export import EXPORT_ACTION, ExportPlan, ExportResult
from engine.oversight.keys import create_key_pair
from engine.terminal import Terminal
from rfr_tui.app import RfrApp
from rfr_tui.screens.audit_export import AuditExportScreen
from rfr_tui.screens.audit_verify import grouped_hash
from rfr_tui.screens.home import HomeScreen
from rfr_tui.widgets import file_chooser
from rfr_tui.widgets.file_chooser import FileChooserDialog, Place
from rfr_tui.widgets.state_label import StateLabel, Tone
from tests.oversight.history import PASSPHRASE, TERMINAL, Clock, at, new_terminal
from tests.terminals import PASSWORD, make_terminal, provision
from tests.tui.support import poll as until
from tests.tui.support import run, settle
from tests.tui.support import workers_done as done

SIZE = (120, 40)
THEMES = pytest.mark.parametrize("high_contrast", [False, True], ids=["default", "high-contrast"])
PEOPLE: dict[str, tuple[list[str], str | None]] = {
    "ann": (["auditor"], None),
    "alice": (["rfr_user"], "Constable"),
}


@dataclass
class Site:
    terminal: Terminal
    media: Path

    def events(self, action: str) -> list[audit.AuditEvent]:
        with self.terminal.ws.reading() as conn:
            return [e for e in audit.events(conn) if e.action == action]


def build(root: Path, *, oversight_key: bool = True) -> Site:
    """A terminal with an auditor and an officer (and the two engineers), and a USB stick with one folder."""
    media = root / "media"
    (media / "usb0").mkdir(parents=True)
    if oversight_key:
        public = root / "oversight.pub"
        create_key_pair(root / "oversight.key", public, PASSPHRASE)
        terminal = new_terminal(root / "ws", public, Clock(at("2026-07-01T09:00:00")))
    else:
        terminal = make_terminal(root / "ws", clock=Clock(at("2026-07-01T09:00:00")))
    provision(terminal, PEOPLE)
    return Site(terminal, media)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    built = build(tmp_path)
    monkeypatch.setattr(file_chooser, "default_places", lambda home=None: [Place("USB stick", built.media)])
    with built.terminal:
        yield built


def walk(site: Site, who: str, body: Callable[[RfrApp, Pilot[Any]], Awaitable[None]]) -> None:
    """Open the application on the site's terminal, sign ``who`` in, and run ``body`` at their home screen."""

    async def go() -> None:
        app = RfrApp(terminal=site.terminal)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.signed_in(site.terminal.sign_in(who, PASSWORD))
            await pilot.pause()
            assert isinstance(app.screen, HomeScreen)
            await body(app, pilot)

    run(go)


def state(app: RfrApp) -> StateLabel:
    return app.screen.query_one("#export-state", StateLabel)


def detail(app: RfrApp) -> str:
    screen = app.screen
    assert isinstance(screen, AuditExportScreen)
    return screen.detail_text


def bundles(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file())


async def export_to_usb0(pilot: Pilot[Any]) -> None:
    """e, then the usb0 folder on the stick chosen by keyboard, then ctrl+s."""
    await pilot.press("e")
    chooser = pilot.app.screen
    assert isinstance(chooser, FileChooserDialog)
    tree = chooser.query_one("#chooser-tree", DirectoryTree)
    await until(pilot, lambda: bool(tree.root.children))
    assert [str(child.label) for child in tree.root.children] == ["usb0"]  # folders only
    await pilot.press("down")
    assert str(chooser.query_one("#chooser-where", Static).render()) == "Folder: usb0, in USB stick"
    await pilot.press("ctrl+s")
    await done(pilot)


def test_an_auditor_sees_the_plan_then_exports_a_bundle_to_the_media(site: Site) -> None:
    async def body(app: RfrApp, pilot: Pilot[Any]) -> None:
        await pilot.press("x")
        await done(pilot)
        screen = app.screen
        assert isinstance(screen, AuditExportScreen)
        plan = screen.plan
        assert plan is not None and plan.first == 1 and not plan.more_to_export
        assert state(app).words == f"Ready to export {plan.events} events" and state(app).tone is Tone.INFO
        assert detail(app).splitlines()[:2] == [
            f"The next export covers the audit log from seq 1 to seq {plan.last}: {plan.events} events.",
            "Nothing has been exported from this terminal yet: the bundle starts at the first event.",
        ]

        await export_to_usb0(pilot)
        assert isinstance(app.screen, AuditExportScreen)
        result = screen.result
        assert result is not None and (result.first, result.last) == (plan.first, plan.last)
        assert state(app).words == f"Exported: {plan.events} events, recorded as yours"
        assert state(app).tone is Tone.GOOD
        written = bundles(site.media / "usb0")
        assert written == [site.media / "usb0" / result.path.name]
        assert result.path.name == f"rfr-audit-{TERMINAL}-seq{1:09d}-{plan.last:09d}{SUFFIX}"
        lines = detail(app).splitlines()
        assert lines[:5] == [
            "The bundle written",
            f"File: {result.path.name}",
            "Folder: usb0, in USB stick",
            f"Covers: seq 1 to seq {plan.last} of this terminal's audit log: {plan.events} events",
            "Figures: the monitoring figures of quarter 2026Q3",
        ]
        assert f"Recorded: at seq {result.recorded_seq} of this terminal's log, as yours" in lines
        head = grouped_hash(result.head_hash)
        at_head = lines.index("The head the bundle ends at")
        assert lines[at_head + 1 : at_head + 4] == [f"Seq: {plan.last}", f"Hash: {head[0]}", head[1]]
        recorded = site.events(EXPORT_ACTION)
        assert [(e.actor, e.seq) for e in recorded] == [("ann", result.recorded_seq)]
        assert recorded[0].details["file"] == result.path.name
        assert recorded[0].details["file_sha256"] == result.file_sha256
        assert (recorded[0].details["first"], recorded[0].details["last"]) == (1, plan.last)

        # The plan is spent: the next range is read again, and starts with the record of this export.
        await pilot.press("e")
        assert isinstance(app.screen, AuditExportScreen)
        await pilot.press("r")
        await done(pilot)
        again = screen.plan
        assert again is not None and again.first == plan.last + 1 <= result.recorded_seq <= again.last
        assert f"It starts after the last export, which ended at seq {plan.last}." in detail(app)
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)

    walk(site, "ann", body)


def test_an_engineer_exports_too_as_the_engine_allows(site: Site) -> None:
    async def body(app: RfrApp, pilot: Pilot[Any]) -> None:
        await pilot.press("x")
        await done(pilot)
        assert isinstance(app.screen, AuditExportScreen) and app.screen.plan is not None
        await export_to_usb0(pilot)
        assert state(app).tone is Tone.GOOD

    walk(site, "eng1", body)
    assert [e.actor for e in site.events(EXPORT_ACTION)] == ["eng1"]
    assert len(bundles(site.media / "usb0")) == 1


def test_cancelling_the_folder_exports_nothing(site: Site) -> None:
    async def body(app: RfrApp, pilot: Pilot[Any]) -> None:
        await pilot.press("x")
        await done(pilot)
        await pilot.press("e")
        assert isinstance(app.screen, FileChooserDialog)
        await pilot.press("escape")
        await done(pilot)
        assert isinstance(app.screen, AuditExportScreen) and app.screen.plan is not None
        assert state(app).words.startswith("Ready to export")

    walk(site, "ann", body)
    assert site.events(EXPORT_ACTION) == [] and bundles(site.media / "usb0") == []


def test_an_officer_has_no_way_in_and_the_engine_refuses_the_screen(site: Site) -> None:
    async def body(app: RfrApp, pilot: Pilot[Any]) -> None:
        sections = app.screen.query_one("#sections", OptionList)
        shown = [option.id for option in sections.options]
        assert "section-x" not in shown and "section-c" in shown
        await pilot.press("x")
        await done(pilot)
        assert isinstance(app.screen, HomeScreen)  # no such key for an RFR User

        app.push_screen(AuditExportScreen())  # reached anyway: the engine refuses, in a sentence
        await done(pilot)
        screen = app.screen
        assert isinstance(screen, AuditExportScreen) and screen.plan is None
        assert state(app).words == "Nothing can be exported now" and state(app).tone is Tone.WARNING
        assert detail(app) == (
            "Planning an audit export refused: it needs the Auditor or Engineer role; alice holds neither."
        )
        await pilot.press("e")  # nothing planned: the key does nothing
        await done(pilot)
        assert app.screen is screen and not screen.check_action("export", ())

    walk(site, "alice", body)
    assert site.events(EXPORT_ACTION) == [] and bundles(site.media / "usb0") == []


def test_without_the_oversight_key_the_engine_says_so_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = build(tmp_path, oversight_key=False)
    monkeypatch.setattr(file_chooser, "default_places", lambda home=None: [Place("USB stick", site.media)])

    async def body(app: RfrApp, pilot: Pilot[Any]) -> None:
        await pilot.press("x")
        await done(pilot)
        await export_to_usb0(pilot)
        assert state(app).words == "Not exported" and state(app).tone is Tone.BAD
        assert detail(app).startswith(
            "No oversight public key configured: set 'oversight_key_file' in the terminal configuration"
        )
        assert "Traceback" not in detail(app)

    with site.terminal:
        walk(site, "ann", body)
        assert site.events(EXPORT_ACTION) == [] and bundles(site.media / "usb0") == []


# ---- snapshots ------------------------------------------------------------------------------------
# A fixed plan and a fixed result are shown (every hash of a new log differs from run to run); the
# refusal is the engine's own, on a terminal with no oversight key.

FIXED_PLAN = ExportPlan(1, 186, 186, False)
FIXED_RESULT = ExportResult(
    path=Path(f"rfr-audit-{TERMINAL}-seq000000001-000000186{SUFFIX}"),
    first=1,
    last=186,
    events=186,
    head_hash="3f2a9c1b77e0d4aa0c5e8d9f1b2a3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d",
    file_sha256="9e8d7c6b5a4938271605f4e3d2c1b0a99887766554433221100ffeeddccbbaa9",
    statement_sha256="0" * 64,
    bytes=48_213,
    more_to_export=True,
    quarters=("2026Q3",),
    recorded_seq=187,
)


@pytest.fixture(scope="module")
def snapshot_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    built = build(tmp_path_factory.mktemp("export-snapshots"))
    built.terminal.faces.get(timeout=30)  # loaded before any screen shows the status bar
    with built.terminal:
        yield built


def signed_in_then(steps: Callable[[Pilot[Any]], Awaitable[None]]) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, RfrApp)
        await pilot.pause()
        app.signed_in(app.terminal.sign_in("ann", PASSWORD))
        await pilot.pause()
        await pilot.press("x")
        await done(pilot)
        await steps(pilot)
        await done(pilot)
        await settle(pilot)

    return run_before


def snapshot_app(site: Site, high_contrast: bool) -> RfrApp:
    app = RfrApp(terminal=site.terminal)
    app.set_high_contrast(high_contrast)
    return app


class TestSnapshots:
    @THEMES
    def test_the_plan(self, snap_compare: Any, snapshot_site: Site, high_contrast: bool) -> None:
        async def steps(pilot: Pilot[Any]) -> None:
            screen = pilot.app.screen
            assert isinstance(screen, AuditExportScreen)
            screen.show_plan(FIXED_PLAN)

        app = snapshot_app(snapshot_site, high_contrast)
        assert snap_compare(app, terminal_size=SIZE, run_before=signed_in_then(steps))

    @THEMES
    def test_the_bundle_written(self, snap_compare: Any, snapshot_site: Site, high_contrast: bool) -> None:
        async def steps(pilot: Pilot[Any]) -> None:
            screen = pilot.app.screen
            assert isinstance(screen, AuditExportScreen)
            screen.show_result(FIXED_RESULT, "usb0, in USB stick")

        app = snapshot_app(snapshot_site, high_contrast)
        assert snap_compare(app, terminal_size=SIZE, run_before=signed_in_then(steps))

    @THEMES
    def test_refused_without_the_oversight_key(
        self, snap_compare: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, high_contrast: bool
    ) -> None:
        site = build(tmp_path, oversight_key=False)
        monkeypatch.setattr(file_chooser, "default_places", lambda home=None: [Place("USB stick", site.media)])
        site.terminal.faces.get(timeout=30)

        async def steps(pilot: Pilot[Any]) -> None:
            await export_to_usb0(pilot)

        with site.terminal:
            app = snapshot_app(site, high_contrast)
            assert snap_compare(app, terminal_size=SIZE, run_before=signed_in_then(steps))
