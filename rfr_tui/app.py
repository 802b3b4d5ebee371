"""The rfr application: sign-in, then each person's work for their roles, on one terminal.

``RfrApp`` is given a ``Terminal`` (tests, the demo) or the terminal's configuration, which it
opens itself: with the key file, or, when the workspace opens with a passphrase, after an
engineer types it on the unlock screen. It never holds a business rule: every decision is the
engine's. What it adds to the engine is the application's own duty of care: the face engine is
loaded in the background as soon as the terminal opens, the retention sweep runs while it is
open, the session locks after the policy's idle time (``LockedDownApp``), and ``ctrl+q`` signs
out rather than quitting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual.screen import Screen

from engine.casework.service import SweepReport
from engine.security.keys import WorkspaceKey
from engine.security.users import Accounts
from engine.terminal import Terminal, TerminalConfig
from rfr_tui.desk import Desk


class RfrApp(Desk):
    """The custody terminal's application."""

    TITLE = "rfr: retrospective facial recognition"
    OPENING = "The terminal is opening..."
    LOADING = "You can sign in now; the face engine is still loading."
    NO_ENGINE = "The face engine could not be loaded: you can sign in, but nothing can be searched; tell an engineer."
    ENABLE_COMMAND_PALETTE: ClassVar[bool] = True

    def __init__(
        self,
        *,
        terminal: Terminal | None = None,
        config: TerminalConfig | None = None,
        open_terminal: Callable[[TerminalConfig, WorkspaceKey | None], Terminal] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if terminal is None and config is None:
            raise ValueError("give the application a terminal or the terminal's configuration")
        self._terminal = terminal
        self._owns_terminal = terminal is None  # given one (tests, the demo): the giver closes it
        self.config = config if config is not None else terminal.config  # type: ignore[union-attr]
        self._open_terminal = open_terminal or (lambda cfg, key: Terminal.open(cfg, key=key, sweep=False))
        self._lock = threading.Lock()

    # ---- the terminal ------------------------------------------------------------------------

    @property
    def terminal(self) -> Terminal:
        if self._terminal is None:
            raise RuntimeError("the terminal is not open yet")
        return self._terminal

    @property
    def terminal_or_none(self) -> Terminal | None:
        return self._terminal

    @property
    def accounts_or_none(self) -> Accounts | None:
        return None if self._terminal is None else self._terminal.accounts

    def workspace_path(self) -> Path:
        return self.config.workspace

    def workspace_label(self) -> str:
        return f"Terminal: {self.config.name}"

    def opening_words(self) -> tuple[str, bool]:
        """Until the terminal is open, then until the face engine has loaded (or could not be)."""
        terminal = self._terminal
        if terminal is None:
            return self.OPENING, False
        if terminal.faces.ready:
            return "", True
        if terminal.faces.problem is not None:  # why is on the System status screen, for the engineer
            return self.NO_ENGINE, True
        return self.LOADING, False

    def on_mount(self) -> None:
        super().on_mount()
        from rfr_tui.screens.sign_in import SignInScreen, UnlockScreen

        if self._terminal is not None:
            self._terminal_opened(self._terminal)
            self.push_screen(SignInScreen())
        elif self.config.key_file is None:
            self.push_screen(UnlockScreen())
        else:
            self.push_screen(SignInScreen())
            self.open_workspace(None)

    def open_workspace(
        self,
        key: WorkspaceKey | None,
        done: Callable[[], None] | None = None,
        failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Open the configured terminal in a worker (the key file, or the key the unlock screen derived).

        ``failed`` (the unlock screen's) shows why on the screen that asked; without it, the error dialog.
        """

        def job() -> Terminal:
            return self._open_terminal(self.config, key)

        def opened(terminal: Terminal) -> None:
            self._terminal = terminal
            self._terminal_opened(terminal)
            if done is not None:
                done()

        self.run_engine(self, job, opened, group="open-terminal", failed=failed)

    def _terminal_opened(self, terminal: Terminal) -> None:
        terminal.faces.start()  # the models load while people sign in
        report = terminal.sweep()
        self._say_sweep(report)
        terminal.start_sweeping(lambda report: self.call_from_thread(self._say_sweep, report))

    def _say_sweep(self, report: SweepReport) -> None:
        for line in report.lines():
            self.notify(line, title="Retention")

    # ---- people -------------------------------------------------------------------------------

    def home_screen(self) -> Screen[Any]:
        from rfr_tui.screens.home import HomeScreen

        return HomeScreen()

    def idle_timeout(self) -> float:
        return self.terminal.policy.sessions.idle_timeout_minutes

    # ---- closing -------------------------------------------------------------------------------

    async def on_unmount(self) -> None:
        if self._terminal is not None and self._owns_terminal:
            self._terminal.close()
