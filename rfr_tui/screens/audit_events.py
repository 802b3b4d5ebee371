"""Browsing the audit log: who did what, to which case, user or library, and when; newest first.

The engine reads the events and records each look (``terminal.audit.events``: auditors only,
an ``audit.view`` event naming the filter); this screen asks for a page at a time (``before=``
the oldest shown) and shows every field as plain text: actors, subjects and details came from
the database, and a name in it must never be read as markup.

Filters, each one key away from the table: actor, action or family ("case" is every case
event), subject id, and a day range (from a day to a day, both included).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Static

from engine.audit.access import EventFilter
from engine.audit.chain import AuditEvent
from rfr_tui.screens.audit_verify import grouped_hash
from rfr_tui.screens.base import RfrScreen
from rfr_tui.text import plain, plain_cell
from rfr_tui.wording import said

PAGE = 100
FILTERS = (
    # input id, what it is called, placeholder
    ("actor", "Actor (a)", "user name"),
    ("action", "Action or family (f)", "e.g. case"),
    ("subject", "Subject id (s)", "e.g. alice"),
    ("since", "From day (d)", "YYYY-MM-DD"),
    ("until", "To day, included", "YYYY-MM-DD"),
)


def show_time(at: str) -> str:
    """The stored UTC time without its fraction of a second: ``2026-03-02 09:00:00``."""
    day, _, rest = at.partition("T")
    return f"{day} {rest[:8]}" if rest else at


def show_subjects(subjects: dict[str, Any]) -> str:
    """``case RFR-2026-0001, user alice``: each subject's kind and id."""
    return ", ".join(f"{kind} {value}" for kind, value in sorted(subjects.items()))


def day_bound(text: str, what: str, *, after: bool = False) -> str | None:
    """A day typed as YYYY-MM-DD as the log's time text (its start; or the next day's start, ``after``).

    Raises ``ValueError`` with a sentence naming the field when it is not a day.
    """
    text = text.strip()
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} '{text}' is not a day: write it as YYYY-MM-DD, e.g. 2026-03-31.") from None
    if after:
        day += timedelta(days=1)
    return f"{day.isoformat()}T00:00:00.000000Z"


def describe_filter(chosen: EventFilter, typed: dict[str, str]) -> str:
    parts = []
    if chosen.actor:
        parts.append(f"actor {chosen.actor}")
    if chosen.action:
        parts.append(f"action {chosen.action}")
    if chosen.subject:
        parts.append(f"subject {chosen.subject}")
    if typed.get("since"):
        parts.append(f"from {typed['since']}")
    if typed.get("until"):
        parts.append(f"to {typed['until']} (included)")
    return "Filtered by " + ", ".join(parts) if parts else "Every event (no filter)"


class AuditEventsScreen(RfrScreen):
    """The audit log, newest first, a page at a time, filtered by actor, action, subject and days."""

    TITLE_TEXT = "Audit events"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="audit_events.back"),
        Binding("a", "filter('actor')", "Actor", id="audit_events.actor"),
        Binding("f", "filter('action')", "Action", id="audit_events.action"),
        Binding("s", "filter('subject')", "Subject", id="audit_events.subject"),
        Binding("d", "filter('since')", "Days", id="audit_events.days"),
        Binding("x", "clear", "Clear", id="audit_events.clear"),
        Binding("n", "older", "Older", id="audit_events.older"),
        Binding("p", "newer", "Newer", id="audit_events.newer"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.events: list[AuditEvent] = []
        self.selection = EventFilter()
        self._typed: dict[str, str] = {}
        self._pages: list[int | None] = []  # the ``before`` of each newer page, to go back to it
        self._before: int | None = None

    def body(self) -> ComposeResult:
        with Horizontal(id="event-filters"):
            for key, label, placeholder in FILTERS:
                with Vertical(classes="event-filter"):
                    yield Static(plain(label), classes="event-filter--label")
                    yield Input(placeholder=placeholder, id=f"filter-{key}")
        yield Static("", id="events-problem", classes="auditor--problem")
        yield Static(plain("Reading the audit log..."), id="events-summary")
        table: DataTable[Any] = DataTable(id="events-table", cursor_type="row", zebra_stripes=True)
        _columns(table)
        yield table

    def on_mount(self) -> None:
        self.query_one("#events-table", DataTable).focus()
        self.load()

    # ---- reading a page -----------------------------------------------------------------------

    def load(self, before: int | None = None, *, going_back: bool = False) -> None:
        terminal, session, selection = self.terminal, self.session, self.selection
        # Said in words, not with a loading indicator over the table: that would take the focus away from it.
        self.query_one("#events-summary", Static).update(plain("Reading the audit log: working..."))

        def done(events: list[AuditEvent]) -> None:
            if not events and before is not None:
                self.app.notify("There are no older events.", title="Audit events")
                self.show(self.events)
                return
            if before is not None and not going_back:
                self._pages.append(self._before)
            self._before = before
            self.show(events)

        def failed(error: BaseException) -> None:
            words = said(error, "the audit log could not be read")
            self.query_one("#events-problem", Static).update(plain(f"Not shown: {words}"))

        self.run_engine(
            lambda: terminal.audit.events(session, selection, limit=PAGE, before=before),
            done,
            failed=failed,
            group="audit-events",
        )

    def show(self, events: list[AuditEvent]) -> None:
        self.events = events
        table = self.query_one("#events-table", DataTable)
        table.clear(columns=True)  # columns as wide as this page needs, not the widest page seen before
        _columns(table)
        for event in events:
            table.add_row(
                plain_cell(str(event.seq)),
                plain_cell(show_time(event.at)),
                plain_cell(event.actor),
                plain_cell(event.action),
                plain_cell(show_subjects(event.subjects)),
                key=str(event.seq),
            )
        filtered = describe_filter(self.selection, self._typed)
        if events:
            page = len(self._pages) + 1
            where = f"seq {events[0].seq} to seq {events[-1].seq}, newest first, page {page}"
            more = "n: older" if len(events) == PAGE else "no older events"
            newer = ", p: newer" if self._pages else ""
            summary = f"{filtered}. {len(events)} events ({where}; {more}{newer}). Enter: the event in full."
        else:
            summary = f"{filtered}. No event matches."
        self.query_one("#events-summary", Static).update(plain(summary))
        self.query_one("#events-problem", Static).update("")

    def action_older(self) -> None:
        if self.events and len(self.events) == PAGE:
            self.load(self.events[-1].seq)
        else:
            self.app.notify("There are no older events.", title="Audit events")

    def action_newer(self) -> None:
        if not self._pages:
            self.app.notify("This is the newest page.", title="Audit events")
            return
        self.load(self._pages.pop(), going_back=True)

    # ---- filters ------------------------------------------------------------------------------

    def action_filter(self, key: str) -> None:
        self.query_one(f"#filter-{key}", Input).focus()

    def action_clear(self) -> None:
        for key, _label, _placeholder in FILTERS:
            self.query_one(f"#filter-{key}", Input).value = ""
        self.apply_filters()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.apply_filters():
            self.query_one("#events-table", DataTable).focus()

    def apply_filters(self) -> bool:
        """Read the filter fields and show the newest page that matches; False (and why) if a field is wrong."""
        typed = {key: self.query_one(f"#filter-{key}", Input).value.strip() for key, _l, _p in FILTERS}
        try:
            since = day_bound(typed["since"], "From day")
            until = day_bound(typed["until"], "To day", after=True)
        except ValueError as error:
            self.query_one("#events-problem", Static).update(plain(str(error)))
            return False
        if since is not None and until is not None and until <= since:
            self.query_one("#events-problem", Static).update(
                plain(f"The To day ({typed['until']}) is before the From day ({typed['since']}): change one of them.")
            )
            return False
        self.selection = EventFilter(
            actor=typed["actor"] or None,
            action=typed["action"] or None,
            subject=typed["subject"] or None,
            since=since,
            until=until,
        )
        self._typed = typed
        self._pages = []
        self._before = None
        self.load()
        return True

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one("#events-table", DataTable).focus()
            return
        self.app.pop_screen()

    # ---- one event in full --------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        seq = int(str(event.row_key.value))
        chosen = next((e for e in self.events if e.seq == seq), None)
        if chosen is not None:
            self.app.push_screen(EventDetails(chosen))


COLUMNS = (("seq", "Seq"), ("at", "Time (UTC)"), ("actor", "Actor"), ("action", "Action"), ("subjects", "Subjects"))


def _columns(table: DataTable[Any]) -> None:
    for key, label in COLUMNS:
        table.add_column(plain_cell(label), key=key)


def event_text(event: AuditEvent) -> str:
    """Every field of one event, as it is stored (details in full, hashes grouped for reading)."""
    details = json.dumps(event.details, indent=2, sort_keys=True, ensure_ascii=False) if event.details else "(none)"
    subjects = "\n".join(f"  {kind}: {value}" for kind, value in sorted(event.subjects.items())) or "  (none)"
    hash_lines = grouped_hash(event.hash)
    prev_lines = grouped_hash(event.prev_hash)
    return "\n".join(
        [
            f"Seq:      {event.seq}",
            f"Time:     {event.at} (UTC)",
            f"Actor:    {event.actor}",
            f"Action:   {event.action}",
            "Subjects:",
            subjects,
            "Details:",
            *(f"  {line}" for line in details.splitlines()),
            f"Hash:     {hash_lines[0]}",
            *(f"          {line}" for line in hash_lines[1:]),
            f"Follows:  {prev_lines[0]}",
            *(f"          {line}" for line in prev_lines[1:]),
        ]
    )


class EventDetails(ModalScreen[None]):
    """One audit event in full."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter", "close", "Close", id="event_details.close"),
    ]

    def __init__(self, event: AuditEvent) -> None:
        super().__init__()
        self.event = event

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog event-details"):
            yield Static(plain(f"Audit event {self.event.seq}: {self.event.action}"), classes="dialog--title")
            with VerticalScroll(id="event-details-body"):
                yield Static(plain(event_text(self.event)), id="event-details-text")
            yield Static(plain("Escape or Enter: close"), classes="dialog--hint")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#event-details-body", VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)
