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
from typing import Any, ClassVar, TypeVar

from textual.screen import Screen
from textual.worker import Worker, get_current_worker

from engine.casework.service import SweepReport
from engine.errors import RfrError
from engine.security.keys import WorkspaceKey
from engine.security.users import Session
from engine.terminal import Terminal, TerminalConfig
from rfr_tui.dialogs.error import ErrorDialog
from rfr_tui.lockdown import LockedDownApp

T = TypeVar("T")


class RfrApp(LockedDownApp[None]):
    """The custody terminal's application."""

    TITLE = "rfr: retrospective facial recognition"
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
        self.session: Session | None = None
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
            self.open_terminal(None)

    def open_terminal(
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

    # ---- engine work off the interface's thread ------------------------------------------------

    def run_engine(
        self,
        owner: Any,
        work: Callable[[], T],
        done: Callable[[T], None] | None = None,
        *,
        group: str = "engine",
        exclusive: bool = True,
        failed: Callable[[BaseException], None] | None = None,
    ) -> Worker[T]:
        """Run ``work`` in a thread worker of ``owner``; ``done(result)`` or the error dialog, on this thread."""

        def job() -> T:
            worker = get_current_worker()
            try:
                result = work()
            except BaseException as exc:
                if not worker.is_cancelled:
                    self.call_from_thread(self.engine_failed, exc, failed)
                raise
            if done is not None and not worker.is_cancelled:
                self.call_from_thread(done, result)
            return result

        target = owner if isinstance(owner, Screen | LockedDownApp) or hasattr(owner, "run_worker") else self
        worker: Worker[T] = target.run_worker(job, thread=True, group=group, exclusive=exclusive, exit_on_error=False)
        return worker

    def engine_failed(self, error: BaseException, failed: Callable[[BaseException], None] | None = None) -> None:
        """The one place an engine error reaches the person: the screen's own handler, else the error dialog."""
        if failed is not None:
            failed(error)
            return
        self.show_error(error)

    def show_error(self, error: BaseException) -> None:
        if not isinstance(error, RfrError):
            self.log.error(f"unexpected error: {error!r}")  # for engineers; the person sees a plain sentence
        self.push_screen(ErrorDialog.from_error(error))

    # ---- people -------------------------------------------------------------------------------

    def signed_in(self, session: Session) -> None:
        """Someone signed in (and changed their password if they had to): their home screen."""
        from rfr_tui.screens.home import HomeScreen

        self.session = session
        self.idle_timeout_minutes = self.terminal.policy.sessions.idle_timeout_minutes
        self._show_only(HomeScreen())

    def sign_out(self) -> None:
        """``ctrl+q``, the palette, or the lock screen's sign-out: end the session, back to sign-in."""
        from rfr_tui.screens.sign_in import SignInScreen

        session, self.session = self.session, None
        if session is not None and self._terminal is not None:
            try:
                self._terminal.sign_out(session)
            except RfrError:
                pass  # the session had already ended (idle, locked account): nothing more to end
        if self._terminal is None:
            return
        self._show_only(SignInScreen())

    def lock(self) -> None:
        """The idle timeout or ``ctrl+l``: a full screen hides everything until the password is given."""
        from rfr_tui.screens.sign_in import LockScreen

        if self.session is None:
            self.locked = False  # nothing to hide at the sign-in screen
            return
        self.push_screen(LockScreen(self.session.username))

    def _show_only(self, screen: Screen[Any]) -> None:
        """Leave every screen but the default one and show ``screen``."""
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.push_screen(screen)

    # ---- closing -------------------------------------------------------------------------------

    async def on_unmount(self) -> None:
        if self._terminal is not None and self._owns_terminal:
            self._terminal.close()
