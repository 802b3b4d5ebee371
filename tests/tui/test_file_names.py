"""Names of files and folders on removable media are text, never markup or terminal codes, in every folder tree.

A USB stick is the least trusted thing that reaches a custody terminal: whoever wrote it chose its
file names. A name such as ``[@click=app.quit]x.jpg`` read as markup would become a link that fires
an action when clicked; ``[b]x`` would disguise itself; an escape character would reach the
terminal as a command; a line feed would hide the rest of the name. The three trees that list
folders (the file chooser, the key-file chooser, the folder chooser) show each name exactly as
written, on one line, and clicking a name only chooses that file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.app import ComposeResult
from textual.widgets import DirectoryTree, Footer, Static, Tree

from rfr_tui.lockdown import LockedDownApp
from rfr_tui.screens.audit_verify import KeyTree
from rfr_tui.screens.libraries import _PlainDirectoryTree
from rfr_tui.text import plain_line
from rfr_tui.widgets.file_chooser import FileChooserDialog, Place, PlaceTree
from tests.tui.support import run

CLICK = "[@click=app.quit]x.jpg"
BOLD = "[b]x.jpg"
ESCAPE = "red\x1b[31mflag.jpg"
SPLIT = "first\nsecond.jpg"
FOLDER = "[@click=app.lock]evidence"
HOSTILE = (CLICK, BOLD, ESCAPE, SPLIT)


@pytest.fixture
def stick(tmp_path: Path) -> Path:
    """A USB stick whose file and folder names were chosen by someone hostile."""
    root = tmp_path / "stick"
    (root / FOLDER).mkdir(parents=True)
    for name in HOSTILE:
        (root / name).write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    return root


class Recorder(LockedDownApp[None]):
    """A locked-down app that records its hooks (a fired ``app.quit`` signs out; ``app.lock`` locks)."""

    def __init__(self, stick: Path) -> None:
        super().__init__()
        self.stick = stick
        self.events: list[str] = []
        self.chosen: list[Path | None] = []

    def compose(self) -> ComposeResult:
        yield Static("behind the dialog")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        dialog = FileChooserDialog.open_image([Place("USB stick", self.stick)], title="Open", purpose="A test")
        self.push_screen(dialog, self.chosen.append)

    def sign_out(self) -> None:
        self.events.append("sign_out")

    def lock(self) -> None:
        self.events.append("lock")


def line_of(tree: Tree[Any], y: int) -> tuple[str, list[dict[str, Any]]]:
    """The text a tree draws on its line ``y``, and the meta (where click actions live) of its segments."""
    strip = tree.render_line(y)
    return "".join(segment.text for segment in strip), [segment.style.meta for segment in strip if segment.style]


async def loaded(pilot: Any, tree: Tree[Any], count: int) -> None:
    for _ in range(200):
        if len(tree.root.children) >= count:
            return
        await pilot.pause(0.02)
    raise AssertionError(f"the tree listed {len(tree.root.children)} entries, not {count}")


def test_the_markup_would_act_if_a_tree_read_it() -> None:
    """The control: Textual's plain Tree reads a str label as markup, so the click action is really there."""
    label = Tree[None]("control").process_label(CLICK)
    assert label.plain == "x.jpg" and any("@click" in str(span.style) for span in label.spans)


def test_the_file_chooser_shows_hostile_names_literally_and_a_click_only_chooses_the_file(stick: Path) -> None:
    async def body() -> tuple[dict[str, str], list[str], list[dict[str, Any]], str, list[Path | None]]:
        app = Recorder(stick)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause()
            tree = app.screen.query_one(PlaceTree)
            await loaded(pilot, tree, len(HOSTILE) + 1)
            labels = {node.data.path.name: node.label.plain for node in tree.root.children}  # type: ignore[union-attr]
            drawn, metas = [], []
            for node in tree.root.children:
                text, meta = line_of(tree, node.line)
                drawn.append(text)
                metas += meta
            # Click the name that would quit, where it is drawn: it is chosen, and nothing else happens.
            target = next(node for node in tree.root.children if node.data.path.name == CLICK)  # type: ignore[union-attr]
            text, _ = line_of(tree, target.line)
            await pilot.click(tree, offset=(text.index(CLICK) + 2, target.line))
            await pilot.pause()
            await pilot.click(tree, offset=(text.index(CLICK) + 2, target.line))  # a second click selects it
            await pilot.pause()
            return labels, drawn, metas, "|".join(app.events), app.chosen

    labels, drawn, metas, events, chosen = run(body)
    assert labels[CLICK] == CLICK and labels[BOLD] == BOLD and labels[FOLDER] == FOLDER
    assert labels[ESCAPE] == "red␛[31mflag.jpg"  # the escape is shown as its sign, never sent
    assert labels[SPLIT] == "first␊second.jpg"  # the whole name, on one line
    assert any(CLICK in line for line in drawn) and any(BOLD in line for line in drawn)
    assert not any("\x1b" in line or "\n" in line for line in drawn)
    assert not [meta for meta in metas if any(key.startswith("@") for key in meta)]
    assert events == ""  # neither app.quit (a sign-out) nor app.lock fired
    assert chosen == [stick / CLICK]  # the click chose the file, by its exact name, and did nothing else


class Trees(LockedDownApp[None]):
    """The three folder trees of the application, side by side, on the same stick."""

    def __init__(self, stick: Path) -> None:
        super().__init__()
        self.stick = stick

    def compose(self) -> ComposeResult:
        yield PlaceTree(self.stick, suffixes=frozenset({".jpg"}), id="file-chooser")
        yield KeyTree(self.stick, "USB stick", id="key-file-chooser")
        yield _PlainDirectoryTree(self.stick, folders=False, suffixes=(".jpg",), id="folder-chooser")


def test_every_folder_tree_names_files_as_written_on_one_line(stick: Path) -> None:
    async def body() -> dict[str, dict[str, str]]:
        app = Trees(stick)
        async with app.run_test(size=(120, 40)) as pilot:
            found = {}
            for tree in app.query(DirectoryTree):
                await loaded(pilot, tree, len(HOSTILE) + 1)
                for node in tree.root.children:
                    assert not node.label.spans, node.label  # no style, no action: only text
                found[tree.id or ""] = {node.data.path.name: node.label.plain for node in tree.root.children}  # type: ignore[union-attr]
            return found

    found = run(body)
    assert set(found) == {"file-chooser", "key-file-chooser", "folder-chooser"}
    expected = {name: plain_line(name).plain for name in (*HOSTILE, FOLDER)}
    assert expected[SPLIT] == "first␊second.jpg" and expected[ESCAPE] == "red␛[31mflag.jpg"
    for tree_id, labels in found.items():
        assert labels == expected, tree_id


class Chooser(LockedDownApp[None]):
    """The file chooser alone, opening an image from ``places``."""

    def __init__(self, places: list[Place]) -> None:
        super().__init__()
        self.places = places
        self.chosen: list[Path | None] = []

    def compose(self) -> ComposeResult:
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.push_screen(FileChooserDialog.open_image(self.places, title="Open", purpose="A test"), self.chosen.append)


@pytest.mark.parametrize("with_places", [True, False], ids=["nothing-chosen", "no-places"])
def test_the_choosers_problem_is_shown_not_only_written(stick: Path, with_places: bool) -> None:
    # Found: the problem line's text was set but the line stayed hidden (display: none), so pressing
    # Open with no file chosen, or opening the chooser with no removable media, showed nothing at all.
    async def body() -> tuple[bool, str, list[Path | None]]:
        app = Chooser([Place("USB stick", stick)] if with_places else [])
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause()
            if with_places:
                app.screen.query_one("#choose").press()
                await pilot.pause()
            line = app.screen.query_one("#chooser-problem", Static)
            return line.display and line.region.height > 0, str(line.render()), app.chosen

    shown, text, chosen = run(body)
    assert shown, text
    assert ("Choose a file" if with_places else "removable") in text and chosen == []
