"""Before the work: unlocking the terminal at boot, signing in, the forced password change, the lock screen.

The terminal's workspace key is never a person's: when it opens with a passphrase (no key file),
an engineer types it once on the unlock screen at boot. Everyone then signs in with their own
name and password. A password an engineer set must be changed before anything else. The lock
screen (idle timeout or ``ctrl+l``) hides everything and asks the same person's password again;
anyone else signs the locked person out first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Center, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Static

from engine.errors import PasswordChangeRequired
from engine.security.keys import WorkspaceKey
from engine.security.users import Session
from engine.workspace import WorkspaceHeader
from rfr_tui.text import plain
from rfr_tui.wording import said

if TYPE_CHECKING:
    from rfr_tui.app import RfrApp


class _Gate(Screen[Any]):
    """A centred card with a title, some fields, one line for what went wrong, and a button."""

    TITLE_TEXT = ""
    INTRO = ""

    @property
    def rfr(self) -> RfrApp:
        return cast("RfrApp", self.app)

    def fields(self) -> ComposeResult:
        yield from ()

    def compose(self) -> ComposeResult:
        with Center(), Vertical(classes="gate"):
            yield Static(plain(self.TITLE_TEXT), classes="gate--title")
            if self.INTRO:
                yield Static(plain(self.INTRO), classes="gate--intro")
            yield from self.fields()
            yield Static("", id="problem", classes="gate--problem")
        yield Footer()

    def problem(self, text: str) -> None:
        self.query_one("#problem", Static).update(plain(text))

    def busy(self, on: bool) -> None:
        for field in self.query(Input):
            field.disabled = on
        for button in self.query(Button):
            button.disabled = on


class UnlockScreen(_Gate):
    """At boot, when the workspace opens with a passphrase: an engineer types it; nobody else ever does."""

    TITLE_TEXT = "Unlock this terminal"
    INTRO = (
        "This terminal's workspace opens with its passphrase. An engineer types it once, at start-up; "
        "after that everyone signs in with their own name and password."
    )

    def fields(self) -> ComposeResult:
        yield Input(password=True, placeholder="Workspace passphrase", id="passphrase")
        yield Button(plain("Unlock (Enter)"), id="unlock", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#passphrase", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.unlock()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.unlock()

    def unlock(self) -> None:
        field = self.query_one("#passphrase", Input)
        passphrase, field.value = field.value, ""
        if not passphrase:
            self.problem("Type the workspace passphrase.")
            return
        self.busy(True)
        self.problem("Unlocking... (this takes a few seconds)")
        config = self.rfr.config

        def derive() -> WorkspaceKey:
            header = WorkspaceHeader.read(config.workspace)
            return WorkspaceKey.from_passphrase(passphrase, header.kdf)

        def opened() -> None:
            self.app.switch_screen(SignInScreen())

        def failed(error: BaseException) -> None:
            self.busy(False)
            self.problem(said(error, "The terminal could not be opened."))
            self.query_one("#passphrase", Input).focus()

        self.rfr.run_engine(
            self, derive, lambda key: self.rfr.open_terminal(key, opened, failed), group="unlock", failed=failed
        )


class SignInScreen(_Gate):
    """Everyone's way in: their own name and password."""

    TITLE_TEXT = "Sign in"
    INTRO = "Retrospective facial recognition. Sign in with your own name and password."

    OPENING = "The terminal is opening..."
    LOADING = "You can sign in now; the face engine is still loading."
    NO_ENGINE = "The face engine could not be loaded: you can sign in, but nothing can be searched; tell an engineer."
    CHECK_SECONDS = 0.25

    def fields(self) -> ComposeResult:
        yield Static(plain(f"Terminal: {self.rfr.config.name}"), id="terminal-name", classes="gate--intro")
        yield Static("", id="opening", classes="gate--opening")
        yield Input(placeholder="User name", id="username")
        yield Input(password=True, placeholder="Password", id="password")
        yield Button(plain("Sign in (Enter)"), id="sign-in", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#username", Input).focus()
        # How far the terminal is from ready, on its own line (what went wrong keeps the problem line): said
        # until the face engine has loaded, then gone.
        if not self._say_opening():
            self._opening_timer = self.set_interval(self.CHECK_SECONDS, self._check_opening, name="sign-in-opening")

    def _say_opening(self) -> bool:
        """Say how far the terminal is from ready; True once there is nothing left to say."""
        terminal = self.rfr.terminal_or_none
        line = self.query_one("#opening", Static)
        if terminal is None:
            words = self.OPENING
        elif terminal.faces.ready:
            words = ""
        elif terminal.faces.problem is not None:
            words = self.NO_ENGINE  # what went wrong is on the System status screen, for the engineer
        else:
            words = self.LOADING
        line.update(plain(words))
        line.display = bool(words)
        return not words or (terminal is not None and terminal.faces.problem is not None)

    def _check_opening(self) -> None:
        if self._say_opening():
            self._opening_timer.stop()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "username":
            self.query_one("#password", Input).focus()
        else:
            self.sign_in()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.sign_in()

    def sign_in(self) -> None:
        if self.rfr.terminal_or_none is None:
            self.problem("The terminal is still opening: wait a moment and sign in again.")
            return
        username = self.query_one("#username", Input).value.strip()
        field = self.query_one("#password", Input)
        password, field.value = field.value, ""
        if not username or not password:
            self.problem("Type your user name and your password.")
            return
        terminal = self.rfr.terminal
        self.busy(True)
        self.problem("Signing in...")

        def signed_in(session: Session) -> None:
            try:
                terminal.accounts.check(session)
            except PasswordChangeRequired:
                self.app.switch_screen(ChangePasswordScreen(session))
                return
            self.rfr.signed_in(session)

        def failed(error: BaseException) -> None:
            self.busy(False)
            self.problem(said(error, "Signing in failed: try again."))
            self.query_one("#password", Input).focus()

        self.rfr.run_engine(
            self, lambda: terminal.sign_in(username, password), signed_in, group="sign-in", failed=failed
        )


class ChangePasswordScreen(_Gate):
    """A password an engineer set (a new account, a reset) is changed before anything else."""

    TITLE_TEXT = "Choose your own password"
    INTRO = "Your password was set by an engineer. Choose your own before you go on; nobody else will know it."

    def __init__(self, session: Session) -> None:
        super().__init__()
        self._session = session

    def fields(self) -> ComposeResult:
        yield Input(password=True, placeholder="The password you were given", id="current")
        yield Input(password=True, placeholder="Your new password", id="new")
        yield Input(password=True, placeholder="Your new password again", id="repeat")
        yield Button(plain("Change my password (Enter)"), id="change", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#current", Input).focus()

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
        if values["new"] != values["repeat"]:
            self.problem("The two new passwords differ: type them again.")
            self.query_one("#new", Input).focus()
            return
        terminal, session = self.rfr.terminal, self._session

        def failed(error: BaseException) -> None:
            self.problem(said(error, "The password was not changed."))
            self.query_one("#current", Input).focus()

        self.rfr.run_engine(
            self,
            lambda: terminal.accounts.change_password(session.username, values["current"], values["new"]),
            lambda _user: self.rfr.signed_in(session),
            group="change-password",
            failed=failed,
        )


class LockScreen(_Gate):
    """Hides everything; the same person's password opens it again, anyone else signs them out first."""

    TITLE_TEXT = "Locked"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+o", "sign_out_locked", "Sign out", id="lock.sign_out", priority=True),
    ]

    def __init__(self, username: str) -> None:
        super().__init__()
        self._username = username

    def fields(self) -> ComposeResult:
        yield Static(plain(f"This terminal was locked. {self._username}, type your password to go on."))
        yield Input(password=True, placeholder="Password", id="password")
        yield Button(plain("Unlock (Enter)"), id="unlock", variant="primary")
        yield Button(plain("Sign out (ctrl+o)"), id="sign-out")

    def on_mount(self) -> None:
        self.query_one("#password", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.unlock()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "sign-out":
            self.action_sign_out_locked()
        else:
            self.unlock()

    def action_sign_out_locked(self) -> None:
        self.app.pop_screen()
        self.rfr.action_sign_out()

    def unlock(self) -> None:
        field = self.query_one("#password", Input)
        password, field.value = field.value, ""
        if not password:
            self.problem("Type your password.")
            return
        terminal, username = self.rfr.terminal, self._username

        def signed_in(session: Session) -> None:
            self.rfr.session = session  # the idle time also ended the old session: this is a fresh one
            self.app.pop_screen()
            self.rfr.unlock()

        def failed(error: BaseException) -> None:
            self.problem(said(error, "The terminal stays locked."))
            self.query_one("#password", Input).focus()

        self.rfr.run_engine(
            self, lambda: terminal.sign_in(username, password), signed_in, group="unlock", failed=failed
        )
