"""Changing one's own password, from the home screen."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Button, Input, Static

from rfr_tui.screens.base import RfrScreen
from rfr_tui.text import plain
from rfr_tui.wording import said


class OwnPasswordScreen(RfrScreen):
    """The current password, then the new one twice; the engine checks the rules and records the change."""

    TITLE_TEXT = "Change my password"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back", id="password.back")]

    def body(self) -> ComposeResult:
        with Vertical(classes="form"):
            yield Input(password=True, placeholder="Your current password", id="current")
            yield Input(password=True, placeholder="Your new password", id="new")
            yield Input(password=True, placeholder="Your new password again", id="repeat")
            yield Button(plain("Change my password"), id="change", variant="primary")
            yield Static("", id="problem", classes="form--problem")

    def on_mount(self) -> None:
        self.query_one("#current", Input).focus()

    def action_back(self) -> None:
        self.app.pop_screen()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        order = ["current", "new", "repeat"]
        at = order.index(event.input.id or "current")
        if at < 2:
            self.query_one(f"#{order[at + 1]}", Input).focus()
        else:
            self.change()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.change()

    def change(self) -> None:
        values = {}
        for name in ("current", "new", "repeat"):
            field = self.query_one(f"#{name}", Input)
            values[name], field.value = field.value, ""
        problem = self.query_one("#problem", Static)
        if values["new"] != values["repeat"]:
            problem.update(plain("The two new passwords differ: type all three again."))
            self.query_one("#current", Input).focus()  # every field was emptied: start from the first
            return
        terminal, username = self.terminal, self.session.username

        def changed(_user: object) -> None:
            self.app.notify("Your password was changed.", title="Password")
            self.app.pop_screen()

        def failed(error: BaseException) -> None:
            problem.update(plain(said(error, "Not changed: try again.")))
            self.query_one("#current", Input).focus()

        self.run_engine(
            lambda: terminal.accounts.change_password(username, values["current"], values["new"]),
            changed,
            failed=failed,
        )
