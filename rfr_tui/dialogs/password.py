"""The password-again dialog, before approving a case or signing off a peer review.

It returns what was typed to the caller, which verifies it with the engine (so the attempt is
counted and audited there); it keeps no copy, logs nothing and the field is a password field.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Static

from rfr_tui.text import plain

EMPTY = "Type your password, or press Escape to cancel."


class PasswordDialog(ModalScreen[str | None]):
    """Asks for the signed-in person's password again; dismisses with it, or None if cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "submit", "Confirm", id="password.submit"),
        Binding("escape", "cancel", "Cancel", id="password.cancel"),
    ]

    def __init__(self, purpose: str, *, title: str = "Enter your password again") -> None:
        super().__init__()
        self._purpose = purpose
        self._title = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog--password"):
            yield Static(plain(self._title), classes="dialog--title")
            yield Static(plain(self._purpose), id="password-purpose")
            yield Input(password=True, id="password", placeholder="Password", select_on_focus=False)
            yield Static("", id="password-problem")
            with Horizontal(classes="dialog--buttons"):
                yield Button(plain("Confirm (Enter)"), id="submit", variant="primary")
                yield Button(plain("Cancel (Esc)"), id="cancel", variant="default")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#password", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "submit":
            self.action_submit()
        else:
            self.action_cancel()

    def action_submit(self) -> None:
        field = self.query_one("#password", Input)
        password = field.value
        if not password:
            self.query_one("#password-problem", Static).update(plain(EMPTY))
            field.focus()
            return
        field.value = ""  # the widget keeps no copy once the caller has it
        self.dismiss(password)

    def action_cancel(self) -> None:
        self.query_one("#password", Input).value = ""
        self.dismiss(None)
