"""The oversight's dialogs: the terminal's file chooser and password dialog, worded for bundles, keys and reports.

- :class:`OversightFileChooser`: the terminal's ``FileChooserDialog`` (removable media and the home
  folder only), saying which kind of file to choose, and, for bundles, ``ctrl+a`` to take every
  bundle in the folder at once;
- :class:`ReportFolderChooser`: the same in its saving mode, for the name of a new folder that
  receives the report's files;
- :class:`PassphraseDialog`: the password dialog, for the oversight private key's passphrase (the
  caller reads the key with it in a worker and keeps neither).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import Input, Static

from rfr_tui.dialogs.password import PasswordDialog
from rfr_tui.text import plain
from rfr_tui.widgets.file_chooser import FileChooserDialog, Place

BUNDLE_SUFFIXES = frozenset({".rfrbundle"})
KEY_SUFFIXES = frozenset({".key", ".pem"})
EMPTY_PASSPHRASE = "Type the oversight key's passphrase, or press Escape to cancel."  # noqa: S105 (words, not a secret)


class OversightFileChooser(FileChooserDialog):
    """Choose one file of the kind named by ``what`` (or, with ``whole_folder``, a folder: every such file in it)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+a", "whole_folder", "Every bundle here", id="oversight_chooser.whole_folder"),
    ]

    def __init__(
        self,
        places: Sequence[Place],
        *,
        title: str,
        purpose: str,
        suffixes: frozenset[str],
        what: str,
        whole_folder: bool = False,
    ) -> None:
        super().__init__(places, title=title, purpose=purpose, suffixes=suffixes, what=what)
        self._whole_folder = whole_folder

    @classmethod
    def bundles(cls, places: Sequence[Place]) -> OversightFileChooser:
        return cls(
            places,
            title="Choose audit bundles",
            purpose="Bundles are the .rfrbundle files a terminal's 'Export' wrote to the media. Choose one with "
            "Enter, or open a folder and press ctrl+a to take every bundle in it.",
            suffixes=BUNDLE_SUFFIXES,
            what="an audit bundle (.rfrbundle), or ctrl+a for every bundle in this folder",
            whole_folder=True,
        )

    @classmethod
    def private_key(cls, places: Sequence[Place]) -> OversightFileChooser:
        return cls(
            places,
            title="Choose the oversight private key file",
            purpose="The file 'rfr oversight keys init' made (its passphrase is asked when you import).",
            suffixes=KEY_SUFFIXES,
            what="the private key file (.key or .pem)",
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "whole_folder":
            return self._whole_folder
        return super().check_action(action, parameters)

    def action_whole_folder(self) -> None:
        """Dismiss with the folder in view: the caller takes every file of the kind asked for in it."""
        if self._whole_folder and self._folder is not None:
            self.dismiss(self._folder)


class ReportFolderChooser(FileChooserDialog):
    """A place and the name of a new folder for the report's files (never an existing one's files)."""

    def __init__(self, places: Sequence[Place], *, name: str) -> None:
        super().__init__(
            places,
            title="Write the report files",
            purpose="Choose where: a new folder is made there for report.html and the four CSV files. Nothing is "
            "ever overwritten.",
            save_name=name,
        )

    def on_mount(self) -> None:
        super().on_mount()
        for label in self.query(".entry-label"):
            if isinstance(label, Static):
                label.update(plain("Name of the new folder"))


class PassphraseDialog(PasswordDialog):
    """Asks for the oversight private key's passphrase; dismisses with it, or None if cancelled."""

    def __init__(self, purpose: str) -> None:
        super().__init__(purpose, title="The oversight key's passphrase")

    def on_mount(self) -> None:
        field = self.query_one("#password", Input)
        field.placeholder = "Oversight key passphrase"
        field.focus()

    def action_submit(self) -> None:
        if not self.query_one("#password", Input).value:
            self.query_one("#password-problem", Static).update(plain(EMPTY_PASSPHRASE))
            return
        super().action_submit()
