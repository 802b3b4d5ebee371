"""The real console script in a real terminal: ``rfr`` with no arguments, keystrokes in, the screen read back.

Starts the installed ``rfr`` (``.venv/bin/rfr``, no arguments) in tmux (tests/tui/tmux.py) on a small
terminal made in tmp as a terminal is made (tests/terminals.py) and configured by a ``terminal.yaml``
named in ``RFR_CONFIG``, as a deployment is. The application opens it with its key files and loads
the real face engine from ``models/`` in the background. A person signs in by typing, sees the home
screen for their role and the status bar (who, the terminal, the device the face engine uses, the
library sizes, the policy version), and ``ctrl+q`` signs them out to the sign-in screen; the audit
log records both.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest
import yaml

from engine import audit
from engine.policy import load_default_policy
from tests.terminals import PASSWORD, make_terminal, provision, reopen
from tests.tui.tmux import TmuxSession

RFR = Path(sys.executable).parent / "rfr"
NAME = "SMOKE-TEST-01"
# A person's next key after Tab: a key that moves the focus acts once it has bubbled up from the
# field, so keys injected right behind it by tmux would still land in the name field.
KEY_PAUSE = 0.3
# Settings that would override the configuration file, and secrets: not passed to the application.
SIGNING = ("user.sign_in", "user.sign_out")
_DROP = ("RFR_WORKSPACE", "RFR_KEY_FILE", "RFR_AUDIT_KEY_FILE", "RFR_TERMINAL_NAME", "RFR_POLICY", "RFR_PASSWORD")


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """A terminal with an RFR User and an empty library, and its configuration file."""
    terminal = make_terminal(tmp_path / "ws")
    try:
        sessions = provision(terminal, {"alice": (["rfr_user"], "Constable")})
        terminal.libraries.create(sessions["eng1"], "custody", "substantive")
        for session in sessions.values():
            terminal.sign_out(session)
        settings = terminal.config
    finally:
        terminal.close()
    config = tmp_path / "terminal.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "terminal": NAME,
                "workspace": str(settings.workspace),
                "workspace_key_file": str(settings.key_file),
                "audit_key_file": str(settings.audit_key_file),
            }
        ),
        encoding="utf-8",
    )
    return config


def wait_for_pattern(term: TmuxSession, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    shown = ""
    while time.monotonic() < deadline:
        shown = term.screen()
        if re.search(pattern, shown):
            return shown
        time.sleep(0.05)
    pytest.fail(f"{pattern!r} did not appear on the screen within {timeout} s; the screen was:\n{shown}")


def test_rfr_signs_in_by_keystrokes_shows_home_and_status_bar_and_ctrl_q_signs_out(
    config_file: Path, tmp_path: Path
) -> None:
    if not RFR.is_file():
        pytest.fail(f"the console script {RFR} is missing: run `make test`, which installs the project")
    env = {k: v for k, v in os.environ.items() if k not in _DROP and not k.startswith("TEXTUAL")}
    env["RFR_CONFIG"] = str(config_file)
    with TmuxSession([str(RFR)], size=(120, 40), env=env) as term:
        first = term.wait_for("User name", timeout=20)
        assert "Sign in" in first
        assert f"Terminal: {NAME}" in first

        term.type_text("alice")
        term.wait_for("alice")
        term.send_keys("Tab")
        time.sleep(KEY_PAUSE)
        term.type_text(PASSWORD)
        term.wait_for("•" * len(PASSWORD))
        term.send_keys("Enter")

        home = term.wait_for("Home: alice (RFR User)", timeout=20)
        assert "My cases" in home
        assert "New submission" in home
        assert "Approvals" not in home  # an RFR User's sections only
        # The status bar, once the real face engine has loaded in the background (it refreshes every 5 s).
        status = wait_for_pattern(term, r"Device: (CPU|GPU|NPU)", timeout=30)
        line = next(row for row in status.splitlines() if "Signed in:" in row)
        assert "Signed in: alice (RFR User)" in line
        assert f"Terminal: {NAME}" in line
        assert "Libraries: custody 0" in line
        assert f"Policy {load_default_policy().version}" in line

        term.send_keys("C-q")
        back = term.wait_for("User name")
        assert "Home:" not in back
        assert "Signed in:" not in back
        # The face engine has loaded (the status bar said its device): the sign-in screen no longer says it loads.
        assert "still loading" not in back and "is opening" not in back
        assert term.exit_status() is None  # signed out, not quit to a shell

    with reopen(tmp_path / "ws", sweep=False) as terminal, terminal.ws.reading() as conn:
        alice = [e.action for e in audit.events(conn) if e.actor == "alice" and e.action in SIGNING]
    # provision()'s session, ended by the fixture; then the application's, typed in and ended by ctrl+q
    assert alice == ["user.sign_in", "user.sign_out", "user.sign_in", "user.sign_out"]
