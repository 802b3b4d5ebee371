"""The oversight's home screen: the auditors' four kinds of work, each one key away.

Every section is listed for everyone signed in: the oversight has one kind of work, the
auditors', and who may do it is the engine's to say (``Oversight.auditor``); a person without the
Auditor role who opens one reads the engine's refusal there, in its words.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from engine.security.users import Role
from rfr_tui.screens.home import Section
from rfr_tui.screens.oversight_base import OversightScreen
from rfr_tui.text import plain

_AUDITOR = (Role.AUDITOR,)
SECTIONS: tuple[Section, ...] = (
    Section(
        "i",
        "Import bundles",
        _AUDITOR,
        "rfr_tui.screens.oversight_import:ImportScreen",
        "verify audit bundles from removable media and place each against its terminal's accepted log",
    ),
    Section(
        "f",
        "Findings",
        _AUDITOR,
        "rfr_tui.screens.oversight_findings:FindingsScreen",
        "gaps, forks, rolled-back and rebuilt logs an auditor must look at",
    ),
    Section(
        "t",
        "Terminals",
        _AUDITOR,
        "rfr_tui.screens.oversight_terminals:TerminalsScreen",
        "the registered terminals and how far each one's accepted log reaches",
    ),
    Section(
        "r",
        "Quarterly report",
        _AUDITOR,
        "rfr_tui.screens.oversight_report:ReportScreen",
        "the FR Technology Board's figures for a quarter: on screen, and written to files",
    ),
)
INTRO = (
    "Audit bundles come from the terminals on removable media. Import them, resolve what the imports find, "
    "and make the Board's figures from what was accepted. Everything you do here is recorded in the oversight's "
    "own audit log."
)


class OversightHomeScreen(OversightScreen):
    """The auditors' sections."""

    TITLE_TEXT = "Home"
    DEFAULT_CSS = """
    OversightHomeScreen #oversight-intro {
        height: auto;
        margin: 1 2 0 2;
        color: $text-muted;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", id="oversight_home.open", show=False),
    ]

    def title_text(self) -> str:
        user = self.oversight.accounts.get_user(self.session.username)
        roles = ", ".join(sorted(r.label for r in user.roles))
        return f"Oversight home: {user.display_name or user.username} ({roles})"

    def body(self) -> ComposeResult:
        yield Static(plain(INTRO), id="oversight-intro")
        yield OptionList(
            *[Option(plain(f"[{s.key}]  {s.title}  -  {s.description}"), id=f"section-{s.key}") for s in SECTIONS],
            id="sections",
        )

    def on_mount(self) -> None:
        for section in SECTIONS:
            self._bindings.bind(section.key, f"open_section('{section.key}')", section.title, show=False)
        self.query_one("#sections", OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_open_section((event.option.id or "").removeprefix("section-"))

    def action_open(self) -> None:
        option_list = self.query_one("#sections", OptionList)
        if option_list.highlighted is not None:
            self.action_open_section(SECTIONS[option_list.highlighted].key)

    def action_open_section(self, key: str) -> None:
        section = next((s for s in SECTIONS if s.key == key), None)
        if section is not None:
            self.app.push_screen(section.open())
