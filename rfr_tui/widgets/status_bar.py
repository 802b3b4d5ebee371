"""The status bar every signed-in screen shows: who is signed in, the terminal, the inference device actually
used, library sizes, and the policy version (issue 15)."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

from engine.terminal import TerminalStatus
from rfr_tui.text import plain

REFRESH_SECONDS = 5.0


def describe(status: TerminalStatus) -> str:
    """One line: every part named in words, so nothing depends on colour."""
    who = f"{status.user} ({', '.join(status.roles)})" if status.user else "nobody signed in"
    libraries = ", ".join(f"{lib.name} {lib.images:,}" for lib in status.libraries) or "no libraries"
    device = status.device if status.face_engine == "ready" else f"face engine {status.face_engine}"
    return (
        f"Signed in: {who}  |  Terminal: {status.terminal}  |  Device: {device}  |  "
        f"Libraries: {libraries}  |  Policy {status.policy_version}"
    )


class StatusBar(Static):
    """Refreshed in the background every few seconds (the status reads the database)."""

    DEFAULT_CSS = """
    StatusBar {
        dock: bottom;
        margin-bottom: 1;  /* above the footer, which is docked at the very bottom */
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $foreground;
    }
    """

    def on_mount(self) -> None:
        self.refresh_status()
        self.set_interval(REFRESH_SECONDS, self.refresh_status, name="status-bar")

    def refresh_status(self) -> None:
        app: Any = self.app
        terminal = getattr(app, "terminal_or_none", None)
        if terminal is None:
            self.update(plain("Terminal opening..."))
            return
        session = getattr(app, "session", None)
        self.run_worker(
            lambda: terminal.status(session), thread=True, exclusive=True, group="status-bar", exit_on_error=False
        )

    def on_worker_state_changed(self, event: Any) -> None:
        worker = event.worker
        if worker.group != "status-bar" or not worker.is_finished:
            return
        event.stop()
        if worker.error is None and isinstance(worker.result, TerminalStatus):
            self.update(plain(describe(worker.result)))
