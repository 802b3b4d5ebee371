"""What every screen of the application shares: the terminal and the signed-in session, a title, the status
bar and the footer, and one way to run engine work off the interface's thread.

Screens hold no business rule: they call the engine (``engine.terminal.Terminal`` and its
services) and show what it says. Work that can take more than a moment (anything touching the
face engine, a search, enrolment, verification, database reads that may be long) runs in a
thread worker (``run_engine``); its result comes back to the screen's callback on the
interface's thread, and an error becomes the application's one error dialog.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static
from textual.worker import Worker

from engine.security.users import Session
from engine.terminal import Terminal
from rfr_tui.text import plain

if TYPE_CHECKING:
    from rfr_tui.app import RfrApp
    from rfr_tui.desk import Desk

T = TypeVar("T")


class DeskScreen(Screen[Any]):
    """A screen of a signed-in desk (the terminal's application or the oversight's): title, body (``body()``),
    the desk's status bar (``status_bar()``), footer."""

    TITLE_TEXT = ""

    @property
    def desk(self) -> Desk:
        return cast("Desk", self.app)

    @property
    def session(self) -> Session:
        session = self.desk.session
        assert session is not None, "a signed-in screen is shown only while someone is signed in"
        return session

    def title_text(self) -> str:
        return self.TITLE_TEXT

    def compose(self) -> ComposeResult:
        yield Static(plain(self.title_text()), classes="screen--title")
        yield from self.body()
        yield self.status_bar()
        yield Footer()

    def body(self) -> ComposeResult:
        yield from ()

    def status_bar(self) -> Widget:
        raise NotImplementedError

    def run_engine(
        self,
        work: Callable[[], T],
        done: Callable[[T], object] | None = None,
        *,
        group: str = "engine",
        exclusive: bool = True,
        failed: Callable[[BaseException], None] | None = None,
    ) -> Worker[T]:
        """Run ``work`` in a thread; hand its result to ``done`` (on the interface's thread), errors to ``failed``
        or the error dialog."""
        return self.desk.run_engine(self, work, done, group=group, exclusive=exclusive, failed=failed)


class RfrScreen(DeskScreen):
    """A screen of the signed-in terminal application, with the terminal's status bar."""

    @property
    def rfr(self) -> RfrApp:
        return cast("RfrApp", self.app)

    @property
    def terminal(self) -> Terminal:
        return self.rfr.terminal

    def status_bar(self) -> Widget:
        from rfr_tui.widgets.status_bar import StatusBar

        return StatusBar()
