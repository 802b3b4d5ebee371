"""System status: what an engineer checks on a terminal (software, keys, device, models, policy, disk).

Everything comes from ``Terminal.system_status``, which records that an engineer looked. The
model files are listed with the sha256 pinned in the models' manifest; the face engine checks
each file against it when it loads, and refuses a file that differs.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from engine.terminal import SystemStatus
from rfr_tui.screens.base import RfrScreen
from rfr_tui.text import plain, plain_cell


def size_text(count: int) -> str:
    """Bytes in words people read (decimal units, as disks are sold)."""
    if count < 0:
        return "unknown"
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{count:,} bytes"


def disk_text(free: int, total: int) -> str:
    if free < 0 or total <= 0:
        return "unknown: the workspace's disk could not be read"
    return f"{size_text(free)} free of {size_text(total)} ({free / total:.0%} free)"


def face_engine_text(status: SystemStatus) -> str:
    if status.face_engine == "ready":
        return "✔ ready: its model files matched their pinned hashes when it loaded"
    if status.face_engine == "loading":
        return "◆ loading (it loads in the background when the terminal opens)"
    return f"✖ {status.face_engine}"


def settings(status: SystemStatus) -> list[tuple[str, str]]:
    """(setting, value) rows, every value in words."""
    return [
        ("Software", status.software),
        ("Terminal", status.terminal),
        ("Workspace", status.workspace),
        ("Workspace key held by", status.workspace_key),
        ("Audit signing key fingerprint", status.audit_key_id or "none recorded"),
        ("Inference device configured", status.device_configured),
        ("Inference device used", status.device_used),
        ("Face engine", face_engine_text(status)),
        ("Models built from", status.model_source),
        ("Policy version", status.policy_version),
        ("Policy sha256", status.policy_sha256),
        ("Index profile", status.index_profile),
        ("Disk (workspace)", disk_text(status.disk_free_bytes, status.disk_total_bytes)),
    ]


class SystemScreen(RfrScreen):
    """The terminal's software, keys, device, model files and their hashes, policy, index profile and disk."""

    TITLE_TEXT = "System status"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="system.back"),
        Binding("f5", "reload", "Refresh", id="system.reload"),
    ]

    def body(self) -> ComposeResult:
        with VerticalScroll(classes="engineer"):
            yield Static(plain("This terminal"), classes="engineer--heading")
            yield Static(plain("Reading the system status..."), id="system-reading", classes="engineer--muted")
            yield DataTable(id="system", cursor_type="row", zebra_stripes=True)
            yield Static(plain("Model files and their pinned sha256"), classes="engineer--heading")
            yield DataTable(id="models", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one("#system", DataTable)
        table.add_column(plain_cell("Setting"), key="setting")
        table.add_column(plain_cell("Value"), key="value")
        models = self.query_one("#models", DataTable)
        models.add_column(plain_cell("File"), key="file")
        models.add_column(plain_cell("Size"), key="size")
        models.add_column(plain_cell("sha256"), key="sha256")
        table.focus()
        self.reload()

    def reload(self) -> None:
        terminal, session = self.terminal, self.session
        self.run_engine(lambda: terminal.system_status(session), self._show, group="system-status")

    def _show(self, status: SystemStatus) -> None:
        self.query_one("#system-reading").display = False
        table = self.query_one("#system", DataTable)
        table.clear()
        for setting, value in settings(status):
            table.add_row(plain_cell(setting), plain_cell(value), key=setting)
        models: DataTable[Any] = self.query_one("#models", DataTable)
        models.clear()
        for model in status.model_files:
            models.add_row(
                plain_cell(model.name), Text(size_text(model.size), justify="right"), plain_cell(model.sha256)
            )

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self.reload()
