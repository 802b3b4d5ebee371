"""The confirm dialog: a yes-or-no question, answered by key or button; "no" is the safe default."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static

from rfr_tui.text import plain


class ConfirmDialog(ModalScreen[bool]):
    """Asks ``question``; dismisses with True for yes, False for no. The No button has the focus."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Yes", id="confirm.yes"),
        Binding("n,escape", "cancel", "No", id="confirm.no"),
    ]

    def __init__(
        self, question: str, *, yes: str = "Yes", no: str = "No", title: str = "Please confirm", dangerous: bool = False
    ) -> None:
        super().__init__()
        self._question = question
        self._yes = yes
        self._no = no
        self._title = title
        self._dangerous = dangerous

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog--confirm"):
            yield Static(plain(self._title), classes="dialog--title")
            yield Static(plain(self._question), id="confirm-question")
            with Horizontal(classes="dialog--buttons"):
                yield Button(plain(f"{self._yes} (y)"), id="yes", variant="error" if self._dangerous else "primary")
                yield Button(plain(f"{self._no} (n)"), id="no", variant="default")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
