"""Before the work: unlocking the workspace at boot, signing in, the forced password change, the lock screen.

The same screens on every desk (the terminal's application and the oversight's): what differs is
the workspace behind them, which the application names (``rfr_tui.desk.Desk``'s hooks).

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
    from rfr_tui.desk import Desk


class _Gate(Screen[Any]):
    """A centred card with a title, some fields, one line for what went wrong, and a button."""

    TITLE_TEXT = ""
    INTRO = ""

    @property
    def desk(self) -> Desk:
        return cast("Desk", self.app)

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
        workspace = self.desk.workspace_path()

        def derive() -> WorkspaceKey:
            header = WorkspaceHeader.read(workspace)
            return WorkspaceKey.from_passphrase(passphrase, header.kdf)

        def opened() -> None:
            self.app.switch_screen(self.desk.sign_in_screen())

        def failed(error: BaseException) -> None:
            self.busy(False)
            self.problem(said(error, f"The {self.desk.WORKSPACE_NOUN} could not be opened."))
            self.query_one("#passphrase", Input).focus()

        self.desk.run_engine(
            self, derive, lambda key: self.desk.open_workspace(key, opened, failed), group="unlock", failed=failed
        )


class SignInScreen(_Gate):
    """Everyone's way in: their own name and password."""

    TITLE_TEXT = "Sign in"
    INTRO = "Retrospective facial recognition. Sign in with your own name and password."

    CHECK_SECONDS = 0.25

    def fields(self) -> ComposeResult:
        yield Static(plain(self.desk.workspace_label()), id="terminal-name", classes="gate--intro")
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
        """Say how far the workspace is from ready; True once there is nothing more to say."""
        words, final = self.desk.opening_words()
        line = self.query_one("#opening", Static)
        line.update(plain(words))
        line.display = bool(words)
        return final

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
        accounts = self.desk.accounts_or_none
        if accounts is None:
            self.problem(f"The {self.desk.WORKSPACE_NOUN} is still opening: wait a moment and sign in again.")
            return
        username = self.query_one("#username", Input).value.strip()
        field = self.query_one("#password", Input)
        password, field.value = field.value, ""
        if not username or not password:
            self.problem("Type your user name and your password.")
            return
        self.busy(True)
        self.problem("Signing in...")

        def signed_in(session: Session) -> None:
            try:
                accounts.check(session)
            except PasswordChangeRequired:
                self.app.switch_screen(ChangePasswordScreen(session))
                return
            self.desk.signed_in(session)

        def failed(error: BaseException) -> None:
            self.busy(False)
            self.problem(said(error, "Signing in failed: try again."))
            self.query_one("#password", Input).focus()

        self.desk.run_engine(
            self, lambda: accounts.login(username, password), signed_in, group="sign-in", failed=failed
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
        accounts, session = self.desk.accounts, self._session

        def failed(error: BaseException) -> None:
            self.problem(said(error, "The password was not changed."))
            self.query_one("#current", Input).focus()

        self.desk.run_engine(
            self,
            lambda: accounts.change_password(session.username, values["current"], values["new"]),
            lambda _user: self.desk.signed_in(session),
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
        noun = self.desk.WORKSPACE_NOUN
        yield Static(plain(f"This {noun} was locked. {self._username}, type your password to go on."))
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
        self.desk.action_sign_out()

    def unlock(self) -> None:
        field = self.query_one("#password", Input)
        password, field.value = field.value, ""
        if not password:
            self.problem("Type your password.")
            return
        accounts, username = self.desk.accounts, self._username

        def signed_in(session: Session) -> None:
            self.desk.session = session  # the idle time also ended the old session: this is a fresh one
            self.app.pop_screen()
            self.desk.unlock()

        def failed(error: BaseException) -> None:
            self.problem(said(error, f"The {self.desk.WORKSPACE_NOUN} stays locked."))
            self.query_one("#password", Input).focus()

        self.desk.run_engine(self, lambda: accounts.login(username, password), signed_in, group="unlock", failed=failed)
