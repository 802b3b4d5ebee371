"""What every signed-in screen of the oversight's application shares: the oversight workspace and the session, a
title, the status bar and the footer, and one way to run engine work off the interface's thread.

As ``rfr_tui.screens.base`` for the terminal's screens: no business rule; the engine
(``engine.oversight``) decides and records, and an error becomes a sentence on the screen or the
application's one error dialog.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Static

from engine.oversight.service import Oversight
from rfr_tui.screens.base import DeskScreen
from rfr_tui.text import plain, plain_cell, visible
from rfr_tui.widgets.file_chooser import Place
from rfr_tui.widgets.state_label import StateLabel, Tone
from rfr_tui.widgets.status_bar import StatusLine
from rfr_tui.wording import said

if TYPE_CHECKING:
    from rfr_tui.oversight.app import OversightApp


@dataclass(frozen=True)
class OversightStatus:
    """What the status bar says: who is signed in and with which roles, the workspace, the policy in force."""

    user: str | None
    roles: tuple[str, ...]
    workspace: str
    policy_version: str


def when(at: str | None) -> str:
    """An audit time (``2026-10-02T12:00:00.000123Z``) as a person reads it: ``2026-10-02 12:00 UTC``."""
    if not at:
        return "-"
    return f"{at[:10]} {at[11:16]} UTC" if len(at) >= 16 and at[10] == "T" else at


def shown_path(path: Path, places: Sequence[Place]) -> str:
    """``path`` as the person reads it: within the place it is in (``keys/oversight.key, in USB stick``), else whole;
    control codes in a name from the media shown as signs."""
    for place in places:
        try:
            inside = path.resolve().relative_to(place.path.resolve())
        except (OSError, ValueError):
            continue
        return visible(place.label if inside == Path(".") else f"{inside}, in {place.label}")
    return visible(str(path))


def sentence(error: BaseException, fallback: str) -> str:
    """The engine's words for ``error`` as a sentence for the person (``rfr_tui.wording.said``, capitalised)."""
    words = said(error, fallback)
    return words[:1].upper() + words[1:]


def status_wordings(status: OversightStatus) -> list[str]:
    """Every way the bar can say ``status``, fullest first; each names every part, on one line."""
    who_full = f"{status.user} ({', '.join(status.roles)})" if status.user else "nobody signed in"
    who_short = status.user or "nobody signed in"
    out = [
        f"Signed in: {who_full}  |  Oversight workspace: {status.workspace}  |  Policy {status.policy_version}",
        f"Signed in: {who_full} | Oversight workspace: {status.workspace} | Policy {status.policy_version}",
        f"Signed in: {who_short} | Oversight workspace: {status.workspace} | Policy {status.policy_version}",
        f"{who_short} | Oversight {status.workspace} | Policy {status.policy_version}",
    ]
    return [visible(w).replace("\n", " ").replace("\t", " ") for w in out]


class OversightStatusBar(StatusLine[OversightStatus]):
    """The status bar of the oversight's screens (read once in a worker when shown; fitted again on resize)."""

    WAITING = "Oversight workspace opening..."

    def reader(self) -> Callable[[], OversightStatus] | None:
        app = cast("OversightApp", self.app)
        oversight, session = app.oversight_or_none, app.session
        if oversight is None:
            return None
        workspace = app.workspace_name

        def read() -> OversightStatus:
            user = None if session is None else oversight.accounts.get_user(session.username)
            roles = () if user is None else tuple(sorted(r.label for r in user.roles))
            return OversightStatus(None if user is None else user.username, roles, workspace, oversight.policy.version)

        return read

    def wordings(self, status: OversightStatus) -> list[str]:
        return status_wordings(status)


class OversightScreen(DeskScreen):
    """A screen of the signed-in oversight application: title, body (``body()``), status bar, footer."""

    @property
    def desk(self) -> OversightApp:
        """The application (where the auditor works)."""
        return cast("OversightApp", self.app)

    @property
    def oversight(self) -> Oversight:
        return self.desk.oversight

    def status_bar(self) -> Widget:
        return OversightStatusBar()


class TableScreen(OversightScreen):
    """A screen that reads one list from the engine and shows it as a table: a state line, a problem line (hidden
    until there is one), the table. Subclasses set ``PART`` (the widgets' id prefix), ``COLUMNS``, ``NOT_READ`` and
    ``READING``, and implement ``read()`` (the engine call, in a worker) and ``show()``."""

    DEFAULT_CSS = """
    TableScreen .table--body {
        height: 1fr;
        padding: 1 2;
    }
    TableScreen .table--state, TableScreen .table--problem {
        height: auto;
        margin-bottom: 1;
    }
    TableScreen .table--problem {
        color: $warning;
    }
    TableScreen DataTable {
        height: auto;
        max-height: 100%;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back", id="oversight_table.back")]
    PART = ""
    COLUMNS: tuple[tuple[str, int | None], ...] = ()
    READING = "Reading..."
    NOT_READ = "It could not be read."

    def body(self) -> ComposeResult:
        with Vertical(id=f"{self.PART}-body", classes="table--body"):
            yield StateLabel(self.READING, Tone.INFO, id=f"{self.PART}-state", classes="table--state")
            yield Static("", id=f"{self.PART}-problem", classes="table--problem")
            table: DataTable[Any] = DataTable(id=f"{self.PART}-table", cursor_type="row", zebra_stripes=True)
            for label, width in self.COLUMNS:
                table.add_column(plain_cell(label), width=width)
            yield table

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one(f"#{self.PART}-table", DataTable)

    @property
    def state(self) -> StateLabel:
        return self.query_one(f"#{self.PART}-state", StateLabel)

    def on_mount(self) -> None:
        self.say_problem(None)
        self.table.focus()
        self.load()

    def load(self) -> None:
        self.run_engine(self.read(), self.show, failed=self.refused, group=self.PART)

    def read(self) -> Callable[[], Any]:
        raise NotImplementedError

    def show(self, rows: Any) -> None:
        raise NotImplementedError

    def say_problem(self, text: str | None) -> None:
        problem = self.query_one(f"#{self.PART}-problem", Static)
        problem.update(plain(text or ""))
        problem.display = text is not None

    def refused(self, error: BaseException) -> None:
        self.state.set_state("Not shown", Tone.BAD)
        self.say_problem(sentence(error, self.NOT_READ))
        self.table.display = False

    def action_back(self) -> None:
        self.app.pop_screen()
