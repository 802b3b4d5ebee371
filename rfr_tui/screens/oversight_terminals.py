"""Terminals: every registered terminal and how far its accepted log reaches (``Oversight.terminals``).

For each: when and by whom it was registered, the last accepted event (seq and time), its
bundles by status, its open findings and the audit keys the oversight trusts for it. Reading
the list is recorded by the engine. Terminals are registered at the command line
(``rfr oversight terminals add``), with the audit public key recorded at the terminal's
installation.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.oversight.service import TerminalRecord
from rfr_tui.screens.oversight_base import TableScreen, when
from rfr_tui.text import plain_cell
from rfr_tui.widgets.state_label import Tone

COLUMNS: tuple[tuple[str, int | None], ...] = (
    ("Terminal", 26),  # a terminal's name whole: it names its bundles, and is often long
    ("Registered", 14),
    ("Accepted to", 11),
    ("Last event", 11),
    ("Bundles", 14),
    ("Findings", 8),
    ("Audit keys", 17),
)
NONE_YET = (
    "No terminal is registered yet. An auditor registers each one at the command line with the audit public key "
    "recorded at its installation ('rfr oversight terminals add NAME --audit-public-key FILE')."
)


def bundle_words(bundles: dict[str, int]) -> str:
    return ", ".join(f"{status} {n}" for status, n in sorted(bundles.items())) or "none yet"


def key_words(keys: tuple[str, ...]) -> str:
    if not keys:
        return "none"
    first = keys[0][:16]
    return first if len(keys) == 1 else f"{first} and {len(keys) - 1} more (rotated)"


class TerminalsScreen(TableScreen):
    """The registered terminals."""

    TITLE_TEXT = "Terminals"
    PART = "terminals"
    COLUMNS = COLUMNS
    READING = "Reading the terminals..."
    NOT_READ = "The terminals could not be read."

    def __init__(self) -> None:
        super().__init__()
        self.records: list[TerminalRecord] | None = None

    def read(self) -> Callable[[], list[TerminalRecord]]:
        oversight, session = self.oversight, self.session
        return lambda: oversight.terminals(session)

    def show(self, records: list[TerminalRecord]) -> None:
        self.records = records
        table = self.table
        table.clear()
        for r in records:
            table.add_row(
                plain_cell(r.name),
                plain_cell(f"{when(r.registered_at)} by {r.registered_by}"),
                plain_cell("nothing yet" if r.accepted_through == 0 else f"seq {r.accepted_through:,}"),
                plain_cell(when(r.last_event_at)),
                plain_cell(bundle_words(r.bundles)),
                plain_cell(f"{r.open_findings} open"),
                plain_cell(key_words(r.keys)),
                height=None,
                key=r.name,
            )
        table.display = bool(records)
        if not records:
            self.state.set_state("No terminal registered", Tone.NEUTRAL)
            self.say_problem(NONE_YET)
            return
        waiting = sum(1 for r in records if r.open_findings)
        count = f"{len(records)} terminal{'' if len(records) == 1 else 's'} registered"
        if waiting:
            self.state.set_state(f"{count}; {waiting} with open findings (see Findings)", Tone.WARNING)
        else:
            self.state.set_state(f"{count}; none with open findings", Tone.GOOD)

    def refused(self, error: BaseException) -> None:
        self.records = None
        super().refused(error)
