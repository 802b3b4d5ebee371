"""Removable media: where signed packages from the central unit will be applied.

Applying packages (libraries and their weeding, users, policy, models) from removable media,
verified with The Update Framework, is the next piece of work (issue 16). Until it is built,
this screen says so plainly and does nothing else: nothing is read from any media.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from rfr_tui.screens.base import RfrScreen
from rfr_tui.text import plain

NOT_YET = (
    "Signed packages from the central unit (library updates and weeding, users, policy and model updates) "
    "will be applied here from removable media. This terminal cannot apply them yet: nothing is read from "
    "any media. Until then, libraries are enrolled and users added from the Libraries and Users sections."
)


class MediaScreen(RfrScreen):
    TITLE_TEXT = "Removable media"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back", id="media.back")]

    def body(self) -> ComposeResult:
        yield Static(plain(NOT_YET), classes="notice")

    def action_back(self) -> None:
        self.app.pop_screen()
