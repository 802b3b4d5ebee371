"""Choosing a file to read, or a folder and a name to write, among the places a custody terminal allows.

The places are removable media (``/media``, ``/run/media``, where desktops mount USB sticks and
discs) and the signed-in person's home folder; nowhere else is offered. The dialog only chooses a
path: reading (``engine.files.read_regular_file``, which refuses links, devices and oversized
files) and writing (the engine's exports, never over an existing file) are done by the caller
through the engine. Hidden files are not listed; when opening, only the file types asked for are.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text, TextType
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from rfr_tui.text import plain, plain_line

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
REMOVABLE_MEDIA_ROOTS = (Path("/media"), Path("/run/media"))
NO_PLACES = (
    "No removable media and no home folder can be found on this terminal: insert the media, wait for it "
    "to be mounted, and try again."
)


@dataclass(frozen=True)
class Place:
    """A place files may be read from or written to: what the person reads, and where it is."""

    label: str
    path: Path


def default_places(home: Path | None = None) -> list[Place]:
    """Removable media mount points that exist, then the person's home folder."""
    places = [Place(f"Removable media ({root})", root) for root in REMOVABLE_MEDIA_ROOTS if _is_dir(root)]
    try:
        folder = home or Path.home()
    except RuntimeError:  # no home folder can be determined for this account
        return places
    if _is_dir(folder):
        places.append(Place(f"Home folder ({folder})", folder))
    return places


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def file_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a new file's name in the chosen folder, or None."""
    if not name.strip():
        return "Type a name for the file."
    if name != name.strip():
        return "The file name starts or ends with a space: remove it."
    if "/" in name or "\\" in name or "\x00" in name:
        return "Type a file name only: choose the folder in the list above."
    if name in (".", "..") or name.startswith("."):
        return "A file name cannot start with a dot (it would be hidden)."
    if not name.isprintable():
        return "The file name contains control characters: type it again."
    return None


class PlaceTree(DirectoryTree):
    """The folders of one place, and (when opening) only the files of the types asked for; nothing hidden.

    Names are shown exactly as written, on one line: a file named ``[@click=app.quit]x.jpg`` is that
    text, never markup that acts, and control codes in a name reach the terminal only as their signs.
    """

    def __init__(self, path: Path, *, suffixes: frozenset[str] | None, id: str | None = None) -> None:
        super().__init__(path, id=id)
        self._suffixes = suffixes

    def process_label(self, label: TextType) -> Text:
        return plain_line(label) if isinstance(label, str) else plain_line(label.plain)

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        shown = []
        for path in paths:
            if path.name.startswith("."):
                continue
            if _is_dir(path):
                shown.append(path)
            elif self._suffixes is not None and path.suffix.lower() in self._suffixes and not path.is_symlink():
                shown.append(path)
        return shown


class FileChooserDialog(ModalScreen[Path | None]):
    """Choose a file to open (``open_image``) or a folder and a file name to save to (``save``).

    Dismisses with the chosen path, or None when cancelled. Tab moves between the places, the
    folder tree and (when saving) the file name; Enter opens a folder, chooses a file, or saves.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="chooser.cancel"),
        Binding("ctrl+s", "choose", "This folder", id="chooser.folder"),
    ]

    def __init__(
        self,
        places: Sequence[Place],
        *,
        title: str,
        purpose: str,
        suffixes: frozenset[str] | None = IMAGE_SUFFIXES,
        save_name: str | None = None,
        folder_only: str | None = None,
        what: str = "a JPEG or PNG file",
    ) -> None:
        super().__init__()
        self._what = what  # what to choose, as the "Folder:" line says it
        self._places = list(places)
        self._title = title
        self._purpose = purpose
        self._saving = save_name is not None
        self._folder_button = folder_only  # choosing a folder: the button's words
        self._suffixes = None if self._saving else frozenset() if folder_only else suffixes
        self._save_name = save_name or ""
        self._place = 0
        self._folder: Path | None = self._places[0].path if self._places else None
        self._file: Path | None = None

    @classmethod
    def open_image(cls, places: Sequence[Place], *, title: str, purpose: str) -> FileChooserDialog:
        return cls(places, title=title, purpose=purpose, suffixes=IMAGE_SUFFIXES)

    @classmethod
    def save(cls, places: Sequence[Place], *, title: str, purpose: str, name: str) -> FileChooserDialog:
        return cls(places, title=title, purpose=purpose, save_name=name)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # ctrl+s chooses the folder shown when choosing a folder (Enter opens one); elsewhere it is not bound.
        return not (action == "choose" and not self._folder_button)

    @classmethod
    def folder(cls, places: Sequence[Place], *, title: str, purpose: str, button: str) -> FileChooserDialog:
        """Choose a folder (the engine names the file it writes there): dismisses with the folder."""
        return cls(places, title=title, purpose=purpose, folder_only=button)

    @property
    def saving(self) -> bool:
        return self._saving

    @property
    def where(self) -> str:
        """The folder or file chosen so far, as the person reads it (within the place, by its label)."""
        return self._within(self._file or self._folder) if self._places else ""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog--file-chooser"):
            yield Static(plain(self._title), classes="dialog--title")
            yield Static(plain(self._purpose), id="chooser-purpose")
            if not self._places:
                yield Static(plain(NO_PLACES), id="chooser-problem", classes="entry-problem -shown")
            else:
                with Horizontal(id="chooser-body"):
                    yield OptionList(
                        *[Option(plain(p.label), id=f"place-{i}") for i, p in enumerate(self._places)],
                        id="chooser-places",
                    )
                    yield PlaceTree(self._places[0].path, suffixes=self._suffixes, id="chooser-tree")
                yield Static("", id="chooser-where")
                if self._saving:
                    yield Static(plain("File name"), classes="entry-label")
                    yield Input(self._save_name, id="chooser-name", select_on_focus=False)
                yield Static("", id="chooser-problem", classes="entry-problem")
            with Horizontal(classes="dialog--buttons"):
                if self._places:
                    yield Button(
                        plain(
                            "Save here (Enter)"
                            if self._saving
                            else f"{self._folder_button} (ctrl+s)"
                            if self._folder_button
                            else "Open (Enter)"
                        ),
                        id="choose",
                        variant="primary",
                    )
                yield Button(plain("Cancel (Esc)"), id="cancel", variant="default")
        yield Footer()

    def on_mount(self) -> None:
        if self._places:
            self.query_one("#chooser-places", OptionList).highlighted = 0
            self.query_one("#chooser-tree", PlaceTree).focus()
        else:
            self.query_one("#cancel", Button).focus()
        self._say_where()

    # ---- places and the tree ---------------------------------------------------------------------

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        index = int((event.option.id or "place-0").removeprefix("place-"))
        place = self._places[index]
        self._place = index
        tree = self.query_one("#chooser-tree", PlaceTree)
        tree.path = place.path
        self._folder, self._file = place.path, None
        self._say_where()
        tree.focus()

    def on_tree_node_highlighted(self, event: DirectoryTree.NodeHighlighted[object]) -> None:
        event.stop()
        data = event.node.data
        path = getattr(data, "path", None)
        if not isinstance(path, Path):
            return
        if _is_dir(path):
            self._folder, self._file = path, None
        else:
            self._folder, self._file = path.parent, path
        self._say_where()

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        if not self._saving:
            self._file = event.path
            self.action_choose()

    def on_directory_tree_directory_selected(self, event: DirectoryTree.DirectorySelected) -> None:
        event.stop()
        self._folder, self._file = event.path, None
        self._say_where()

    def _within(self, path: Path | None) -> str:
        """``path`` as the person reads it: within the place chosen, named by its label."""
        place = self._places[self._place]
        if path is None:
            return place.label
        try:
            inside = path.resolve().relative_to(place.path.resolve())
        except (OSError, ValueError):
            return str(path)
        return place.label if inside == Path(".") else f"{inside}, in {place.label}"

    def _say_where(self) -> None:
        if not self._places:
            return
        where = self.query_one("#chooser-where", Static)
        if self._saving or self._folder_button:
            where.update(plain(f"Folder: {self._within(self._folder)}"))
        elif self._file is not None:
            where.update(plain(f"File: {self._within(self._file)}"))
        else:
            where.update(plain(f"Folder: {self._within(self._folder)}  (choose {self._what})"))

    def _problem(self, text: str) -> None:
        line = self.query_one("#chooser-problem", Static)
        line.update(plain(f"✖ {text}" if text else ""))
        line.set_class(bool(text), "-shown")

    # ---- choosing ------------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_choose()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "choose":
            self.action_choose()
        else:
            self.action_cancel()

    def action_choose(self) -> None:
        if not self._places:
            return
        if self._folder_button:
            if self._folder is not None:
                self.dismiss(self._folder)
            return
        if not self._saving:
            if self._file is None:
                self._problem("Choose a file: move to it in the list and press Enter.")
                return
            self.dismiss(self._file)
            return
        name = self.query_one("#chooser-name", Input).value
        problem = file_name_problem(name)
        if problem is None and self._folder is None:
            problem = "Choose a folder to save in."
        if problem is not None:
            self._problem(problem)
            self.query_one("#chooser-name", Input).focus()
            return
        assert self._folder is not None
        self.dismiss(Path(os.path.join(self._folder, name)))

    def action_cancel(self) -> None:
        self.dismiss(None)
