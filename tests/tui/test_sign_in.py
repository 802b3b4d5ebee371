"""The sign-in screen while the terminal starts: it says how far from ready the terminal is, and stops saying it.

The application draws the sign-in screen at once, opens the workspace in a worker and loads the face
engine in the background. The screen says "opening" until the workspace is open, then that one can
sign in while the face engine loads, and nothing once it has loaded. A face engine that cannot load
is said plainly, and signing in still works.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from textual.widgets import Static

from engine.security.keys import WorkspaceKey
from engine.terminal import FaceProvider, Terminal, TerminalConfig
from rfr_tui.app import RfrApp
from rfr_tui.screens.home import HomeScreen
from rfr_tui.screens.sign_in import SignInScreen
from tests.synthetic import SyntheticFaceEngine
from tests.terminals import FAST, PASSWORD, make_terminal, provision, terminal_config
from tests.tui.casework_world import done, fill, shown
from tests.tui.support import run


class Slow:
    """A terminal that opens, and a face engine that loads, only when the test lets them."""

    def __init__(self, directory: Path, *, fails: bool = False) -> None:
        with make_terminal(directory) as terminal:
            provision(terminal, {"alice": (["rfr_user"], "Constable")})
        self.config = terminal_config(directory)
        self.open = threading.Event()
        self.load = threading.Event()
        self.fails = fails

    def engine(self) -> SyntheticFaceEngine:
        self.load.wait(10)
        if self.fails:
            raise RuntimeError("no OpenVINO device")
        return SyntheticFaceEngine()

    def __call__(self, config: TerminalConfig, key: WorkspaceKey | None) -> Terminal:
        self.open.wait(10)
        faces = FaceProvider(self.engine, lambda: ("synthetic", "0" * 64))
        return Terminal.open(config, key=key, faces=faces, scrypt=FAST, sweep=False)


async def until(pilot: Any, condition: Any, what: str) -> None:
    for _ in range(250):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"gave up waiting for {what}")


def opening_line(app: RfrApp) -> str:
    line = app.screen.query_one("#opening", Static)
    return shown(line) if line.display else ""


def test_the_sign_in_screen_says_the_terminal_is_opening_then_loading_then_nothing(tmp_path: Path) -> None:
    slow = Slow(tmp_path / "ws")

    async def body() -> list[str]:
        app = RfrApp(config=slow.config, open_terminal=slow)
        seen = []
        try:
            async with app.run_test(size=(100, 30)) as pilot:
                await pilot.pause()
                assert isinstance(app.screen, SignInScreen)
                seen.append(opening_line(app))
                slow.open.set()
                await until(pilot, lambda: app.terminal_or_none is not None, "the terminal to open")
                await until(pilot, lambda: opening_line(app) != RfrApp.OPENING, "the line to change")
                seen.append(opening_line(app))
                # Signing in works while the face engine loads.
                await fill(pilot, "alice")
                await pilot.press("enter")
                await fill(pilot, PASSWORD)
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(app.screen, HomeScreen), "alice's home screen")
                await pilot.press("ctrl+q")
                await done(pilot)
                assert isinstance(app.screen, SignInScreen)
                seen.append(opening_line(app))  # a new sign-in screen, the engine still loading
                slow.load.set()
                await until(pilot, lambda: opening_line(app) == "", "the line to go")
                seen.append(opening_line(app))
        finally:
            slow.open.set()
            slow.load.set()
        return seen

    assert run(body) == [RfrApp.OPENING, RfrApp.LOADING, RfrApp.LOADING, ""]


def test_a_face_engine_that_cannot_load_is_said_plainly_and_signing_in_still_works(tmp_path: Path) -> None:
    slow = Slow(tmp_path / "ws", fails=True)
    slow.open.set()
    slow.load.set()

    async def body() -> str:
        app = RfrApp(config=slow.config, open_terminal=slow)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: "could not be loaded" in opening_line(app), "the face engine's problem")
            said = opening_line(app)
            await fill(pilot, "alice")
            await pilot.press("enter")
            await fill(pilot, PASSWORD)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, HomeScreen), "alice's home screen")
            return said

    assert run(body) == RfrApp.NO_ENGINE
