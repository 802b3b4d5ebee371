"""A new secret typed twice: an account's first password, a Match Report file's passphrase.

It returns what was typed to the caller (which hands it to the engine at once); the fields are
password fields, emptied as soon as they are read, and nothing is logged. ``check`` is the
engine's own rule for such a secret (its length, say): its refusal is shown here, in its words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Static

from engine.errors import RfrError
from rfr_tui.text import plain
from rfr_tui.wording import for_a_person, sentence


class NewSecretDialog(ModalScreen[str | None]):
    """Asks for a new secret twice; dismisses with it, or None if cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="new_secret.cancel"),
    ]

    def __init__(
        self, title: str, purpose: str, *, noun: str = "password", check: Callable[[str], None] | None = None
    ) -> None:
        super().__init__()
        self._title = title
        self._purpose = purpose
        self._noun = noun
        self._check = check

    def compose(self) -> ComposeResult:
        noun = self._noun[0].upper() + self._noun[1:]
        with Vertical(classes="dialog dialog--new-secret"):
            yield Static(plain(self._title), classes="dialog--title")
            yield Static(plain(self._purpose), id="new-secret-purpose")
            yield Input(id="first", password=True, placeholder=noun, select_on_focus=False)
            yield Input(id="repeat", password=True, placeholder=f"{noun} again", select_on_focus=False)
            yield Static("", id="new-secret-problem")
            with Horizontal(classes="dialog--buttons"):
                yield Button(plain("Confirm (Enter)"), id="submit", variant="primary")
                yield Button(plain("Cancel (Esc)"), id="cancel", variant="default")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#first", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "first":
            self.query_one("#repeat", Input).focus()
        else:
            self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "submit":
            self.submit()
        else:
            self.action_cancel()

    def _problem(self, text: str) -> None:
        self.query_one("#new-secret-problem", Static).update(plain(text))
        self.query_one("#first", Input).focus()

    def submit(self) -> None:
        first, repeat = self.query_one("#first", Input), self.query_one("#repeat", Input)
        typed, again = first.value, repeat.value
        first.value = repeat.value = ""
        if not typed:
            self._problem(f"Type the {self._noun} twice, or press Escape to cancel.")
            return
        if typed != again:
            self._problem(f"The two {self._noun}s differ: type them again.")
            return
        if self._check is not None:
            try:
                self._check(typed)
            except RfrError as exc:
                self._problem(sentence(for_a_person(exc.diagnostics())))
                return
        self.dismiss(typed)

    def action_cancel(self) -> None:
        self.query_one("#first", Input).value = ""
        self.query_one("#repeat", Input).value = ""
        self.dismiss(None)
