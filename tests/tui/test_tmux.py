"""The tmux helper on a trivial command: a fixed-size real terminal, keys in, screen out."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.tui.tmux import TmuxSession

ECHO = """
import shutil, sys
print("size", *shutil.get_terminal_size(), "tty", sys.stdin.isatty(), flush=True)
line = input("name? ")
print("hello", line[::-1], flush=True)
sys.exit(3)
"""


def test_a_command_runs_in_a_real_terminal_of_the_asked_size_and_reads_typed_keys() -> None:
    with TmuxSession([sys.executable, "-c", ECHO], size=(90, 25)) as term:
        assert term.size() == (90, 25)
        first = term.wait_for("name?")
        assert "size 90 25 tty True" in first
        assert term.exit_status() is None
        term.type_text("custody")
        term.send_keys("Enter")
        term.wait_for("hello ydotsuc")
        assert term.wait_for_exit() == 3


def test_the_server_is_gone_after_the_session() -> None:
    term = TmuxSession([sys.executable, "-c", "import time; time.sleep(60)"])
    with term:
        socket = Path(term._socket)
        assert socket.exists()
    assert not socket.parent.exists()


def test_a_missing_tmux_fails_the_test_saying_what_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match=r"tmux is not installed: run `make test`"):
        TmuxSession(["true"])
