"""``Desk``: what both applications (the terminal's ``RfrApp`` and the oversight's ``OversightApp``) add to the
locked-down base: the signed-in session, engine work off the interface's thread, the one error dialog, and
showing one screen over the default one.

The engine decides everything; a desk only runs it where it does not block the interface and turns
what it says into a screen or a sentence.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from textual.screen import Screen
from textual.worker import Worker, get_current_worker

from engine.errors import RfrError
from engine.security.keys import WorkspaceKey
from engine.security.users import Accounts, Session
from rfr_tui.dialogs.error import ErrorDialog
from rfr_tui.lockdown import LockedDownApp

T = TypeVar("T")


class Desk(LockedDownApp[None]):
    """A locked-down application where one person at a time is signed in and engine work runs in workers.

    The gate screens (``rfr_tui.screens.sign_in``: unlock at start-up, sign in, the forced password
    change, the lock screen) are the same on every desk; what differs is the workspace behind them,
    which a desk names through the hooks below.
    """

    WORKSPACE_NOUN = "terminal"
    """What the workspace is to the people at this desk, in sentences ("the terminal is still opening")."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session: Session | None = None

    # ---- the workspace behind the gate screens (each desk says what its own is) ------------------

    @property
    def accounts_or_none(self) -> Accounts | None:
        """The workspace's accounts, once it is open (None while it opens)."""
        raise NotImplementedError

    @property
    def accounts(self) -> Accounts:
        accounts = self.accounts_or_none
        if accounts is None:
            raise RuntimeError(f"the {self.WORKSPACE_NOUN} is not open yet")
        return accounts

    def workspace_path(self) -> Path:
        """The workspace folder (the unlock screen reads its key derivation parameters from it)."""
        raise NotImplementedError

    def workspace_label(self) -> str:
        """What the sign-in screen names the workspace by (``Terminal: custody-1``)."""
        raise NotImplementedError

    def open_workspace(
        self,
        key: WorkspaceKey | None,
        done: Callable[[], None] | None = None,
        failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Open the configured workspace in a worker (its key file, or the key the unlock screen derived)."""
        raise NotImplementedError

    def opening_words(self) -> tuple[str, bool]:
        """What the sign-in screen says about how far the workspace is from ready, and whether it will ever say
        anything else (True: stop asking)."""
        if self.accounts_or_none is None:
            return f"The {self.WORKSPACE_NOUN} is opening...", False
        return "", True

    def home_screen(self) -> Screen[Any]:
        """The screen a person starts from once signed in."""
        raise NotImplementedError

    def idle_timeout(self) -> float:
        """The policy's idle minutes before a session locks."""
        raise NotImplementedError

    def sign_in_screen(self) -> Screen[Any]:
        """The screen people sign in on (the unlock screen goes on to it)."""
        from rfr_tui.screens.sign_in import SignInScreen

        return SignInScreen()

    def run_engine(
        self,
        owner: Any,
        work: Callable[[], T],
        done: Callable[[T], object] | None = None,
        *,
        group: str = "engine",
        exclusive: bool = True,
        failed: Callable[[BaseException], None] | None = None,
    ) -> Worker[T]:
        """Run ``work`` in a thread worker of ``owner`` (a screen, a widget, the application); ``done(result)``, or
        the error to ``failed`` or the error dialog, on the interface's thread. A cancelled worker reports nothing."""

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

        target = owner if hasattr(owner, "run_worker") else self
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
        self.session = session
        self.idle_timeout_minutes = self.idle_timeout()
        self._show_only(self.home_screen())

    def sign_out(self) -> None:
        """``ctrl+q``, the palette, or the lock screen's sign-out: end the session, back to sign-in."""
        session, self.session = self.session, None
        accounts = self.accounts_or_none
        if accounts is None:
            return
        if session is not None:
            try:
                accounts.logout(session)
            except RfrError:
                pass  # the session had already ended (idle, locked account): nothing more to end
        self._show_only(self.sign_in_screen())

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
