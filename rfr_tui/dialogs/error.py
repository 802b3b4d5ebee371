"""The error dialog: what went wrong and what to do next, in a plain sentence, never a traceback."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static

from engine.errors import RfrError
from rfr_tui.text import plain
from rfr_tui.widgets.state_label import StateLabel, Tone
from rfr_tui.wording import for_a_person

# Shown for anything that is not an RfrError: its text may hold internals (paths, SQL, keys'
# names), so it never reaches the screen; the application logs it where engineers look.
UNEXPECTED = (
    "Something unexpected stopped this action. Try it again; if it happens again, note the time and tell an engineer."
)


class ErrorDialog(ModalScreen[None]):
    """Shows the text of ``RfrError.diagnostics()`` (and, for several problems, each one)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter", "close", "Close", id="error.close"),
    ]

    def __init__(self, message: str, *, problems: Sequence[str] = (), title: str = "This could not be done") -> None:
        super().__init__()
        self._message = " ".join(message.split()) or UNEXPECTED
        self._problems = [p for p in problems if p.strip() and p.strip() != self._message]
        self._title = title

    @classmethod
    def from_error(cls, error: BaseException) -> ErrorDialog:
        """The dialog for ``error``: its diagnostics if it is an RfrError (without command-line hints: see
        ``rfr_tui.wording``), else a plain sentence."""
        if isinstance(error, RfrError):
            problems = [for_a_person(str(p)) for p in getattr(error, "problems", ())]
            return cls(for_a_person(error.diagnostics()), problems=problems if len(problems) > 1 else ())
        return cls(UNEXPECTED)

    @property
    def message(self) -> str:
        return self._message

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog--error"):
            yield StateLabel(self._title, Tone.BAD, classes="dialog--title")
            yield Static(plain(self._message), id="error-message")
            if self._problems:
                yield Static(plain("\n".join(f"• {p}" for p in self._problems)), id="error-problems")
            with Horizontal(classes="dialog--buttons"):
                yield Button(plain("OK"), id="close", variant="primary")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
