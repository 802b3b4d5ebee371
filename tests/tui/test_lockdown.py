"""The custody-terminal lockdown: each thing the issue forbids is tried and found not to happen."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from textual import constants, events
from textual.app import ComposeResult
from textual.command import CommandList, CommandPalette
from textual.widgets import Footer, Input, Static

from rfr_tui.dialogs.help import HelpDialog
from rfr_tui.lockdown import LockdownError, LockedDownApp, plain, unsafe_textual_settings
from rfr_tui.widgets.face_image import FaceImage
from tests.tui.support import drawn_face, run

HOSTILE = "[@click=app.quit]x[/]"


class Recorder(LockedDownApp[None]):
    """A locked-down app that records its hooks instead of changing screens."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.events: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static(plain(HOSTILE), id="plain")
        yield Static(HOSTILE.replace("x", "click me"), id="markup")
        yield Static("Some text a person might try to select", id="text")
        yield Input(value="case 2024/17", id="field")
        yield FaceImage(drawn_face(), id="face")
        yield Footer()

    def sign_out(self) -> None:
        self.events.append("sign_out")

    def lock(self) -> None:
        self.events.append("lock")


# ---- the command palette ---------------------------------------------------------------------


def test_the_palette_offers_the_apps_commands_and_no_screenshot_theme_or_quit() -> None:
    async def body() -> tuple[list[str], list[str], list[str]]:
        app = Recorder()
        async with app.run_test() as pilot:
            titles = [command.title for command in app.get_system_commands(app.screen)]
            await pilot.press("ctrl+p")
            await pilot.pause()
            assert isinstance(app.screen, CommandPalette)
            shown = {}
            for query in ("screen", "theme", "quit", "sign"):
                await pilot.press(*query)
                await pilot.pause(0.3)
                found = app.screen.query_one(CommandList)
                shown[query] = [str(found.get_option_at_index(i).prompt) for i in range(found.option_count)]
                await pilot.press(*["backspace"] * len(query))
            return titles, shown["screen"] + shown["theme"] + shown["quit"], shown["sign"]

    titles, forbidden_hits, sign_hits = run(body)
    assert titles[:3] == ["Sign out", "Lock", "Help"]
    assert not {"Theme", "Screenshot", "Quit"} & set(titles)
    assert not [hit for hit in forbidden_hits if hit.startswith(("Screenshot", "Theme", "Quit"))]
    assert any(hit.startswith("Sign out") for hit in sign_hits)


# ---- nothing leaves the screen -------------------------------------------------------------


def test_screenshot_actions_write_nothing(tmp_path: Path) -> None:
    async def body() -> None:
        app = Recorder()
        async with app.run_test() as pilot:
            app.action_screenshot(filename="shot.svg", path=str(tmp_path))
            assert app.deliver_screenshot(filename="deliver.svg", path=str(tmp_path)) is None
            app.save_screenshot(filename="save.svg", path=str(tmp_path))
            await app.run_action("screenshot")
            await pilot.pause(0.2)

    run(body)
    assert list(tmp_path.iterdir()) == []


def test_copying_to_the_clipboard_does_nothing() -> None:
    async def body() -> str:
        app = Recorder()
        async with app.run_test() as pilot:
            app.copy_to_clipboard("the officer's notes")
            app.query_one("#field", Input).focus()
            await pilot.press("ctrl+a", "ctrl+c")
            await pilot.pause()
            return app.clipboard

    assert run(body) == ""


def test_text_cannot_be_selected_with_the_mouse() -> None:
    async def drag(app: LockedDownApp[None]) -> str | None:
        async with app.run_test() as pilot:
            await pilot.mouse_down("#text", offset=(0, 0))
            await pilot.hover("#text", offset=(12, 0))
            await pilot.mouse_up("#text", offset=(12, 0))
            await pilot.pause()
            return app.screen.get_selected_text()

    class Selectable(Recorder):
        ALLOW_SELECT = True

    assert (run(lambda: drag(Selectable())) or "").startswith("Some text a")  # the drag selects, if allowed
    assert run(lambda: drag(Recorder())) is None


# ---- signing out, never quitting, never suspending ------------------------------------------


def test_ctrl_q_and_the_quit_action_sign_out_and_the_app_keeps_running() -> None:
    async def body() -> tuple[list[str], bool]:
        app = Recorder()
        async with app.run_test() as pilot:
            await pilot.press("ctrl+q")
            await app.run_action("app.quit")
            await pilot.pause()
            return list(app.events), app.is_running

    events_seen, running = run(body)
    assert events_seen == ["sign_out", "sign_out"]
    assert running


def test_signing_out_clears_the_pictures_before_the_hook() -> None:
    async def body() -> tuple[bool, object]:
        app = Recorder()
        async with app.run_test() as pilot:
            app.idle_timeout_minutes = 5
            await pilot.press("ctrl+q")
            await pilot.pause()
            face = app.query_one(FaceImage)
            return face.concealed, app.idle_timeout_minutes

    concealed, timeout = run(body)
    assert concealed
    assert timeout is None


def test_suspend_is_unbound_and_does_nothing_even_where_the_terminal_could(monkeypatch: pytest.MonkeyPatch) -> None:
    kills: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: kills.append((pid, sig)))

    async def body() -> tuple[set[str], bool]:
        app = Recorder()
        async with app.run_test() as pilot:
            await pilot.press("ctrl+z")
            await pilot.pause()
            actions = {active.binding.action for active in app.screen.active_bindings.values()}
            # Where suspending is possible (a real terminal), the action still does nothing.
            real_driver = app._driver
            app._driver = SimpleNamespace(can_suspend=True)  # type: ignore[assignment]
            try:
                app.action_suspend_process()
            finally:
                app._driver = real_driver
            return actions, app.is_running

    actions, running = run(body)
    assert "ctrl+z" not in {key for key in actions}
    assert not {"suspend_process", "app.suspend_process"} & actions
    assert kills == []
    assert running


# ---- text from people and files ---------------------------------------------------------------


def test_markup_shown_through_plain_is_text_not_an_action() -> None:
    async def body() -> tuple[list[str], list[str], str]:
        app = Recorder()
        async with app.run_test() as pilot:
            await pilot.click("#plain")
            await pilot.pause()
            after_plain = list(app.events)
            await pilot.click("#markup")  # control: the same markup, read as markup, fires
            await pilot.pause()
            return after_plain, list(app.events), str(app.query_one("#plain", Static).render())

    after_plain, after_markup, shown = run(body)
    assert after_plain == []
    assert after_markup == ["sign_out"]
    assert shown == HOSTILE


def test_plain_shows_terminal_control_codes_as_signs_and_never_sends_them() -> None:
    hostile = "IMG\x1b]52;c;cGFzc3dvcmQ=\x07\x1b[2J\x9b31m\u202eGPJ.exe\ttab\nline"
    shown = plain(hostile).plain
    assert not [c for c in shown if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0]
    assert "\u202e" not in shown
    assert shown.startswith("IMG␛]52;c;cGFzc3dvcmQ=␇␛[2J\ufffd31m\ufffdGPJ.exe\ttab\nline")


def test_notifications_do_not_read_markup_unless_asked() -> None:
    async def body() -> list[str]:
        app = Recorder()
        async with app.run_test(notifications=True) as pilot:
            app.notify("[@click=app.quit]first[/]")
            app.notify("[@click=app.quit]second[/]", markup=True)  # control: asked for, markup is read
            await pilot.pause(0.3)
            return [str(toast.render()) for toast in app.screen.query("Toast")]

    assert run(body) == ["[@click=app.quit]first[/]", "second"]


def test_notifications_show_control_codes_as_signs() -> None:
    """A file or user name in a notice (a report written to a folder named by a stick) never sends codes."""

    async def body() -> list[str]:
        app = Recorder()
        async with app.run_test(notifications=True) as pilot:
            app.notify("written to /media/\x1b[2Jstick", title="Case \x9b1m")
            await pilot.pause(0.3)
            return [str(toast.render()) for toast in app.screen.query("Toast")]

    (shown,) = run(body)
    assert "\x1b" not in shown and "\x9b" not in shown
    assert "written to /media/␛[2Jstick" in shown and "Case \ufffd1m" in shown


# ---- switches from the environment ----------------------------------------------------------


def test_the_app_refuses_to_run_with_textual_switches_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert unsafe_textual_settings() == []
    monkeypatch.setattr(constants, "PRESS", "ctrl+q")
    monkeypatch.setattr(constants, "LOG_FILE", "/tmp/textual.log")
    assert unsafe_textual_settings() == ["TEXTUAL_LOG", "TEXTUAL_PRESS"]
    with pytest.raises(LockdownError, match=r"environment \(TEXTUAL_LOG, TEXTUAL_PRESS\)"):
        Recorder().run(headless=True)


# ---- the idle lock ---------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Idle(Recorder):
    IDLE_CHECK_SECONDS = 0.02


def test_the_session_locks_once_after_the_idle_timeout_and_not_before() -> None:
    clock = FakeClock()

    async def body() -> list[tuple[str, list[str], bool]]:
        app = Idle(clock=clock)
        seen = []
        async with app.run_test() as pilot:
            app.idle_timeout_minutes = 2
            clock.now += 119
            await pilot.pause(0.1)
            seen.append(("119 s", list(app.events), app.locked))
            clock.now += 1
            await pilot.pause(0.1)
            seen.append(("120 s", list(app.events), app.locked))
            clock.now += 600
            await pilot.pause(0.1)
            seen.append(("720 s", list(app.events), app.locked))
        return seen

    assert run(body) == [("119 s", [], False), ("120 s", ["lock"], True), ("720 s", ["lock"], True)]


@pytest.mark.parametrize("kind", ["key", "click", "mouse move", "paste"])
def test_every_kind_of_input_restarts_the_idle_time(kind: str) -> None:
    clock = FakeClock()

    async def body() -> tuple[list[str], list[str]]:
        app = Idle(clock=clock)
        async with app.run_test() as pilot:
            app.idle_timeout_minutes = 1
            clock.now += 50
            if kind == "key":
                await pilot.press("tab")
            elif kind == "click":
                await pilot.click("#text")
            elif kind == "mouse move":
                await pilot.hover("#text", offset=(3, 0))
            else:
                app.post_message(events.Paste("pasted"))
            await pilot.pause(0.1)
            clock.now += 50  # 100 s since the start, 50 s since the input
            await pilot.pause(0.1)
            before = list(app.events)
            clock.now += 10
            await pilot.pause(0.1)
            return before, list(app.events)

    assert run(body) == ([], ["lock"])


def test_no_idle_lock_while_nobody_is_signed_in_and_unlock_restarts_the_clock() -> None:
    clock = FakeClock()

    async def body() -> list[tuple[list[str], bool]]:
        app = Idle(clock=clock)
        seen = []
        async with app.run_test() as pilot:
            clock.now += 100_000
            await pilot.pause(0.1)
            seen.append((list(app.events), app.locked))
            app.idle_timeout_minutes = 1
            clock.now += 60
            await pilot.pause(0.1)
            seen.append((list(app.events), app.locked))
            app.unlock()
            clock.now += 59
            await pilot.pause(0.1)
            seen.append((list(app.events), app.locked))
            clock.now += 1
            await pilot.pause(0.1)
            seen.append((list(app.events), app.locked))
        return seen

    assert run(body) == [([], False), (["lock"], True), (["lock"], False), (["lock", "lock"], True)]


def test_locking_conceals_every_picture_and_unlocking_brings_them_back() -> None:
    async def body() -> list[tuple[bool, bool]]:
        app = Recorder()
        seen = []
        async with app.run_test() as pilot:
            face = app.query_one(FaceImage)
            inner = face.query_one(".face-image--picture")
            seen.append((face.concealed, inner.image is None))  # type: ignore[attr-defined]
            await pilot.press("ctrl+l")
            await pilot.pause()
            seen.append((face.concealed, inner.image is None))  # type: ignore[attr-defined]
            app.unlock()
            await pilot.pause()
            seen.append((face.concealed, inner.image is None))  # type: ignore[attr-defined]
        return seen

    assert run(body) == [(False, False), (True, True), (False, False)]


def test_an_idle_timeout_must_be_positive() -> None:
    app = Recorder()
    with pytest.raises(ValueError, match="positive minutes"):
        app.idle_timeout_minutes = 0


# ---- help ------------------------------------------------------------------------------------


def test_f1_lists_the_keys_of_the_screen_in_front() -> None:
    async def body() -> list[tuple[str, str]]:
        app = Recorder()
        async with app.run_test() as pilot:
            await pilot.press("f1")
            await pilot.pause()
            assert isinstance(app.screen, HelpDialog)
            keys = [(line.key, line.description) for line in app.screen.keys]
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, HelpDialog)
            return keys

    keys = run(body)
    assert ("^q", "Sign out") in keys
    assert ("^l", "Lock") in keys
    assert ("f1", "Help") in keys
    assert ("^p", "Command palette") in keys
    assert ("^a", "Go to start") in keys  # the focused field's own keys are listed too
    # ...but not the clipboard keys, which do nothing here
    assert not [what for _, what in keys if what.split()[0] in {"Copy", "Cut", "Paste"}]


def test_the_theme_is_the_apps_and_high_contrast_switches() -> None:
    app = Recorder()
    assert app.theme == "rfr"
    assert not app.high_contrast
    app.set_high_contrast(True)
    assert app.theme == "rfr-high-contrast"
    assert app.high_contrast
