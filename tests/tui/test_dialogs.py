"""The dialogs: error, confirm, password again, a new secret and help, driven by key as a person would."""

from __future__ import annotations

from typing import Any

import pytest
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static

from engine.errors import FormError, PolicyError
from rfr_tui.dialogs.confirm import ConfirmDialog
from rfr_tui.dialogs.error import UNEXPECTED, ErrorDialog
from rfr_tui.dialogs.help import HelpDialog, KeyHelp
from rfr_tui.dialogs.new_secret import NewSecretDialog
from rfr_tui.dialogs.password import EMPTY, PasswordDialog
from rfr_tui.lockdown import LockedDownApp
from tests.tui.support import run

HOSTILE = "[@click=app.quit]x[/]"


class Host(LockedDownApp[None]):
    """Opens one dialog and records what it returns."""

    def __init__(self, dialog: ModalScreen[Any]) -> None:
        super().__init__()
        self.dialog = dialog
        self.results: list[Any] = []
        self.signed_out = 0
        self.in_front = ""
        self.looked = ""

    def on_mount(self) -> None:
        self.push_screen(self.dialog, self.results.append)

    def sign_out(self) -> None:
        self.signed_out += 1


async def drive(dialog: ModalScreen[Any], *keys: str, look: str = "") -> tuple[list[Any], Host, str]:
    """Press ``keys`` in the dialog; return what it returned, the app, and the screen before the keys.

    ``app.in_front`` says which screen was in front after the keys; ``app.looked`` is the text of
    the widget ``look`` selects in the dialog, before the keys.
    """
    app = Host(dialog)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        shown = app.export_screenshot()
        if look:
            app.looked = text_of(dialog, look)
        for key in keys:
            await pilot.press(key)
        await pilot.pause()
        app.in_front = type(app.screen).__name__
        return app.results, app, shown


def text_of(dialog: ModalScreen[Any], selector: str) -> str:
    return str(dialog.query_one(selector, Static).render())


DIALOGS = {
    "error": lambda: ErrorDialog("The photograph could not be read: choose a JPEG or PNG file."),
    "confirm": lambda: ConfirmDialog("Withdraw case RFR-2024-0017?"),
    "password": lambda: PasswordDialog("Approve case RFR-2024-0017."),
    "help": lambda: HelpDialog([KeyHelp("^q", "Sign out", "Everywhere")]),
    "new_secret": lambda: NewSecretDialog(
        "A passphrase for the Match Report", "Pass it on separately.", noun="passphrase"
    ),
}


@pytest.mark.parametrize("name", DIALOGS)
def test_every_binding_has_an_id_and_a_description_shown_in_the_dialogs_footer(name: str) -> None:
    dialog = DIALOGS[name]()
    bindings = [b for b in dialog.BINDINGS if isinstance(b, Binding)]
    assert bindings and len(bindings) == len(dialog.BINDINGS)
    for binding in bindings:
        assert binding.id and binding.id.startswith(f"{name}.")
        assert binding.description and binding.show

    async def body() -> bool:
        app = Host(dialog)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            return bool(dialog.query(Footer))

    assert run(body)


# ---- error ---------------------------------------------------------------------------------------


def test_an_rfr_error_shows_its_diagnostics_and_escape_closes() -> None:
    error = FormError("Reason for the search is empty: write why this search is necessary and proportionate.")

    async def body() -> tuple[list[Any], str, bool]:
        dialog = ErrorDialog.from_error(error)
        results, app, _ = await drive(dialog, "escape")
        return results, dialog.message, app.in_front == "ErrorDialog"

    results, message, still_open = run(body)
    assert message == error.diagnostics()
    assert results == [None]
    assert not still_open


def test_an_unexpected_error_shows_a_plain_sentence_never_its_text_or_a_traceback() -> None:
    try:
        raise KeyError("SELECT key FROM secrets WHERE path='/etc/rfr/workspace.key'")
    except KeyError as error:
        dialog = ErrorDialog.from_error(error)

    async def body() -> str:
        _, _, shown = await drive(dialog)
        return shown

    shown = run(body)
    assert dialog.message == UNEXPECTED
    assert "Something" in shown and "unexpected" in shown
    for leak in ("SELECT", "secrets", "workspace.key", "Traceback", "KeyError"):
        assert leak not in shown


def test_every_problem_of_a_policy_error_is_listed() -> None:
    error = PolicyError("The policy has 2 problems.", ("retention.days: must be positive", "roles: none given"))
    dialog = ErrorDialog.from_error(error)

    async def body() -> str:
        _, app, _ = await drive(dialog, look="#error-problems")
        return app.looked

    assert run(body) == "• retention.days: must be positive\n• roles: none given"


def test_markup_in_an_error_message_is_shown_as_written() -> None:
    dialog = ErrorDialog(f"The file {HOSTILE}.jpg is not a photograph: choose a JPEG or PNG file.")

    async def body() -> tuple[str, int]:
        _, app, _ = await drive(dialog, "tab", look="#error-message")
        return app.looked, app.signed_out

    message, signed_out = run(body)
    assert HOSTILE in message
    assert signed_out == 0


# ---- confirm -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "answer"),
    [(("y",), True), (("n",), False), (("escape",), False), (("enter",), False), (("tab", "enter"), True)],
    ids=["y", "n", "escape", "enter on the focused No", "tab to Yes then enter"],
)
def test_confirm_answers_by_key_and_no_is_the_default(keys: tuple[str, ...], answer: bool) -> None:
    async def body() -> list[Any]:
        results, _, _ = await drive(ConfirmDialog("Delete the library Custody images 2019?", yes="Delete"), *keys)
        return results

    assert run(body) == [answer]


def test_confirm_shows_the_question_as_written() -> None:
    dialog = ConfirmDialog(f"Withdraw case {HOSTILE}?")

    async def body() -> str:
        _, app, _ = await drive(dialog, look="#confirm-question")
        return app.looked

    assert run(body) == f"Withdraw case {HOSTILE}?"


# ---- password again ---------------------------------------------------------------------------


def test_the_password_is_returned_to_the_caller_and_kept_nowhere() -> None:
    dialog = PasswordDialog("Approve case RFR-2024-0017 as Inspector Jones.")

    async def body() -> tuple[list[Any], bool, str, str, str]:
        app = Host(dialog)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            field = dialog.query_one("#password", Input)
            await pilot.press(*"c0rrect-h0rse")
            await pilot.press("ctrl+a", "ctrl+c")  # select all and copy: goes nowhere
            await pilot.pause()
            typed_screen = app.export_screenshot()
            await pilot.press("end", "enter")
            await pilot.pause()
            return app.results, field.password, field.value, app.clipboard, typed_screen

    results, is_password_field, left_in_field, clipboard, typed_screen = run(body)
    assert results == ["c0rrect-h0rse"]
    assert is_password_field
    assert left_in_field == ""
    assert clipboard == ""
    assert "c0rrect" not in typed_screen


def test_an_empty_password_asks_again_and_escape_cancels() -> None:
    dialog = PasswordDialog("Sign off the peer review of case RFR-2024-0021.")

    async def body() -> tuple[list[Any], str, list[Any]]:
        app = Host(dialog)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
            after_empty = list(app.results)
            problem = text_of(dialog, "#password-problem")
            await pilot.press(*"half-typed", "escape")
            await pilot.pause()
            return after_empty, problem, app.results

    after_empty, problem, results = run(body)
    assert after_empty == []
    assert problem == EMPTY
    assert results == [None]


def test_ctrl_q_in_a_dialog_still_signs_out() -> None:
    async def body() -> int:
        _, app, _ = await drive(PasswordDialog("Approve case RFR-2024-0017."), "ctrl+q")
        return app.signed_out

    assert run(body) == 1


# ---- help --------------------------------------------------------------------------------------


def test_help_lists_the_keys_by_where_they_work_and_marks_those_not_available() -> None:
    dialog = HelpDialog(
        [
            KeyHelp("^q", "Sign out", "Everywhere"),
            KeyHelp("a", "Approve", "This screen", enabled=False),
            KeyHelp("enter", "Open the case", "The selected item"),
        ]
    )

    async def body() -> tuple[list[list[str]], list[Any]]:
        app = Host(dialog)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            table = dialog.query_one("#help-keys")
            rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]  # type: ignore[attr-defined]
            await pilot.press("f1")
            await pilot.pause()
            return rows, app.results

    rows, results = run(body)
    assert rows == [
        ["", "This screen"],
        ["a", "Approve (not available now)"],
        ["", "Everywhere"],
        ["^q", "Sign out"],
        ["", "The selected item"],
        ["enter", "Open the case"],
    ]
    assert results == [None]


def test_the_footer_of_a_dialog_shows_its_keys() -> None:
    async def body() -> str:
        _, _, shown = await drive(ConfirmDialog("Lock the account of j.smith?"))
        return shown

    shown = run(body)
    assert "Yes" in shown and "No" in shown


# ---- a new secret, typed twice ---------------------------------------------------------------------


def test_a_new_passphrase_is_typed_twice_checked_by_the_engine_and_kept_nowhere(tmp_path: Any) -> None:
    from engine.casework import check_report_passphrase

    dialog = NewSecretDialog(
        "A passphrase for the Match Report of case RFR-000001",
        "The file is encrypted with this passphrase. Give it to the person who will open the file separately.",
        noun="passphrase",
        check=check_report_passphrase,
    )

    async def body() -> tuple[list[str], list[Any], str]:
        app = Host(dialog)
        problems = []
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            for first, again in (("", ""), ("too short", "too short"), ("a long passphrase", "a long passphrasf")):
                await pilot.press(*first, "enter", *again, "enter")  # Enter moves to the second field, then confirms
                await pilot.pause()
                problems.append(text_of(dialog, "#new-secret-problem"))
            await pilot.press(*"given by telephone", "enter", *"given by telephone")
            await pilot.pause()
            shown = app.export_screenshot()
            (tmp_path / "new-secret.svg").write_text(shown)
            await pilot.press("enter")
            await pilot.pause()
            return problems, app.results, shown

    problems, results, shown = run(body)
    assert problems[0] == "Type the passphrase twice, or press Escape to cancel."
    assert problems[1].startswith("The Match Report passphrase is too short: use at least 12 characters")
    assert problems[2] == "The two passphrases differ: type them again."
    assert results == ["given by telephone"]
    assert "telephone" not in shown and "long passphrase" not in shown
