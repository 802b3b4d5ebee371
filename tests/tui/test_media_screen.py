"""The engineer's media screen, walked by key: choose a medium, read and verify it, see what it changes, apply it.

A real terminal (encrypted workspace, accounts, the stand-in face engine, a fixed clock) that
trusts a test central unit's root (tests/media) and has applied one medium. Its media are
published under ``media/`` in the test's folder, which is the working directory, so every path
on screen is relative and snapshots are the same on every run. Assertions are on the engine's
state and the audit log as well as on what the screen says. Update the snapshots with
``pytest tests/tui/test_media_screen.py --snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.signer import CryptoSigner
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, Static

from engine import audit
from rfr_tui.app import RfrApp
from rfr_tui.dialogs.confirm import ConfirmDialog
from rfr_tui.screens.media import MediaScreen
from rfr_tui.widgets.state_label import StateLabel
from tests.media.conftest import START, Clock, World, build_world, fingerprint
from tests.media.repository import accounts_package, first_password, library_package, policy_package
from tests.terminals import PASSWORD
from tests.tui.support import run, settle

SIZE = (130, 46)
THEMES = pytest.mark.parametrize("high_contrast", [False, True], ids=["default", "high-contrast"])


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(MediaScreen, "MOUNT_ROOTS", (Path("media"),))
    built = build_world(tmp_path / "w", Clock(START))
    (tmp_path / "media").mkdir()
    yield built
    built.terminal.close()


def publish(w: World, *, spoil: bool = False) -> str:
    """A medium at media/usb0 with a library delta, an accounts and a policy package; its path as typed."""
    from engine.media.format import UserEntry

    w.repo.add_package(*library_package(2, {"charlie": 2, "delta": 1}, remove=["alpha"]))
    users = [UserEntry("dave", "Dave D", ("rfr_user",), "Constable", first_password("first pass 1"), False)]
    w.repo.add_package(*accounts_package(1, users))
    w.repo.add_package(*policy_package(1, "2027.1"))
    if spoil:
        w.repo.sign_with["timestamp"] = [CryptoSigner.generate_ed25519()]
    w.repo.publish(Path("media") / "usb0")
    return "media/usb0"


async def settled(pilot: Pilot[Any]) -> None:
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def open_media(pilot: Pilot[Any], w: World) -> None:
    app = pilot.app
    assert isinstance(app, RfrApp)
    app.signed_in(w.terminal.sign_in("eng1", PASSWORD))
    await pilot.pause()
    await pilot.press("m")
    await settled(pilot)
    assert isinstance(app.screen, MediaScreen)


async def read_typed(pilot: Pilot[Any], path: str) -> None:
    field = pilot.app.screen.query_one("#medium", Input)
    field.focus()
    field.value = path
    await pilot.press("ctrl+r")
    await settled(pilot)


def verdict(pilot: Pilot[Any]) -> str:
    return pilot.app.screen.query_one("#media-verdict", StateLabel).words


def text_of(pilot: Pilot[Any], selector: str) -> str:
    return str(pilot.app.screen.query_one(selector, Static).render())


def rows(pilot: Pilot[Any]) -> list[list[str]]:
    table: DataTable[Any] = pilot.app.screen.query_one("#media-packages", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def events(w: World, action: str) -> list[audit.AuditEvent]:
    with w.ws.reading() as conn:
        return [e for e in audit.events(conn) if e.action == action]


def test_choose_read_see_what_changes_and_apply(world: World) -> None:
    path = publish(world)

    async def walk() -> None:
        async with RfrApp(terminal=world.terminal).run_test(size=SIZE) as pilot:
            await open_media(pilot, world)
            assert "version 1 installed by eng1" in text_of(pilot, "#media-trust")
            mounts = pilot.app.screen.query_one("#media-mounts", OptionList)
            assert [str(mounts.get_option_at_index(i).prompt) for i in range(mounts.option_count)] == [path]
            mounts.focus()
            await pilot.press("down", "enter")  # choosing the mount reads it
            await settled(pilot)
            assert verdict(pilot) == "Verified: 3 packages for this terminal to apply"
            assert rows(pilot) == [
                ["accounts#1", "to apply", "changes 1 account"],
                ["library:custody#1", "already applied", ""],
                ["library:custody#2", "to apply", "library custody: adds 2 subjects (3 images), removes 1"],
                ["policy#1", "to apply", "policy 2026.6 -> 2027.1"],
            ]
            assert "dave added" in text_of(pilot, "#media-changes")
            assert world.ws.query("SELECT sequence FROM media_streams") == [(1,)]  # nothing applied by reading
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert isinstance(pilot.app.screen, ConfirmDialog)
            await pilot.press("y")
            await settled(pilot)
            assert verdict(pilot) == "Applied: 3 packages, recorded as yours"
            assert "the policy in force is now version 2027.1" in text_of(pilot, "#media-detail")

    run(walk)
    assert dict(world.ws.query("SELECT stream, sequence FROM media_streams")) == {
        "library:custody": 2,
        "accounts": 1,
        "policy": 1,
    }
    assert [(e.actor, e.subjects["package"]) for e in events(world, "media.package_applied")][-3:] == [
        ("eng1", "policy#1"),
        ("eng1", "accounts#1"),
        ("eng1", "library:custody#2"),
    ]
    assert world.terminal.policy.version == "2027.1"


def test_a_refused_medium_is_said_plainly_and_changes_nothing(world: World) -> None:
    path = publish(world, spoil=True)
    before = fingerprint(world.ws)

    async def walk() -> None:
        async with RfrApp(terminal=world.terminal).run_test(size=SIZE) as pilot:
            await open_media(pilot, world)
            after_sign_in = fingerprint(world.ws)
            await read_typed(pilot, path)
            assert verdict(pilot) == "Refused: nothing was changed on this terminal"
            assert text_of(pilot, "#media-detail").startswith("Metadata not signed by enough trusted keys")
            assert pilot.app.screen.query_one("#apply").disabled
            await pilot.press("ctrl+s")  # nothing to apply: the key does nothing
            await settled(pilot)
            assert isinstance(pilot.app.screen, MediaScreen)
            assert fingerprint(world.ws) == after_sign_in

    run(walk)
    assert fingerprint(world.ws) != before  # only the sign-in and sign-out were recorded
    assert events(world, "media.package_applied")[-1].subjects["package"] == "library:custody#1"


def test_declining_the_confirmation_applies_nothing(world: World) -> None:
    path = publish(world)

    async def walk() -> None:
        async with RfrApp(terminal=world.terminal).run_test(size=SIZE) as pilot:
            await open_media(pilot, world)
            await read_typed(pilot, path)
            before = fingerprint(world.ws)
            await pilot.press("ctrl+s")
            await pilot.pause()
            await pilot.press("n")
            await settled(pilot)
            assert fingerprint(world.ws) == before
            assert verdict(pilot).startswith("Verified: 3 packages")

    run(walk)


def test_a_typed_path_that_is_not_a_medium(world: World) -> None:
    Path("media", "notes").mkdir()

    async def walk() -> None:
        async with RfrApp(terminal=world.terminal).run_test(size=SIZE) as pilot:
            await open_media(pilot, world)
            await pilot.press("ctrl+r")
            assert text_of(pilot, "#media-problem") == "Choose a mounted medium in the list, or type its path."
            await read_typed(pilot, "media/notes")
            assert verdict(pilot) == "Refused: nothing was changed on this terminal"
            assert "is not a medium from the central unit" in text_of(pilot, "#media-detail")

    run(walk)


# ---- snapshots ---------------------------------------------------------------------------------------


def snapshot_of(
    w: World, high_contrast: bool, then: Callable[[Pilot[Any]], Awaitable[None]]
) -> tuple[RfrApp, Callable[[Pilot[Any]], Awaitable[None]]]:
    async def before(pilot: Pilot[Any]) -> None:
        await open_media(pilot, w)
        await then(pilot)
        await settled(pilot)
        await settle(pilot)

    w.terminal.faces.get()  # loaded before the status bar first asks
    app = RfrApp(terminal=w.terminal)
    app.set_high_contrast(high_contrast)
    return app, before


class TestSnapshots:
    @THEMES
    def test_what_a_medium_changes(self, world: World, snap_compare: Any, high_contrast: bool) -> None:
        path = publish(world)

        async def then(pilot: Pilot[Any]) -> None:
            await read_typed(pilot, path)

        app, before = snapshot_of(world, high_contrast, then)
        assert snap_compare(app, terminal_size=SIZE, run_before=before)

    @THEMES
    def test_applied(self, world: World, snap_compare: Any, high_contrast: bool) -> None:
        path = publish(world)

        async def then(pilot: Pilot[Any]) -> None:
            await read_typed(pilot, path)
            await pilot.press("ctrl+s")
            await pilot.pause()
            await pilot.press("y")

        app, before = snapshot_of(world, high_contrast, then)
        assert snap_compare(app, terminal_size=SIZE, run_before=before)

    @THEMES
    def test_refused(self, world: World, snap_compare: Any, high_contrast: bool) -> None:
        path = publish(world, spoil=True)

        async def then(pilot: Pilot[Any]) -> None:
            await read_typed(pilot, path)

        app, before = snapshot_of(world, high_contrast, then)
        assert snap_compare(app, terminal_size=SIZE, run_before=before)
