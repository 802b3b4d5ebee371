"""Exporting the audit log: the next signed, encrypted audit bundle, written to removable media for the oversight.

The engine decides everything (``terminal.exports``, ``engine.audit.export``): who may export, the
range (from the event after the last export to the last signed head), the file's name, that it is
never written over another file, and the record of the export in the terminal's own log. This
screen asks the engine what the next export would cover and shows it, lets the person choose the
folder on the media (the application's file chooser, choosing a folder),
runs the export in a worker, and says what was written, or why nothing was, in the engine's words.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, Static

from engine.audit.export import ExportPlan, ExportResult
from engine.errors import RfrError
from rfr_tui.dialogs.error import UNEXPECTED
from rfr_tui.screens.audit_verify import grouped_hash
from rfr_tui.screens.base import RfrScreen
from rfr_tui.text import plain
from rfr_tui.widgets import file_chooser
from rfr_tui.widgets.file_chooser import FileChooserDialog, Place
from rfr_tui.widgets.job_progress import JobProgress
from rfr_tui.widgets.state_label import StateLabel, Tone
from rfr_tui.wording import said

INTRO = (
    "An audit bundle takes this terminal's audit log since the last export to the oversight: the events exactly "
    "as stored, the signed heads before and after them and the monitoring figures, signed with this terminal's "
    "audit key and encrypted to the oversight's key, so the media carry nothing readable. Each export is recorded "
    "in this terminal's log as yours, and the next bundle begins with that record."
)
WAIT = "Wait for the export to finish: it cannot be stopped once the bundle is being written."


def plan_lines(plan: ExportPlan) -> list[str]:
    """What the next export covers, in words."""
    events = f"{plan.events:,} event{'' if plan.events == 1 else 's'}"
    lines = [f"The next export covers the audit log from seq {plan.first:,} to seq {plan.last:,}: {events}."]
    if plan.first == 1:
        lines.append("Nothing has been exported from this terminal yet: the bundle starts at the first event.")
    else:
        lines.append(f"It starts after the last export, which ended at seq {plan.first - 1:,}.")
    if plan.more_to_export:
        lines.append(f"More events remain after seq {plan.last:,}: export again after this one.")
    lines.append("The bundle is written on the media you choose, as a new file: never over another one.")
    return lines


def bundle_facts(result: ExportResult, where: str) -> list[tuple[str, str]]:
    """What was written and recorded, a fact a row (the label, then the words)."""
    events = f"{result.events:,} event{'' if result.events == 1 else 's'}"
    quarters = ", ".join(result.quarters) or "none"
    return [
        ("File", result.path.name),
        ("Folder", where),
        ("Covers", f"seq {result.first:,} to seq {result.last:,} of this terminal's audit log: {events}"),
        ("Figures", f"the monitoring figures of {'quarter' if len(result.quarters) == 1 else 'quarters'} {quarters}"),
        ("Size", f"{result.bytes:,} bytes"),
        ("sha256", "\n".join(grouped_hash(result.file_sha256))),
        ("Recorded", f"at seq {result.recorded_seq:,} of this terminal's log, as yours"),
    ]


def head_facts(result: ExportResult) -> list[tuple[str, str]]:
    """The head the bundle ends at, as an auditor writes it down (the hash in blocks of four)."""
    return [("Seq", str(result.last)), ("Hash", "\n".join(grouped_hash(result.head_hash)))]


HEAD_NOTE = (
    "Record this head: checking this terminal's log against it later shows a log rolled back or rebuilt since. "
    "Give it as SEQ:HASH when verifying the audit log (key v on the home screen)."
)


def facts(rows: list[tuple[str, str]]) -> list[Widget]:
    """Each fact on its row: the label in a column of its own, the words (of one or more lines) beside it."""
    return [
        Horizontal(
            Static(plain(label), classes="export--label"),
            Static(plain(value), classes="export--value"),
            classes="export--fact",
        )
        for label, value in rows
    ]


class AuditExportScreen(RfrScreen):
    """See what the next audit bundle covers, choose the media, export it, read what was written."""

    TITLE_TEXT = "Export the audit log"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="audit_export.back"),
        Binding("e", "export", "Choose the media and export", id="audit_export.export"),
        Binding("r", "plan", "Read the next range", id="audit_export.plan"),
    ]
    DEFAULT_CSS = """
    AuditExportScreen #export {
        height: 1fr;
        padding: 1 2;
    }
    AuditExportScreen #export-intro {
        height: auto;
        color: $text-muted;
        margin-bottom: 1;
    }
    AuditExportScreen #export-state {
        text-style: bold;
        margin-bottom: 1;
    }
    AuditExportScreen #export-detail {
        height: auto;
        margin-bottom: 1;
    }
    AuditExportScreen .export--heading {
        text-style: bold underline;
        margin-top: 1;
    }
    AuditExportScreen .export--first {
        margin-top: 0;
    }
    AuditExportScreen .export--fact {
        height: auto;
    }
    AuditExportScreen .export--label {
        width: 12;
        text-style: bold;
    }
    AuditExportScreen .export--value {
        width: 1fr;
    }
    AuditExportScreen .export--note {
        margin-top: 1;
    }
    AuditExportScreen .export--more {
        margin-top: 1;
        text-style: bold;
    }
    AuditExportScreen #export-buttons {
        height: auto;
    }
    AuditExportScreen #export-buttons Button {
        margin-right: 2;
    }
    """

    def __init__(self, places: Sequence[Place] | None = None) -> None:
        super().__init__()
        self._places = list(places) if places is not None else None
        self.plan: ExportPlan | None = None
        self.result: ExportResult | None = None
        self.busy = False
        self.exporting = False

    def body(self) -> ComposeResult:
        with VerticalScroll(id="export"):
            yield Static(plain(INTRO), id="export-intro")
            yield StateLabel("Not read yet", Tone.NEUTRAL, id="export-state")
            yield JobProgress(id="export-progress")
            yield Vertical(id="export-detail")
            with Horizontal(id="export-buttons"):
                yield Button(plain("Choose the media and export (e)"), id="export-now", variant="primary")
                yield Button(plain("Read the next range (r)"), id="plan-again")

    def on_mount(self) -> None:
        self.action_plan()

    # ---- what may be done now ----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "export":
            return not self.busy and self.plan is not None
        if action == "plan":
            return not self.busy
        return True

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.query_one("#export-now", Button).disabled = busy or self.plan is None
        self.query_one("#plan-again", Button).disabled = busy
        self.refresh_bindings()

    def _say(self, state: str, tone: Tone, lines: list[str], widgets: Sequence[Widget] = ()) -> None:
        """The state in words and symbol; then ``lines`` of text, then ``widgets``, in the detail."""
        self.query_one("#export-state", StateLabel).set_state(state, tone)
        detail = self.query_one("#export-detail", Vertical)
        detail.remove_children()
        shown: list[Widget] = [Static(plain("\n".join(lines)))] if lines else []
        detail.mount_all([*shown, *widgets])

    @property
    def detail_text(self) -> str:
        """What the detail shows, as text: a fact as "Label: words" (for tests)."""
        out: list[str] = []
        for widget in self.query_one("#export-detail", Vertical).children:
            if widget.has_class("export--fact"):
                label, value = (str(s.render()) for s in widget.query(Static))
                out.append(f"{label}: {value}")
            elif isinstance(widget, Static):
                out += str(widget.render()).split("\n")
        return "\n".join(out)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        (self.action_export if event.button.id == "export-now" else self.action_plan)()

    # ---- the plan --------------------------------------------------------------------------------

    def action_plan(self) -> None:
        if self.busy:
            return
        self.plan = None
        self._set_busy(True)
        self._say("Reading what the next export covers...", Tone.INFO, [])
        terminal, session = self.terminal, self.session
        self.run_engine(
            lambda: terminal.exports.plan(session), self.show_plan, failed=self._not_ready, group="audit-export-plan"
        )

    def show_plan(self, plan: ExportPlan) -> None:
        """Show what the next export covers; the export is then one key away."""
        self.plan = plan
        events = f"{plan.events:,} event{'' if plan.events == 1 else 's'}"
        self._say(f"Ready to export {events}", Tone.INFO, plan_lines(plan))
        self._set_busy(False)
        self.query_one("#export-now", Button).focus()

    def _not_ready(self, error: BaseException) -> None:
        self.plan = None
        self._say("Nothing can be exported now", Tone.WARNING, [_sentence(error, self)])
        self._set_busy(False)
        self.query_one("#plan-again", Button).focus()

    # ---- the export ------------------------------------------------------------------------------

    def action_export(self) -> None:
        if self.busy or self.plan is None:
            return
        places = self._places if self._places is not None else file_chooser.default_places()
        dialog = FileChooserDialog.folder(
            places,
            title="Where to write the audit bundle",
            purpose=(
                "Choose the folder on the removable media with the arrow keys (Enter opens a folder), then "
                "ctrl+s or the button. The terminal names the file and never writes over another one."
            ),
            button="Export here",
        )
        self.app.push_screen(dialog, lambda folder: self._export_to(folder, dialog.where))

    def _export_to(self, folder: Path | None, where: str) -> None:
        if folder is None:
            return
        self.result = None
        self.exporting = True
        self._set_busy(True)
        self._say("Exporting...", Tone.INFO, [])
        self.query_one("#export-progress", JobProgress).start(
            f"Writing the audit bundle in {where}", hint="Signing, encrypting and writing; keep the media in."
        )
        terminal, session = self.terminal, self.session
        self.run_engine(
            lambda: terminal.exports.export(session, folder),
            lambda result: self.show_result(result, where),
            failed=self._not_exported,
            group="audit-export",
        )

    def show_result(self, result: ExportResult, where: str) -> None:
        """Show what was written and recorded; the plan is spent (r reads the next one)."""
        self.query_one("#export-progress", JobProgress).finish()
        self.exporting = False
        self.result = result
        self.plan = None
        events = f"{result.events:,} event{'' if result.events == 1 else 's'}"
        shown: list[Widget] = [
            Static(plain("The bundle written"), classes="export--heading export--first"),
            *facts(bundle_facts(result, where)),
            Static(plain("The head the bundle ends at"), classes="export--heading"),
            *facts(head_facts(result)),
            Static(plain(HEAD_NOTE), classes="export--note"),
        ]
        if result.more_to_export:
            more = f"More events remain after seq {result.last:,}: read the next range (r), then export again."
            shown.append(Static(plain(more), classes="export--more"))
        self._say(f"Exported: {events}, recorded as yours", Tone.GOOD, [], shown)
        self._set_busy(False)
        self.query_one("#plan-again", Button).focus()

    def _not_exported(self, error: BaseException) -> None:
        self.query_one("#export-progress", JobProgress).finish()
        self.exporting = False
        self._say("Not exported", Tone.BAD, [_sentence(error, self)])
        self._set_busy(False)
        self.query_one("#export-now", Button).focus()

    def action_back(self) -> None:
        if self.exporting:
            self.notify(WAIT, title="Exporting")
            return
        self.app.pop_screen()


def _sentence(error: BaseException, screen: RfrScreen) -> str:
    """The engine's sentence for a person, capitalised; anything else a plain sentence (and logged)."""
    if not isinstance(error, RfrError):
        screen.log.error(f"audit export: unexpected error {error!r}")
        return UNEXPECTED
    words = said(error, UNEXPECTED)
    words = words[:1].upper() + words[1:]
    return words if words.endswith((".", "!", "?")) else f"{words}."
