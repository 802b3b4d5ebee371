"""Libraries: the terminal's Permitted Image Reference Libraries, and an engineer's work on them.

Create a library (substantive, or temporary with its authorisation and expiry), enrol a folder
of reference images into it (from removable media or any folder; in a worker, with progress,
stoppable, and a summary of what went in and what was skipped and why), read its composition
(by sex, IC code and age range: a table and a bar chart in characters), and delete it with a
reason. Every check and record is the engine's (``engine.library.service.Libraries``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    DataTable,
    DirectoryTree,
    Footer,
    Input,
    OptionList,
    Static,
)
from textual.widgets.option_list import Option

from engine.library.demographics import IC_CODES
from engine.library.enrol import EnrolmentReport, EnrolProgress
from engine.library.service import LibraryInfo
from engine.library.store import Composition, Library, LibraryKind, PurgeRecord, parse_expiry
from rfr_tui.dialogs.confirm import ConfirmDialog
from rfr_tui.dialogs.reason import ReasonDialog
from rfr_tui.screens.base import RfrScreen
from rfr_tui.text import plain, plain_cell, plain_line
from rfr_tui.widgets.job_progress import JobProgress
from rfr_tui.widgets.status_bar import StatusBar
from rfr_tui.widgets.tick_list import TickList
from rfr_tui.wording import said, sentence

# Where the folder chooser starts: removable media first (USB drives mount under /media or
# /run/media), then other mounts and the home folder. Only the places that exist are offered.
PLACES: list[tuple[str, Path]] = [
    ("Removable media", Path("/media")),
    ("Removable media", Path("/run/media")),
    ("Mounted drives", Path("/mnt")),
    ("Home folder", Path.home()),
]
METADATA_SUFFIXES = (".csv", ".yaml", ".yml")
PROGRESS_EVERY = 0.1  # seconds between progress updates posted to the interface

# The engine's stable codes for a skipped image, in words.
SKIP_REASONS = {
    "not_in_subject_folder": "not in a subject folder",
    "not_an_image": "not a JPEG or PNG file",
    "too_large": "too large",
    "unreadable": "unreadable",
    "duplicate": "already in the library",
    "no_face": "no face found",
    "several_faces": "several faces, none clearly dominant",
    "no_face_at_point": "no face at the point the metadata names",
    "face_point_ambiguous": "the point the metadata names is in more than one face",
    "no_template": "no template made",
}


def kind_text(library: Library) -> str:
    return "Substantive" if library.kind is LibraryKind.SUBSTANTIVE else "Temporary"


def expiry_text(library: Library, now: datetime) -> str:
    if library.expires_at is None:
        return "- (standing)"
    moment = f"{library.expires_at:%Y-%m-%d %H:%M} UTC"
    return f"✖ lapsed {moment}: due for destruction" if library.expired(now) else f"lapses {moment}"


def skip_reason(code: str) -> str:
    return SKIP_REASONS.get(code, code.replace("_", " "))


def relative(path: str, folder: Path) -> str:
    """``path`` as seen from the enrolled folder (shorter, and the same on every terminal)."""
    try:
        return str(Path(path).relative_to(folder))
    except ValueError:
        return path


def bar(count: int, total: int, width: int = 30) -> str:
    """A bar in eighths of a character, ``width`` characters for the whole ``total``."""
    if total <= 0 or count <= 0:
        return ""
    eighths = max(1, round(count / total * width * 8))
    full, part = divmod(eighths, 8)
    return "█" * full + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[part]


@dataclass(frozen=True)
class _Listing:
    libraries: list[LibraryInfo]
    now: datetime


class LibrariesScreen(RfrScreen):
    """Every library with its kind, authorisation, expiry and sizes; create, enrol, composition, delete."""

    TITLE_TEXT = "Libraries: Permitted Image Reference Libraries"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="libraries.back"),
        Binding("n", "create", "New library", id="libraries.create"),
        Binding("e", "enrol", "Enrol a folder", id="libraries.enrol"),
        Binding("c", "composition", "Composition", id="libraries.composition"),
        Binding("d", "delete", "Delete", id="libraries.delete"),
        Binding("f5", "reload", "Refresh", id="libraries.reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._listing: _Listing | None = None

    def body(self) -> ComposeResult:
        with VerticalScroll(classes="engineer"):
            yield Static(
                plain(
                    "The reference images searches may compare a Probe Image with. A temporary library exists for one "
                    "operation and is destroyed when its authorisation lapses."
                ),
                classes="engineer--intro",
            )
            yield DataTable(id="libraries", cursor_type="row", zebra_stripes=True)
            yield Static(plain("No library yet: press n to create one."), id="no-libraries", classes="engineer--muted")
            yield Static("", id="libraries-note", classes="engineer--note")

    def on_mount(self) -> None:
        table = self.query_one("#libraries", DataTable)
        for label, key in [
            ("Library", "name"),
            ("Kind", "kind"),
            ("Authorisation", "authorisation"),
            ("Expiry", "expiry"),
            ("Subjects", "subjects"),
            ("Images", "images"),
            ("Templates", "templates"),
        ]:
            table.add_column(plain_cell(label), key=key)
        self.query_one("#no-libraries").display = False
        table.focus()
        self.reload()

    def reload(self) -> None:
        terminal, session = self.terminal, self.session
        self.run_engine(
            lambda: _Listing(terminal.libraries.listing(session), terminal.ws.now()), self._show, group="libraries"
        )
        self.query_one(StatusBar).refresh_status()  # its library sizes, now rather than in a few seconds

    def _show(self, listing: _Listing) -> None:
        self._listing = listing
        table = self.query_one("#libraries", DataTable)
        chosen = self.selected()
        table.clear()
        for info in listing.libraries:
            lib = info.library
            table.add_row(
                plain_cell(lib.name),
                plain_cell(kind_text(lib)),
                plain_cell(lib.authorisation or "-"),
                plain_cell(expiry_text(lib, listing.now)),
                Text(f"{info.subjects:,}", justify="right"),
                Text(f"{info.images:,}", justify="right"),
                Text(f"{info.templates:,}", justify="right"),
                key=lib.name,
            )
        if chosen is not None and any(i.library.name == chosen.library.name for i in listing.libraries):
            table.move_cursor(row=table.get_row_index(chosen.library.name))
        table.display = bool(listing.libraries)
        self.query_one("#no-libraries").display = not listing.libraries

    def selected(self) -> LibraryInfo | None:
        table = self.query_one("#libraries", DataTable)
        if not table.row_count or self._listing is None:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((i for i in self._listing.libraries if i.library.name == key), None)

    def _selected_or_say(self) -> LibraryInfo | None:
        info = self.selected()
        if info is None:
            self.note("Choose a library in the list first (arrow keys), or press n to create one.")
        return info

    def note(self, text: str) -> None:
        self.query_one("#libraries-note", Static).update(plain(text))

    # ---- actions ------------------------------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self.reload()

    def action_create(self) -> None:
        def created(library: Library | None) -> None:
            if library is not None:
                self.note(
                    f"Created the {library.kind.value} library '{library.name}': press e to enrol a folder into it."
                )
            self.reload()

        self.app.push_screen(CreateLibraryScreen(), created)

    def action_enrol(self) -> None:
        info = self._selected_or_say()
        if info is not None:
            self.app.push_screen(EnrolScreen(info.library.name), lambda _result: self.reload())

    def action_composition(self) -> None:
        info = self._selected_or_say()
        if info is not None:
            self.app.push_screen(CompositionScreen(info.library.name))

    def action_delete(self) -> None:
        info = self._selected_or_say()
        if info is None:
            return
        name = info.library.name
        terminal, session = self.terminal, self.session

        def deleted(record: PurgeRecord) -> None:
            self.note(
                f"Deleted the library '{record.library}': destroyed {record.subjects:,} subjects, {record.images:,} "
                f"images and {record.templates:,} templates."
            )
            self.reload()

        def answered(reason: str, yes: bool | None) -> None:
            if yes:
                self.run_engine(lambda: terminal.libraries.delete(session, name, reason), deleted, group="delete")

        def reason_given(reason: str | None) -> None:
            if reason is None:
                return
            self.app.push_screen(
                ConfirmDialog(
                    f"Delete the library '{name}'? Everything in it will be destroyed: {info.subjects:,} subjects, "
                    f"{info.images:,} images, {info.templates:,} templates and its index. This cannot be undone. "
                    f"Reason recorded: {reason}",
                    yes="Delete library",
                    no="Keep it",
                    title="Delete a library",
                    dangerous=True,
                ),
                lambda yes: answered(reason, yes),
            )

        self.app.push_screen(
            ReasonDialog(
                f"Why is the library '{name}' being deleted? The reason is recorded in the audit log.",
                title="Delete a library",
                action="Next",
            ),
            reason_given,
        )


class CreateLibraryScreen(RfrScreen):
    """A new library: its name and kind, and for a temporary one its authorisation reference and expiry."""

    TITLE_TEXT = "Libraries: create a library"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="create_library.back"),
        Binding("ctrl+s", "submit", "Create", id="create_library.submit"),
    ]

    def body(self) -> ComposeResult:
        with VerticalScroll(classes="engineer engineer--form"):
            yield Static(plain("Name"), classes="field--label")
            yield Input(id="name", placeholder="for example: Custody images", max_length=64)
            yield Static(plain("Kind (arrow keys, then space or Enter to choose)"), classes="field--label")
            yield TickList[LibraryKind](
                [
                    (LibraryKind.SUBSTANTIVE, "Substantive: standing, for example the force's custody images"),
                    (LibraryKind.TEMPORARY, "Temporary: for one operation, destroyed when its authorisation lapses"),
                ],
                [LibraryKind.SUBSTANTIVE],
                single=True,
                id="kind",
            )
            with Vertical(id="temporary"):
                yield Static(plain("Authorisation reference"), classes="field--label")
                yield Input(id="authorisation", placeholder="for example: OP-NIGHTJAR/2026/03")
                yield Static(
                    plain("Expiry date (YYYY-MM-DD): the authorisation lapses at the end of that day, UTC"),
                    classes="field--label",
                )
                yield Input(id="expiry", placeholder="YYYY-MM-DD")
            yield Static(plain("Description (optional)"), classes="field--label")
            yield Input(id="description", placeholder="what it holds and where it came from")
            yield Static("", id="create-problem", classes="form--problem")
            with Horizontal(classes="engineer--buttons"):
                yield Button(plain("Create (ctrl+s)"), id="submit", variant="primary")
                yield Button(plain("Back (Esc)"), id="back")

    def on_mount(self) -> None:
        self._show_temporary(False)
        self.query_one("#name", Input).focus()

    def temporary(self) -> bool:
        kind: TickList[LibraryKind] = self.query_one("#kind", TickList)
        return kind.ticked == [LibraryKind.TEMPORARY]

    def _show_temporary(self, on: bool) -> None:
        self.query_one("#temporary").display = on

    def on_tick_list_changed(self, event: TickList.Changed) -> None:
        event.stop()
        self._show_temporary(self.temporary())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "submit":
            self.action_submit()
        else:
            self.action_back()

    def action_back(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        terminal, session = self.terminal, self.session
        name = self.query_one("#name", Input).value
        description = self.query_one("#description", Input).value.strip()
        temporary = self.temporary()
        authorisation = self.query_one("#authorisation", Input).value.strip() if temporary else None
        expiry = self.query_one("#expiry", Input).value.strip() if temporary else ""

        def create() -> Library:
            return terminal.libraries.create(
                session,
                name,
                LibraryKind.TEMPORARY if temporary else LibraryKind.SUBSTANTIVE,
                authorisation=authorisation,
                expires_at=parse_expiry(expiry) if expiry else None,
                description=description,
            )

        def failed(error: BaseException) -> None:
            words = said(error, "The library was not created: try again.")
            self.query_one("#create-problem", Static).update(plain(sentence(words)))

        def created(library: Library) -> None:
            self.dismiss(library)

        self.run_engine(create, created, group="create-library", failed=failed)


class EnrolScreen(RfrScreen):
    """Enrol a folder into one library: in a worker, with progress, stoppable, then what went in and what did not."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="enrol.back"),
        Binding("ctrl+o", "choose_folder", "Choose folder", id="enrol.choose_folder"),
        Binding("ctrl+t", "choose_metadata", "Choose metadata", id="enrol.choose_metadata"),
        Binding("ctrl+s", "start", "Enrol", id="enrol.start"),
        Binding("x", "stop", "Stop enrolling", id="enrol.stop"),
    ]

    def __init__(self, library: str) -> None:
        super().__init__()
        self._library = library
        self._cancel: threading.Event | None = None
        self._folder: Path | None = None

    def title_text(self) -> str:
        return f"Libraries: enrol a folder into '{self._library}'"

    @property
    def running(self) -> bool:
        return self._cancel is not None

    def body(self) -> ComposeResult:
        with VerticalScroll(classes="engineer engineer--form"):
            yield Static(
                plain(
                    "The folder holds one subfolder per subject, named with the subject's reference, each with that "
                    "subject's JPEG or PNG images. A metadata file (CSV or YAML) may give each subject's sex, IC code "
                    "and date of birth, and each image's capture date, and name the face (face_x, face_y) in a "
                    "photograph of several. Images showing no face, or several and none named or dominant, are skipped."
                ),
                classes="engineer--intro",
            )
            yield Static(plain("Folder to enrol"), classes="field--label")
            with Horizontal(classes="engineer--path"):
                yield Input(id="folder", placeholder="/media/usb/custody-2026")
                yield Button(plain("Choose... (ctrl+o)"), id="choose-folder")
            yield Static(plain("Metadata file (optional)"), classes="field--label")
            with Horizontal(classes="engineer--path"):
                yield Input(id="metadata", placeholder="none")
                yield Button(plain("Choose... (ctrl+t)"), id="choose-metadata")
            with Horizontal(classes="engineer--buttons"):
                yield Button(plain("Enrol (ctrl+s)"), id="start", variant="primary")
            yield Static("", id="enrol-problem", classes="form--problem")
            yield JobProgress(id="enrol-progress")
            with Vertical(id="summary"):
                yield Static("", id="summary-text")
                yield DataTable(id="skipped", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#summary").display = False
        skipped = self.query_one("#skipped", DataTable)
        for label, key in [("Why skipped", "reason"), ("File", "file"), ("Detail", "detail")]:
            skipped.add_column(plain_cell(label), key=key)
        self.query_one("#folder", Input).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.running
        if action in ("choose_folder", "choose_metadata", "start"):
            return not self.running
        return True

    def problem(self, text: str) -> None:
        self.query_one("#enrol-problem", Static).update(plain(text))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        {"choose-folder": self.action_choose_folder, "choose-metadata": self.action_choose_metadata}.get(
            event.button.id or "", self.action_start
        )()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "folder":
            self.query_one("#metadata", Input).focus()
        else:
            self.action_start()

    def action_choose_folder(self) -> None:
        def chosen(path: Path | None) -> None:
            if path is not None:
                self.query_one("#folder", Input).value = str(path)
                self.query_one("#metadata", Input).focus()

        self.app.push_screen(PathChooserDialog("Choose the folder to enrol", folders=True), chosen)

    def action_choose_metadata(self) -> None:
        def chosen(path: Path | None) -> None:
            if path is not None:
                self.query_one("#metadata", Input).value = str(path)
                self.query_one("#start", Button).focus()

        self.app.push_screen(
            PathChooserDialog("Choose the metadata file (CSV or YAML)", folders=False, suffixes=METADATA_SUFFIXES),
            chosen,
        )

    def action_back(self) -> None:
        if self.running:
            self.action_stop()
            return
        self.dismiss(None)

    def action_start(self) -> None:
        if self.running:
            return
        folder_text = self.query_one("#folder", Input).value.strip()
        metadata_text = self.query_one("#metadata", Input).value.strip()
        if not folder_text:
            self.problem("Choose the folder to enrol (ctrl+o), or type its path.")
            self.query_one("#folder", Input).focus()
            return
        folder = Path(folder_text).expanduser()
        metadata = Path(metadata_text).expanduser() if metadata_text else None
        terminal, session, name, app = self.terminal, self.session, self._library, self.app
        cancel = threading.Event()
        self._cancel, self._folder = cancel, folder
        last = [0.0]

        def progress(step: EnrolProgress) -> None:
            now = time.monotonic()
            if cancel.is_set() or (step.done < step.total and now - last[0] < PROGRESS_EVERY):
                return  # the interface gets a few updates a second, and none once the screen is gone
            last[0] = now
            app.call_from_thread(self._progress, step)

        def enrol() -> EnrolmentReport:
            return terminal.libraries.enrol(session, name, folder, metadata=metadata, progress=progress, cancel=cancel)

        self.problem("")
        self.query_one("#summary").display = False
        self._busy(True)
        self.query_one("#enrol-progress", JobProgress).start(
            f"Enrolling {folder} into '{name}'...", total=None, hint="Press x to stop after the current image."
        )
        self.run_engine(enrol, self._finished, group="enrol", failed=self._failed)

    def _busy(self, on: bool) -> None:
        for widget in self.query(Input).results():
            widget.disabled = on
        for button in self.query(Button).results():
            button.disabled = on
        if on:
            self.set_focus(None)  # so x reaches the screen
        self.refresh_bindings()

    def action_stop(self) -> None:
        if self._cancel is None:
            return
        self._cancel.set()
        self.query_one("#enrol-progress", JobProgress).say("Stopping after the current image...")

    def _progress(self, step: EnrolProgress) -> None:
        folder = self._folder or Path()
        self.query_one("#enrol-progress", JobProgress).advance(
            step.done,
            step.total,
            f"{step.done:,} of {step.total:,} images: {step.enrolled:,} enrolled, {step.skipped:,} skipped. "
            f"Last: {relative(step.path, folder)}",
        )

    def _finished(self, report: EnrolmentReport) -> None:
        self._cancel = None
        self.query_one("#enrol-progress", JobProgress).finish()
        self._busy(False)
        self._show_summary(report)
        self.query_one(StatusBar).refresh_status()
        # Focused where it stands: scrolling to it would hide the summary's first lines, and whether it scrolled
        # depended on whether the summary had been laid out yet.
        self.query_one("#skipped", DataTable).focus(scroll_visible=False)

    def _failed(self, error: BaseException) -> None:
        self._cancel = None
        self.query_one("#enrol-progress", JobProgress).finish()
        self._busy(False)
        self.problem(sentence(said(error, "The enrolment stopped: try again.")))
        self.query_one("#folder", Input).focus()

    def _show_summary(self, report: EnrolmentReport) -> None:
        folder = self._folder or Path()
        by_reason: dict[str, int] = {}
        for skipped in report.skipped:
            by_reason[skipped.reason] = by_reason.get(skipped.reason, 0) + 1
        lines = []
        if report.cancelled:
            lines.append("✖ Stopped before the end, as you asked: what was enrolled stays in the library.")
        else:
            lines.append("✔ Finished.")
        lines.append(f"Images found: {report.total:,}")
        lines.append(f"Images enrolled: {report.enrolled:,}")
        lines.append(f"New subjects: {report.subjects_added:,}")
        if report.retemplated:
            lines.append(f"Already in the library, given a template for the current face model: {report.retemplated:,}")
        lines.append(f"Skipped: {len(report.skipped):,}")
        for reason, count in sorted(by_reason.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"    {skip_reason(reason)}: {count:,}")
        lines.append(f"Enrolled with the dominant face of several: {len(report.chose_dominant_face):,}")
        for path in report.chose_dominant_face:
            lines.append(f"    {relative(path, folder)}")
        if report.face_named_by_person:
            lines.append(f"Enrolled with the face named in the metadata: {len(report.face_named_by_person):,}")
            for path in report.face_named_by_person:
                lines.append(f"    {relative(path, folder)}")
        if report.skipped:
            lines.append("The skipped files, and why:")
        self.query_one("#summary-text", Static).update(plain("\n".join(lines)))
        table = self.query_one("#skipped", DataTable)
        table.clear()
        for skipped in report.skipped:
            table.add_row(
                plain_cell(skip_reason(skipped.reason)),
                plain_cell(relative(skipped.path, folder)),
                plain_cell(skipped.detail),
            )
        table.display = bool(report.skipped)
        self.query_one("#summary").display = True

    def on_unmount(self) -> None:
        if self._cancel is not None:
            self._cancel.set()  # leaving (a sign-out) stops the enrolment after the current image


class _PlainDirectoryTree(DirectoryTree):
    """A directory tree that shows names as written (never as markup) and only folders, or folders and some files."""

    def __init__(self, path: Path, *, folders: bool, suffixes: Sequence[str] = (), id: str | None = None) -> None:
        super().__init__(path, id=id)
        self._folders = folders
        self._suffixes = tuple(s.lower() for s in suffixes)

    def process_label(self, label: str | Text) -> Text:
        return plain_line(label) if isinstance(label, str) else label

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        shown = []
        for path in paths:
            if path.name.startswith("."):
                continue
            try:
                if path.is_dir() or (not self._folders and path.suffix.lower() in self._suffixes):
                    shown.append(path)
            except OSError:
                continue  # a mount that went away, a folder we may not read
        return shown


class PathChooserDialog(ModalScreen[Path | None]):
    """Choose a folder (or a file) by key: a place (removable media first), the tree, or a typed path."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="path_chooser.cancel"),
        Binding("ctrl+s", "use", "Use this", id="path_chooser.use"),
    ]

    def __init__(self, title: str, *, folders: bool, suffixes: Sequence[str] = ()) -> None:
        super().__init__()
        self._title = title
        self._folders = folders
        self._suffixes = suffixes
        self._places = [(label, path) for label, path in PLACES if path.is_dir()]
        self._root = self._places[0][1] if self._places else Path("/")

    def compose(self) -> ComposeResult:
        what = "folder" if self._folders else "file"
        start = self._root
        with Vertical(classes="dialog dialog--folder-chooser"):
            yield Static(plain(self._title), classes="dialog--title")
            yield Static(
                plain(
                    f"Choose a place, then move through its folders with the arrow keys (Enter opens one). The "
                    f"highlighted {what} goes in the box below; ctrl+s uses it. You can also type a path in the box."
                ),
                classes="dialog--hint",
            )
            with Horizontal(id="folder-chooser-panes"):
                yield OptionList(
                    *[
                        Option(plain(f"{label}\n  {path}"), id=str(index))
                        for index, (label, path) in enumerate(self._places)
                    ],
                    id="folder-chooser-places",
                )
                yield _PlainDirectoryTree(
                    start, folders=self._folders, suffixes=self._suffixes, id="folder-chooser-tree"
                )
            yield Input(id="folder-chooser-path", placeholder=f"the {what} to use")
            yield Static("", id="folder-chooser-problem")
            with Horizontal(classes="dialog--buttons"):
                yield Button(plain("Use this (ctrl+s)"), id="use", variant="primary")
                yield Button(plain("Cancel (Esc)"), id="cancel", variant="default")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#folder-chooser-places", OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        _label, path = self._places[int(event.option.id or 0)]
        self._root = path
        tree = self.query_one("#folder-chooser-tree", _PlainDirectoryTree)
        tree.path = path
        tree.focus()

    def _as_placed(self, path: Path) -> Path:
        """``path`` under the place as the person chose it (the tree lists it resolved: links followed)."""
        try:
            return self._root / path.relative_to(self._root.expanduser().resolve())
        except (OSError, ValueError):
            return path

    def on_tree_node_highlighted(self, event: DirectoryTree.NodeHighlighted[Any]) -> None:
        event.stop()
        path = getattr(event.node.data, "path", None)
        if not isinstance(path, Path):
            return
        is_folder = path.is_dir()
        if is_folder == self._folders:
            self.query_one("#folder-chooser-path", Input).value = str(self._as_placed(path))

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        if not self._folders:  # Enter on a file chooses it
            self.query_one("#folder-chooser-path", Input).value = str(self._as_placed(event.path))
            self.action_use()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_use()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "use":
            self.action_use()
        else:
            self.action_cancel()

    def action_use(self) -> None:
        text = self.query_one("#folder-chooser-path", Input).value.strip()
        problem = self.query_one("#folder-chooser-problem", Static)
        if not text:
            problem.update(plain(f"Choose a {'folder' if self._folders else 'file'} first."))
            return
        path = Path(text).expanduser()
        if self._folders and not path.is_dir():
            problem.update(plain(f"{path} is not a folder: choose another."))
            return
        if not self._folders and not path.is_file():
            problem.update(plain(f"{path} is not a file: choose another."))
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)


# ---- composition ------------------------------------------------------------------------------


def _groups(found: Composition) -> list[tuple[str, dict[str, int], int, str]]:
    """(title, counts, total, what is counted) for each breakdown the policy's monitoring asks for."""
    return [
        ("Subjects by sex", found.subjects_by_sex, found.subjects, "subjects"),
        ("Subjects by ethnicity (IC code)", found.subjects_by_ic_code, found.subjects, "subjects"),
        ("Images by sex of the subject", found.images_by_sex, found.images, "images"),
        ("Images by ethnicity (IC code) of the subject", found.images_by_ic_code, found.images, "images"),
        ("Images by the subject's age range at capture", found.images_by_age_range, found.images, "images"),
    ]


def _category(title: str, key: str) -> str:
    if "IC code" in title:
        return f"{key} {IC_CODES.get(key, '')}".strip()
    return key[:1].upper() + key[1:]


class CompositionScreen(RfrScreen):
    """One library's composition by sex, IC code and age range: counts, shares and bars in characters."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back", id="composition.back")]

    def __init__(self, library: str) -> None:
        super().__init__()
        self._library = library

    def title_text(self) -> str:
        return f"Libraries: composition of '{self._library}'"

    def body(self) -> ComposeResult:
        yield VerticalScroll(
            Static(plain("Reading the library's figures..."), id="composition-summary", classes="engineer--intro"),
            id="composition",
            classes="engineer",
        )

    def on_mount(self) -> None:
        terminal, session, name = self.terminal, self.session, self._library
        self.run_engine(lambda: terminal.libraries.composition(session, [name]), self._show, group="composition")

    def _show(self, found: list[Composition]) -> None:
        if not found:
            return
        figures = found[0]
        templates = "; ".join(f"{model}: {count:,}" for model, count in figures.templates.items()) or "none"
        self.query_one("#composition-summary", Static).update(
            plain(
                f"{figures.library} ({figures.kind}): {figures.subjects:,} subjects, {figures.images:,} images. "
                f"Templates by face model: {templates}. Each bar is the share of the whole; the number is beside it."
            )
        )
        scroll = self.query_one("#composition", VerticalScroll)
        tables: list[Any] = []
        for index, (title, counts, total, counted) in enumerate(_groups(figures)):
            table: DataTable[Any] = DataTable(id=f"group-{index}", cursor_type="row", zebra_stripes=True)
            table.add_column(plain_cell(title), key="category")
            table.add_column(plain_cell(counted.capitalize()), key="count")
            table.add_column(plain_cell("Share"), key="share")
            table.add_column(plain_cell("Chart"), key="chart")
            for key, count in counts.items():
                share = f"{count / total:.0%}" if total else "-"
                table.add_row(
                    plain_cell(_category(title, key)),
                    Text(f"{count:,}", justify="right"),
                    Text(share, justify="right"),
                    plain_cell(f"{bar(count, total)} {count:,}"),
                )
            tables.append(table)
        scroll.mount_all(tables)
        tables[0].focus()

    def action_back(self) -> None:
        self.app.pop_screen()
