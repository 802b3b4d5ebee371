"""Findings: what the imports found that an auditor must look at (``Oversight.findings``), as a table.

A gap (a bundle quarantined until the missing range arrives), a fork, a rolled-back or rebuilt
log, an overlap, an alert the terminal itself recorded: each with its terminal, when it was
found, whether it is resolved, and the engine's words for it. Open ones by default; ``a`` shows
the resolved ones too. Reading them is recorded by the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.binding import Binding, BindingType

from engine.oversight.service import Finding
from rfr_tui.screens.oversight_base import TableScreen, when
from rfr_tui.text import plain_cell
from rfr_tui.widgets.state_label import Tone

KINDS = {
    "gap": "gap: a bundle quarantined",
    "fork": "fork",
    "rollback": "log rolled back",
    "rebuilt": "log rebuilt",
    "overlap": "overlap",
    "terminal_alert": "the terminal's alert",
}
COLUMNS: tuple[tuple[str, int | None], ...] = (
    ("No.", None),
    ("Terminal", 12),
    ("Kind", 14),
    ("Found", 10),
    ("Resolved", 10),
    ("Bundle", 7),
    ("What was found", 42),
)


def bundles_of(finding: Finding) -> str:
    if finding.bundle is None:
        return "-"
    return str(finding.bundle) if finding.other_bundle is None else f"{finding.bundle} (against {finding.other_bundle})"


def summary(found: list[Finding], everything: bool) -> tuple[str, Tone]:
    open_ = sum(1 for f in found if f.resolved_at is None)
    if everything:
        words = f"{len(found)} finding{'' if len(found) == 1 else 's'}, {open_} still open (resolved ones shown too)"
    elif open_:
        words = f"{open_} open finding{'' if open_ == 1 else 's'}: each needs an auditor's look"
    else:
        words = "No open findings"
    return words, Tone.WARNING if open_ else Tone.GOOD


class FindingsScreen(TableScreen):
    """What imports found, oldest first."""

    TITLE_TEXT = "Findings"
    PART = "findings"
    COLUMNS = COLUMNS
    READING = "Reading the findings..."
    NOT_READ = "The findings could not be read."
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "everything", "With resolved", id="oversight_findings.everything"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.everything = False
        self.found: list[Finding] | None = None

    def read(self) -> Callable[[], list[Finding]]:
        oversight, session, everything = self.oversight, self.session, self.everything
        return lambda: oversight.findings(session, include_resolved=everything)

    def show(self, found: list[Finding]) -> None:
        self.found = found
        words, tone = summary(found, self.everything)
        self.state.set_state(words, tone)
        self.say_problem(None)
        table = self.table
        table.clear()
        for f in found:
            table.add_row(
                plain_cell(str(f.id)),
                plain_cell(f.terminal),
                plain_cell(KINDS.get(f.kind, f.kind.replace("_", " "))),
                plain_cell(when(f.found_at)),
                plain_cell("open" if f.resolved_at is None else when(f.resolved_at)),
                plain_cell(bundles_of(f)),
                plain_cell(f.detail),
                height=None,
                key=str(f.id),
            )
        table.display = bool(found)

    def refused(self, error: BaseException) -> None:
        self.found = None
        super().refused(error)

    def action_everything(self) -> None:
        self.everything = not self.everything
        self.load()
