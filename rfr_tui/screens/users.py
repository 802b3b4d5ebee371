"""Users: every account of the terminal, and the account changes that take two engineers.

Adding a user, changing roles and resetting a password take two engineers: one asks here, a
different one signs in at this terminal and confirms (setting the first password of a new
account or a reset one, which its owner must change at first sign-in). The screen shows who
asked for each pending change and, for each, whether the engineer signed in may confirm it,
in the engine's own words. Locking and unlocking take one engineer. Every rule and every
record is the engine's (``engine.security.users.Accounts``); the screen asks and shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Input, Select, Static

from engine.errors import RfrError
from engine.security.users import AccountRequest, RequestKind, Role, User
from rfr_tui.dialogs.confirm import ConfirmDialog
from rfr_tui.dialogs.new_secret import NewSecretDialog
from rfr_tui.dialogs.reason import ReasonDialog
from rfr_tui.screens.base import RfrScreen
from rfr_tui.text import plain, plain_cell
from rfr_tui.widgets.tick_list import TickList
from rfr_tui.wording import for_a_person, sentence

INTRO = (
    "Adding a user, changing roles and resetting a password take two engineers: one asks, and a different "
    "engineer signs in here and confirms. Nobody confirms their own request or changes their own account. "
    "Locking and unlocking take one engineer."
)
HAND_OVER = "Hand the password to them in person; they must change it when they first sign in."


def when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def sign_in_state(user: User, now: datetime) -> str:
    """Whether the account can sign in, in words with a symbol (never by colour alone)."""
    if user.locked_by_admin:
        return "✖ locked by an engineer"
    if user.locked_until is not None and user.is_locked(now):
        return f"⚠ locked until {user.locked_until:%H:%M} UTC after failed sign-ins"
    if user.failed_attempts:
        return f"✔ can sign in ({user.failed_attempts} failed sign-in{'s' if user.failed_attempts > 1 else ''})"
    return "✔ can sign in"


def password_state(user: User) -> str:
    return "⚠ must change it at next sign-in" if user.must_change_password else "✔ their own"


def roles_text(roles: frozenset[Role] | None) -> str:
    return ", ".join(sorted(r.label for r in roles or ()))


@dataclass(frozen=True)
class _Pending:
    request: AccountRequest
    refusal: str | None  # why the engineer signed in may not confirm it (the engine's sentence), or None


@dataclass(frozen=True)
class _Directory:
    users: list[User]
    pending: list[_Pending]
    now: datetime


class UsersScreen(RfrScreen):
    """Accounts, their roles, rank and locks; pending account changes and who asked for them."""

    TITLE_TEXT = "Users"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="users.back"),
        Binding("a", "add", "Add user", id="users.add", tooltip="Ask to add a user (a second engineer confirms)."),
        Binding("r", "roles", "Roles", id="users.roles", tooltip="Ask to change the roles and rank of the account."),
        Binding("p", "reset", "Reset password", id="users.reset", tooltip="Ask to reset the account's password."),
        Binding("c", "confirm", "Confirm", id="users.confirm", tooltip="Confirm another engineer's account change."),
        Binding("x", "cancel_request", "Cancel request", id="users.cancel", tooltip="Refuse or withdraw a change."),
        Binding("l", "lock", "Lock user", id="users.lock"),
        Binding("u", "unlock", "Unlock user", id="users.unlock"),
        Binding("f5", "reload", "Refresh", id="users.reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._directory: _Directory | None = None

    def body(self) -> ComposeResult:
        with VerticalScroll(classes="engineer"):
            yield Static(plain(INTRO), classes="engineer--intro")
            yield Static(plain("Accounts"), classes="engineer--heading")
            yield DataTable(id="users", cursor_type="row", zebra_stripes=True)
            yield Static(plain("Account changes waiting for a second engineer"), classes="engineer--heading")
            yield DataTable(id="requests", cursor_type="row", zebra_stripes=True)
            yield Static(plain("None waiting."), id="no-requests", classes="engineer--muted")
            yield Static("", id="users-note", classes="engineer--note")

    def on_mount(self) -> None:
        users = self.query_one("#users", DataTable)
        for label, key in [
            ("User", "username"),
            ("Name", "name"),
            ("Roles", "roles"),
            ("Rank", "rank"),
            ("Sign-in", "sign_in"),
            ("Password", "password"),
        ]:
            users.add_column(plain_cell(label), key=key)
        requests = self.query_one("#requests", DataTable)
        for label, key in [
            ("No.", "id"),
            ("Change asked for", "change"),
            ("Asked by", "by"),
            ("Asked at", "at"),
            ("Who may confirm it", "who"),
        ]:
            requests.add_column(plain_cell(label), key=key)
        users.focus()
        self.reload()

    # ---- reading ------------------------------------------------------------------------------

    def reload(self) -> None:
        terminal, session = self.terminal, self.session

        def load() -> _Directory:
            accounts = terminal.accounts
            users = accounts.directory(session)
            pending = []
            for request in accounts.pending_requests(session):
                try:
                    accounts.confirmable(request.id, by=session)
                    refusal = None
                except RfrError as exc:
                    refusal = for_a_person(exc.diagnostics())
                pending.append(_Pending(request, refusal))
            return _Directory(users, pending, terminal.ws.now())

        self.run_engine(load, self._show, group="users-load")

    def _show(self, directory: _Directory) -> None:
        self._directory = directory
        me = self.session.username
        users = self.query_one("#users", DataTable)
        chosen = self.selected_user()
        users.clear()
        for user in directory.users:
            users.add_row(
                plain_cell(user.username + ("  (you)" if user.username == me else "")),
                plain_cell(user.display_name or "-"),
                plain_cell(roles_text(user.roles)),
                plain_cell(user.rank or "-"),
                plain_cell(sign_in_state(user, directory.now)),
                plain_cell(password_state(user)),
                key=user.username,
            )
        self._restore_cursor(users, chosen)
        requests = self.query_one("#requests", DataTable)
        chosen_request = self.selected_request()
        requests.clear()
        for item in directory.pending:
            request = item.request
            who = "✔ you may confirm it (c)" if item.refusal is None else f"✖ {sentence(item.refusal)}"
            by = f"you ({me})" if request.requested_by == me else request.requested_by
            requests.add_row(
                plain_cell(str(request.id)),
                plain_cell(request.describe()),
                plain_cell(by),
                plain_cell(when(request.requested_at)),
                plain_cell(who),
                key=str(request.id),
            )
        self._restore_cursor(requests, None if chosen_request is None else str(chosen_request.id))
        requests.display = bool(directory.pending)
        self.query_one("#no-requests", Static).display = not directory.pending

    @staticmethod
    def _restore_cursor(table: DataTable[Any], key: str | None) -> None:
        if key is None:
            return
        if key in [row.value for row in table.rows]:  # the row may have gone (a request confirmed)
            table.move_cursor(row=table.get_row_index(key))

    def selected_user(self) -> str | None:
        table = self.query_one("#users", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return None if key is None else str(key)

    def selected_request(self) -> AccountRequest | None:
        table = self.query_one("#requests", DataTable)
        if not table.row_count or self._directory is None:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((p.request for p in self._directory.pending if str(p.request.id) == key), None)

    def note(self, text: str) -> None:
        """What was just done, kept on screen (a notification goes too quickly for a password hand-over)."""
        self.query_one("#users-note", Static).update(plain(text))

    def _user_or_say(self) -> str | None:
        username = self.selected_user()
        if username is None:
            self.note("Choose an account in the list first (arrow keys).")
        return username

    def _request_or_say(self) -> AccountRequest | None:
        request = self.selected_request()
        if request is None:
            self.note("No account change is waiting for a second engineer.")
        return request

    def _done(self, text: str) -> Callable[[object], None]:
        def done(_result: object) -> None:
            self.note(text)
            self.reload()

        return done

    # ---- actions ------------------------------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self.reload()

    def action_add(self) -> None:
        self.app.push_screen(AccountRequestScreen(), self._asked)

    def action_roles(self) -> None:
        username = self._user_or_say()
        if username is None:
            return
        assert self._directory is not None  # a user is chosen only once the list is shown
        user = next(u for u in self._directory.users if u.username == username)
        self.app.push_screen(AccountRequestScreen(user), self._asked)

    def _asked(self, request: AccountRequest | None) -> None:
        if request is None:
            return
        if request.state == "confirmed":
            self.note(
                f"Done: {request.describe()}, at once: the terminal's second engineer, as nobody else could confirm. "
                + HAND_OVER
            )
        else:
            self.note(
                f"Asked to {request.describe()}: request {request.id} waits for a second engineer. Sign out "
                "(ctrl+q) so that another engineer can sign in here and confirm it."
            )
        self.reload()

    def action_reset(self) -> None:
        username = self._user_or_say()
        if username is None:
            return
        terminal, session = self.terminal, self.session

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            self.run_engine(
                lambda: terminal.accounts.request_reset(username, by=session),
                lambda request: self._asked(request),
                group="users-change",
            )

        self.app.push_screen(
            ConfirmDialog(
                f"Ask to reset the password of {username}? A second engineer confirms it and sets a temporary "
                f"password, which {username} must change at next sign-in.",
                yes="Ask for a reset",
                no="Do not",
                title="Reset a password",
            ),
            answered,
        )

    def action_confirm(self) -> None:
        request = self._request_or_say()
        if request is None:
            return
        terminal, session = self.terminal, self.session
        # The engine refuses first what this engineer may not confirm, so nobody sets a password in vain.
        self.run_engine(
            lambda: terminal.accounts.confirmable(request.id, by=session), self._ask_to_confirm, group="users-change"
        )

    def _ask_to_confirm(self, request: AccountRequest) -> None:
        terminal, session = self.terminal, self.session

        def confirm(password: str | None) -> None:
            self.run_engine(
                lambda: terminal.accounts.confirm(request.id, by=session, password=password),
                self._done(
                    f"Confirmed request {request.id}: {request.describe()}."
                    + (f" {HAND_OVER}" if password is not None else "")
                ),
                group="users-change",
            )

        if request.kind in (RequestKind.ADD, RequestKind.RESET):

            def typed(password: str | None) -> None:
                if password is not None:
                    confirm(password)

            self.app.push_screen(FirstPasswordDialog(request), typed)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                confirm(None)

        self.app.push_screen(
            ConfirmDialog(
                f"Confirm request {request.id}, asked for by {request.requested_by}: {request.describe()}?",
                yes="Confirm",
                no="Do not",
                title="Confirm an account change",
            ),
            answered,
        )

    def action_cancel_request(self) -> None:
        request = self._request_or_say()
        if request is None:
            return
        terminal, session = self.terminal, self.session

        def reason_given(reason: str | None) -> None:
            if reason is None:
                return
            self.run_engine(
                lambda: terminal.accounts.cancel(request.id, by=session, reason=reason),
                self._done(f"Cancelled request {request.id}: {request.describe()}."),
                group="users-change",
            )

        self.app.push_screen(
            ReasonDialog(
                f"Cancel request {request.id} ({request.describe()}), asked for by {request.requested_by}? "
                "Why? The reason is recorded.",
                title="Cancel an account change",
                action="Cancel the request",
            ),
            reason_given,
        )

    def action_lock(self) -> None:
        username = self._user_or_say()
        if username is None:
            return
        terminal, session = self.terminal, self.session

        def reason_given(reason: str | None) -> None:
            if reason is None:
                return
            self.run_engine(
                lambda: terminal.accounts.lock_user(username, by=session, reason=reason),
                self._done(f"Locked {username}: they cannot sign in until an engineer unlocks the account."),
                group="users-change",
            )

        self.app.push_screen(
            ReasonDialog(
                f"Lock the account of {username}? They cannot sign in until an engineer unlocks it, and any session "
                "of theirs ends now. Why? The reason is recorded.",
                title="Lock an account",
                action="Lock the account",
            ),
            reason_given,
        )

    def action_unlock(self) -> None:
        username = self._user_or_say()
        if username is None:
            return
        terminal, session = self.terminal, self.session

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_engine(
                    lambda: terminal.accounts.unlock_user(username, by=session),
                    self._done(f"Unlocked {username}: they can sign in again."),
                    group="users-change",
                )

        self.app.push_screen(
            ConfirmDialog(
                f"Unlock the account of {username}? Their failed sign-ins are forgotten and they can sign in again.",
                yes="Unlock",
                no="Keep it locked",
                title="Unlock an account",
            ),
            answered,
        )


class AccountRequestScreen(RfrScreen):
    """Ask for a new account (``user`` None) or for new roles and rank of ``user``; a second engineer confirms."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="account.back"),
        Binding("ctrl+s", "submit", "Ask for it", id="account.submit"),
    ]

    def __init__(self, user: User | None = None) -> None:
        super().__init__()
        self._user = user
        self._alone = False  # the engine says this account is added at once (the terminal's second engineer)

    def title_text(self) -> str:
        if self._user is None:
            return "Users: ask to add a user"
        return f"Users: ask to change the roles of {self._user.username}"

    def body(self) -> ComposeResult:
        user = self._user
        ranks = self.terminal.policy.rank_names()
        with VerticalScroll(classes="engineer engineer--form"):
            if user is None:
                yield Static(
                    plain(
                        "A second engineer confirms the new account and sets its first password, so you never know "
                        "it. Until then the account does not exist."
                    ),
                    classes="engineer--intro",
                )
                yield Static(plain("User name (lowercase letters, digits, '.', '_' or '-')"), classes="field--label")
                yield Input(id="username", placeholder="for example: jsmith")
                yield Static(plain("Name shown on screen and in reports"), classes="field--label")
                yield Input(id="display-name", placeholder="for example: PC 4121 Jane Smith")
            else:
                yield Static(
                    plain(
                        f"{user.username} ({user.display_name or 'no name given'}) holds: {roles_text(user.roles)}; "
                        f"rank {user.rank or 'none'}. The new roles and rank replace these when a second engineer "
                        "confirms."
                    ),
                    classes="engineer--intro",
                )
            yield Static(plain("Roles (arrow keys, then space or Enter to tick or untick)"), classes="field--label")
            yield TickList[Role](
                [(role, role.label) for role in Role], user.roles if user is not None else (), id="roles"
            )
            yield Static(plain("Rank or staff grade (approvers need one)"), classes="field--label")
            yield Select[str](
                [(plain_cell(rank), rank) for rank in ranks],  # Text: type-to-search reads it (not Content),
                prompt="No rank",
                allow_blank=True,
                value=user.rank if user is not None and user.rank in ranks else Select.NULL,
                id="rank",
            )
            with Vertical(id="second-engineer"):
                yield Static(
                    plain(
                        "This will be the terminal's second engineer: nobody else could confirm it, so it is added at "
                        "once. Set the first password. " + HAND_OVER
                    ),
                    classes="engineer--warning",
                )
                yield Input(id="first", password=True, placeholder="First password")
                yield Input(id="repeat", password=True, placeholder="First password again")
            yield Static("", id="account-problem", classes="form--problem")
            with Horizontal(classes="engineer--buttons"):
                yield Button(plain("Ask for it (ctrl+s)"), id="submit", variant="primary")
                yield Button(plain("Back (Esc)"), id="back")

    def on_mount(self) -> None:
        self.query_one("#second-engineer").display = False
        (self.query_one("#username", Input) if self._user is None else self.query_one("#roles")).focus()

    def problem(self, text: str) -> None:
        self.query_one("#account-problem", Static).update(plain(text))

    def roles(self) -> list[str]:
        roles: TickList[Role] = self.query_one("#roles", TickList)
        return [role.value for role in roles.ticked]

    def on_tick_list_changed(self, event: TickList.Changed) -> None:
        event.stop()
        if self._user is not None:
            return
        roles = self.roles()
        if not roles:
            self._show_alone(False)
            return
        terminal, session = self.terminal, self.session
        self.run_engine(
            lambda: terminal.accounts.adds_at_once(roles, by=session),
            self._show_alone,
            group="account-alone",
        )

    def _show_alone(self, alone: bool) -> None:
        self._alone = alone
        self.query_one("#second-engineer").display = alone

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "submit":
            self.action_submit()
        else:
            self.action_back()

    def action_back(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        terminal, session = self.terminal, self.session
        roles = self.roles()
        rank_value = self.query_one("#rank", Select).value
        rank = rank_value if isinstance(rank_value, str) else None
        work: Callable[[], AccountRequest]
        if self._user is not None:
            username = self._user.username
            work = lambda: terminal.accounts.request_roles(username, roles, by=session, rank=rank)  # noqa: E731
        else:
            username = self.query_one("#username", Input).value.strip()
            display_name = self.query_one("#display-name", Input).value.strip()
            password: str | None = None
            if self._alone:
                first, repeat = self.query_one("#first", Input), self.query_one("#repeat", Input)
                typed, again = first.value, repeat.value
                first.value = repeat.value = ""
                if not typed:
                    self.problem("Set the first password of the terminal's second engineer, twice.")
                    first.focus()
                    return
                if typed != again:
                    self.problem("The two passwords differ: type them again.")
                    first.focus()
                    return
                password = typed

            def work() -> AccountRequest:
                return terminal.accounts.request_add(
                    username, roles, by=session, rank=rank, display_name=display_name, password=password
                )

        self.problem("")

        def done(request: AccountRequest) -> None:
            self.dismiss(request)

        self.run_engine(work, done, group="account-submit", failed=lambda error: self.problem(_said(error)))


def _said(error: BaseException) -> str:
    if isinstance(error, RfrError):
        return sentence(for_a_person(error.diagnostics()))
    return "This could not be done: try again, and tell an engineer if it happens again."


class FirstPasswordDialog(NewSecretDialog):
    """The confirming engineer sets the first (temporary) password of a new account or a reset one."""

    def __init__(self, request: AccountRequest) -> None:
        what = "a new account" if request.kind is RequestKind.ADD else "a password reset"
        super().__init__(
            f"Confirm {what}: set the first password",
            f"Request {request.id}, asked for by {request.requested_by}: {request.describe()}. You set the "
            f"first password of {request.username}. {HAND_OVER}",
            noun="first password",
        )
