"""The engine's messages on a screen: its command-line hints taken out, or said as the application's own way.

Each row is a message the engine gives today (the services a screen calls), and what a person at the
screen reads. What was refused and why stays the engine's; only the shell advice changes.
"""

from __future__ import annotations

import pytest

from engine.errors import CaseError, RfrError, UserError
from rfr_tui.dialogs.error import UNEXPECTED, ErrorDialog
from rfr_tui.wording import for_a_person, said

SAID = [
    (
        "a reason option in brackets",
        "cancelling an account change needs a reason (--reason TEXT)",
        "cancelling an account change needs a reason",
    ),
    (
        "a reason option mid-sentence",
        "deleting a library needs the reason (--reason TEXT); it is recorded",
        "deleting a library needs the reason; it is recorded",
    ),
    (
        "a clause that is only an option",
        "a substantive library has no authorisation reference or expiry: use --kind temporary",
        "a substantive library has no authorisation reference or expiry",
    ),
    (
        "a clause that is only what to pass",
        "adjudication refused: a Viable Match needs a Match Report covering factors (i) to (v): pass --report FILE",
        "adjudication refused: a Viable Match needs a Match Report covering factors (i) to (v)",
    ),
    (
        "an option after 'with'",
        "submission form: face: the Probe Image shows 2 faces: choose the one to search with --face N (1 to 2, "
        "numbered left to right)",
        "submission form: face: the Probe Image shows 2 faces: choose the one to search with (1 to 2, numbered left "
        "to right)",
    ),
    (
        "a command with a screen behind it, in brackets",
        "approval refused: case RFR-000001 is flagged technical_advice: the advice (FRT team) must be recorded on "
        "the case first (rfr case advice)",
        "approval refused: case RFR-000001 is flagged technical_advice: the advice (FRT team) must be recorded on "
        "the case first (whoever submitted the case records it on the case screen, key v)",
    ),
    (
        "a command with a screen behind it, as a clause",
        "no signed head covers the log after seq 4: run 'rfr audit verify'; nothing was exported",
        "no signed head covers the log after seq 4: verify the audit log, key v on the home screen; nothing was "
        "exported",
    ),
    (
        "a command and its option as a clause, with a screen behind it",
        "index of library 'custody': search expansion 64, by default: run check-index --tune",
        "index of library 'custody': search expansion 64, by default: measure and tune it on the Index health "
        "screen, key t",
    ),
    (
        "what to give stays, its option goes",
        "close refused: give the reason (--reason TEXT); it is recorded on the case",
        "close refused: give the reason; it is recorded on the case",
    ),
    (
        "another person's account, one's own password",
        "unlocking an account refused: nobody changes their own account this way (change your own password with "
        "'rfr user passwd')",
        "unlocking an account refused: nobody changes their own account this way (change your own password from "
        "the home screen, key w)",
    ),
    (
        "a build step: an engineer's",
        "calibration x: content hash does not match: the file was changed by hand; re-run make evaluate "
        "(scripts/calibrate.py --install)",
        "calibration x: content hash does not match: the file was changed by hand; tell an engineer",
    ),
    (
        "a command with no screen behind it stays: the engineer who reads it types it",
        "this terminal trusts no central unit yet: an engineer installs the central unit's root first "
        "('rfr media trust ROOT.json --as ENGINEER')",
        "this terminal trusts no central unit yet: an engineer installs the central unit's root first "
        "('rfr media trust ROOT.json --as ENGINEER')",
    ),
    (
        "no hint: unchanged",
        "account 'alice' is locked; ask an engineer to unlock it",
        "account 'alice' is locked; ask an engineer to unlock it",
    ),
    (
        "brackets that are not a hint: unchanged",
        "adjudication refused: too coarse to judge a face: use a graphics terminal (Kitty or Sixel; see the README)",
        "adjudication refused: too coarse to judge a face: use a graphics terminal (Kitty or Sixel; see the README)",
    ),
    (
        "a message over several lines: one line",
        "wrong username\n   or password",
        "wrong username or password",
    ),
]


@pytest.mark.parametrize(("message", "shown"), [row[1:] for row in SAID], ids=[row[0] for row in SAID])
def test_engine_messages_read_as_sentences_for_a_person(message: str, shown: str) -> None:
    assert for_a_person(message) == shown


def test_only_the_engines_own_errors_are_shown_and_the_rest_say_nothing_of_their_insides() -> None:
    assert said(UserError("cancelling an account change needs a reason (--reason TEXT)"), "x") == (
        "cancelling an account change needs a reason"
    )
    assert said(KeyError("SELECT secret FROM users"), "Not changed: try again.") == "Not changed: try again."
    assert issubclass(UserError, RfrError)


def test_the_error_dialog_shows_the_sentence_for_a_person() -> None:
    dialog = ErrorDialog.from_error(CaseError("close refused: give the reason (--reason TEXT); it is recorded"))
    assert dialog.message == "close refused: give the reason; it is recorded"
    assert ErrorDialog.from_error(RuntimeError("/var/lib/rfr: disk I/O error")).message == UNEXPECTED
