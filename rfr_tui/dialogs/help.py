"""The help dialog: every key of the screen in front, with what it does."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, ClassVar, NamedTuple

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Static

from rfr_tui.text import plain, plain_cell


class KeyHelp(NamedTuple):
    """One line of help: the key as the footer shows it, what it does, where it works, whether it works now."""

    key: str
    description: str
    where: str = "This screen"
    enabled: bool = True


# Where a key belongs, in the order the help lists them.
SECTIONS = ("This screen", "Everywhere", "The selected item")


class HelpDialog(ModalScreen[None]):
    """Lists the keys of a screen: its own, the application's, and the focused widget's."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1", "close", "Close help", id="help.close"),
    ]

    def __init__(self, keys: Iterable[KeyHelp], *, title: str = "Keys for this screen") -> None:
        super().__init__()
        self._keys = sorted(keys, key=lambda line: SECTIONS.index(line.where) if line.where in SECTIONS else 99)
        self._title = title

    @classmethod
    def for_screen(cls, screen: Screen[Any], *, hidden_actions: Collection[str] = ()) -> HelpDialog:
        """The keys active on ``screen`` now, less those whose action is in ``hidden_actions``."""
        app = screen.app
        keys: list[KeyHelp] = []
        seen: set[tuple[str, str]] = set()
        for active in screen.active_bindings.values():
            binding = active.binding
            if binding.action.removeprefix("app.").removeprefix("screen.") in hidden_actions:
                continue
            if binding.action in ("command_palette", "app.command_palette"):
                description = "Command palette"
            else:
                description = binding.description or binding.tooltip
            if not description or binding.system:
                continue
            if isinstance(active.node, App):
                where = "Everywhere"
            elif isinstance(active.node, Screen):
                where = "This screen"
            else:
                where = "The selected item"
            line = KeyHelp(app.get_key_display(binding), description, where, active.enabled)
            if (line.key, line.description) not in seen:
                seen.add((line.key, line.description))
                keys.append(line)
        return cls(keys)

    @property
    def keys(self) -> list[KeyHelp]:
        return list(self._keys)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(plain(self._title), classes="dialog--title")
            table: DataTable[Any] = DataTable(id="help-keys", cursor_type="none", zebra_stripes=False)
            table.add_column(plain_cell("Key"), key="key")
            table.add_column(plain_cell("What it does"), key="description")
            section = None
            for line in self._keys:
                if line.where != section:
                    section = line.where
                    table.add_row(plain_cell(""), plain_cell(section, "bold underline"))
                what = line.description if line.enabled else f"{line.description} (not available now)"
                table.add_row(plain_cell(line.key), plain_cell(what))
            yield table
            yield Static(plain("Press Escape or F1 to close."), classes="dialog--hint")
        yield Footer()

    def action_close(self) -> None:
        self.dismiss(None)
