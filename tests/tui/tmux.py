"""Run a command in a real terminal (a detached tmux session) for smoke tests: type keys, read the screen.

Each session has its own tmux server on a socket in a temporary folder, started without any
tmux configuration, so a test never touches a person's tmux and ends only the server it started.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import pytest

SESSION = "rfr-test"


def require_tmux() -> str:
    """The tmux executable; fails the test (never skips) when it is missing."""
    found = shutil.which("tmux")
    if found is None:
        pytest.fail("tmux is not installed: run `make test`, which installs what the tests need")
    return found


class TmuxSession:
    """``command`` running in a ``size`` (columns, rows) terminal; use as a context manager."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        size: tuple[int, int] = (120, 40),
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self._tmux = require_tmux()
        self._command = list(command)
        self._size = size
        self._env = dict(os.environ if env is None else env)
        for pinned in ("COLUMNS", "LINES"):  # a pinned size (pytest-xdist's workers have one) would win over tmux's
            self._env.pop(pinned, None)
        self._cwd = cwd
        self._folder = tempfile.TemporaryDirectory(prefix="rfr-tmux-")
        self._socket = str(Path(self._folder.name) / "tmux.sock")
        self._status = Path(self._folder.name) / "status"
        self._started = False

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self._tmux, "-S", self._socket, "-f", os.devnull, *args],
            env=self._env,
            cwd=self._cwd,
            capture_output=True,
            text=True,
            timeout=30,
            check=check,
        )

    def start(self) -> TmuxSession:
        columns, rows = self._size
        # One tmux call: start the server, keep a pane whose command has ended (so its last screen
        # can be read), then open the session at a fixed size. The sh around the command records
        # its exit status (written whole, then renamed, so it is never read half-written).
        self._run(
            "start-server",
            ";",
            "set-option",
            "-g",
            "remain-on-exit",
            "on",
            ";",
            "new-session",
            "-d",
            "-s",
            SESSION,
            "-x",
            str(columns),
            "-y",
            str(rows),
            "--",
            "sh",
            "-c",
            '"$@"; echo $? > "$0.part" && mv "$0.part" "$0"',
            str(self._status),
            *self._command,
        )
        self._started = True
        return self

    def send_keys(self, *keys: str) -> None:
        """Press keys by tmux's names (``Enter``, ``C-q``, ``Escape``, ``F1``)."""
        self._run("send-keys", "-t", SESSION, *keys)

    def type_text(self, text: str) -> None:
        """Type ``text`` literally (no key names)."""
        self._run("send-keys", "-t", SESSION, "-l", text)

    def screen(self) -> str:
        """The screen as text, one line per row."""
        return self._run("capture-pane", "-p", "-t", SESSION).stdout

    def size(self) -> tuple[int, int]:
        shown = self._run("display-message", "-p", "-t", SESSION, "#{pane_width} #{pane_height}").stdout.split()
        return int(shown[0]), int(shown[1])

    def exit_status(self) -> int | None:
        """The command's exit status once it has ended, else None.

        A small ``sh`` around the command writes it to a file: tmux 3.3 sometimes marks a pane
        dead without ever learning its status.
        """
        try:
            return int(self._status.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        """Wait until ``text`` is on the screen; return the screen, or fail showing what was there.

        tmux drops the spaces at the end of each line, so ``text`` should not end with one.
        """
        deadline = time.monotonic() + timeout
        shown = ""
        while time.monotonic() < deadline:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.05)
        pytest.fail(f"{text!r} did not appear on the screen within {timeout} s; the screen was:\n{shown}")

    def wait_for_exit(self, timeout: float = 10.0) -> int:
        """Wait until the command has ended; return its exit status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.exit_status()
            if status is not None:
                return status
            time.sleep(0.05)
        pytest.fail(f"the command did not end within {timeout} s; the screen was:\n{self.screen()}")

    def close(self) -> None:
        if self._started:
            self._run("kill-server", check=False)
            self._started = False
        self._folder.cleanup()

    def __enter__(self) -> TmuxSession:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
