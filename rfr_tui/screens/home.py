"""The home screen: the sections a person's roles give them, each one key away.

``SECTIONS`` lists every section of the application: the roles that see it, its key, and the
screen it opens (a ``module:Class`` path, imported when chosen, so the home screen opens fast
and a section's screen module stands on its own).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from engine.security.users import Role, User
from rfr_tui.screens.base import RfrScreen
from rfr_tui.text import plain

_ANYONE = tuple(Role)


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    roles: tuple[Role, ...]
    target: str
    description: str

    def open(self, **kwargs: Any) -> Any:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)(**kwargs)


SECTIONS: tuple[Section, ...] = (
    Section(
        "c",
        "My cases",
        (Role.RFR_USER, Role.TASKING_OFFICER),
        "rfr_tui.screens.cases:MyCasesScreen",
        "cases you made, submitted, searched or adjudicated, and where each stands",
    ),
    Section(
        "n",
        "New submission",
        (Role.RFR_USER, Role.TASKING_OFFICER),
        "rfr_tui.screens.submission:NewSubmissionScreen",
        "complete the RFR Submission Form for a Probe Image",
    ),
    Section(
        "a",
        "Approvals",
        (Role.APPROVER,),
        "rfr_tui.screens.approval:ApprovalQueueScreen",
        "submissions waiting for an approver",
    ),
    Section(
        "p",
        "Peer reviews",
        (Role.PEER_REVIEWER,),
        "rfr_tui.screens.peer_review:PeerReviewQueueScreen",
        "'no viable match' adjudications waiting for a second opinion",
    ),
    Section("u", "Users", (Role.ENGINEER,), "rfr_tui.screens.users:UsersScreen", "accounts and account changes"),
    Section(
        "l",
        "Libraries",
        (Role.ENGINEER,),
        "rfr_tui.screens.libraries:LibrariesScreen",
        "create, enrol, composition, delete",
    ),
    Section(
        "i",
        "Index health",
        (Role.ENGINEER,),
        "rfr_tui.screens.index_health:IndexHealthScreen",
        "what this terminal measured of each library's index",
    ),
    Section(
        "s",
        "System status",
        (Role.ENGINEER,),
        "rfr_tui.screens.system:SystemScreen",
        "models and their hashes, the inference device, the disk",
    ),
    Section(
        "m",
        "Removable media",
        (Role.ENGINEER,),
        "rfr_tui.screens.media:MediaScreen",
        "signed packages from the central unit (libraries, users, policy)",
    ),
    Section(
        "v",
        "Verify the audit log",
        (Role.AUDITOR, Role.ENGINEER),
        "rfr_tui.screens.audit_verify:VerifyScreen",
        "check every event and signature against the recorded key",
    ),
    Section(
        "x",
        "Export the audit log",
        (Role.AUDITOR, Role.ENGINEER),
        "rfr_tui.screens.audit_export:AuditExportScreen",
        "the log since the last export, signed and encrypted to the oversight, onto removable media",
    ),
    Section(
        "e",
        "Audit events",
        (Role.AUDITOR,),
        "rfr_tui.screens.audit_events:AuditEventsScreen",
        "browse and filter what happened, by whom",
    ),
    Section(
        "f",
        "Monitoring figures",
        (Role.AUDITOR,),
        "rfr_tui.screens.figures:FiguresScreen",
        "outcomes by the recorded demographic fields, for the quarterly review",
    ),
    Section(
        "w",
        "Change my password",
        _ANYONE,
        "rfr_tui.screens.password:OwnPasswordScreen",
        "choose a new password for yourself",
    ),
)


def sections_for(user: User) -> list[Section]:
    return [s for s in SECTIONS if any(user.has_role(r) for r in s.roles)]


class HomeScreen(RfrScreen):
    """The sections for the signed-in person's roles."""

    TITLE_TEXT = "Home"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", id="home.open", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._sections: list[Section] = []

    def title_text(self) -> str:
        user = self.terminal.accounts.get_user(self.session.username)
        roles = ", ".join(sorted(r.label for r in user.roles))
        return f"Home: {user.display_name or user.username} ({roles})"

    def body(self) -> ComposeResult:
        user = self.terminal.accounts.get_user(self.session.username)
        self._sections = sections_for(user)
        yield OptionList(
            *[
                Option(plain(f"[{s.key}]  {s.title}  -  {s.description}"), id=f"section-{s.key}")
                for s in self._sections
            ],
            id="sections",
        )

    def on_mount(self) -> None:
        for section in self._sections:
            self._bind(section)
        self.query_one("#sections", OptionList).focus()

    def _bind(self, section: Section) -> None:
        # Each section's key is on the screen beside it (and in the help, F1): the footer keeps room for the keys
        # that work everywhere (sign out, lock, help), even at 80 columns.
        self._bindings.bind(section.key, f"open_section('{section.key}')", section.title, show=False)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        key = (event.option.id or "").removeprefix("section-")
        self.action_open_section(key)

    def action_open(self) -> None:
        option_list = self.query_one("#sections", OptionList)
        if option_list.highlighted is not None:
            self.action_open_section(self._sections[option_list.highlighted].key)

    def action_open_section(self, key: str) -> None:
        section = next((s for s in self._sections if s.key == key), None)
        if section is None:
            return
        self.app.push_screen(section.open())
