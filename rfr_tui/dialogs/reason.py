"""The reason dialog: why an action is taken (locking an account, deleting a library), recorded with it.

It returns what was typed to the caller, which hands it to the engine: the engine decides
whether the reason is enough and records it in the audit log. The dialog only asks for
something to be typed, as the password dialog does.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Static

from rfr_tui.text import plain

EMPTY = "Type the reason, or press Escape to cancel."


class ReasonDialog(ModalScreen[str | None]):
    """Asks ``question``; dismisses with the reason typed, or None if cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="reason.cancel"),
    ]

    def __init__(
        self,
        question: str,
        *,
        title: str = "Give the reason",
        action: str = "Go on",
        placeholder: str = "The reason (it is recorded in the audit log)",
    ) -> None:
        super().__init__()
        self._question = question
        self._title = title
        self._action = action
        self._placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog--reason"):
            yield Static(plain(self._title), classes="dialog--title")
            yield Static(plain(self._question), id="reason-question")
            yield Input(id="reason", placeholder=self._placeholder, select_on_focus=False, max_length=2000)
            yield Static("", id="reason-problem")
            with Horizontal(classes="dialog--buttons"):
                yield Button(plain(f"{self._action} (Enter)"), id="submit", variant="primary")
                yield Button(plain("Cancel (Esc)"), id="cancel", variant="default")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "submit":
            self.submit()
        else:
            self.action_cancel()

    def submit(self) -> None:
        field = self.query_one("#reason", Input)
        reason = " ".join(field.value.split())
        if not reason:
            self.query_one("#reason-problem", Static).update(plain(EMPTY))
            field.focus()
            return
        self.dismiss(reason)

    def action_cancel(self) -> None:
        self.dismiss(None)
