"""Verifying the audit log: the chain, the signed heads and the keys, against a key the auditor trusts.

The engine does the verification (``terminal.audit.verify``) and records that it was done; this
screen chooses what to check against, runs it in a worker with progress, and shows the verdict
in words: verified, with the head to write down for next time, or FAILED with every problem the
engine found, one a line, in its words.

What to check against: by default the terminal's own audit key; or a public key file the
auditor brings (chosen from removable media or the home folder, read with
``engine.files.read_regular_file``: a regular file only, never a link or a device); and,
optionally, the head the auditor recorded last time (``SEQ:HASH``), the only thing that shows a
log rolled back or rebuilt by someone holding the terminal's own keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar, Self

from rich.text import Text, TextType
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, DirectoryTree, Footer, Input, OptionList, ProgressBar, Static
from textual.widgets.directory_tree import DirEntry
from textual.widgets.option_list import Option
from textual.widgets.tree import TreeNode

from engine.audit.verify import VerifyResult
from engine.errors import AuditError
from engine.files import read_regular_file
from rfr_tui.screens.base import RfrScreen
from rfr_tui.text import plain, plain_cell, plain_line
from rfr_tui.widgets.file_chooser import Place, default_places
from rfr_tui.widgets.state_label import StateLabel, Tone
from rfr_tui.wording import said

PUBLIC_KEY_LIMIT = 16 * 1024  # a PEM public key is a few hundred bytes; anything this big is not one
HEAD_FORMAT = re.compile(r"^(\d+):([0-9a-f]{64})$")
BLOCK = 4  # hex digits in a group of the hash, as written down by hand
BLOCKS_PER_LINE = 8

# What the verdict can and cannot show (the README's "What audit verification can and cannot detect").
WITHOUT_HEAD = (
    "Without a head recorded earlier, verification shows any change made by someone holding only the workspace "
    "key, but not a log rolled back or rebuilt and re-signed by someone who also holds this terminal's audit "
    "signing key file: write down the head a successful verification gives, and give it next time."
)
WITH_HEAD = (
    "Checked against the head you recorded earlier: a log rolled back or rebuilt since then, even one re-signed "
    "with this terminal's own key, fails here."
)
OWN_KEY = "this terminal's own audit key"


def parse_head(text: str) -> tuple[int, str] | None:
    """``SEQ:HASH`` as written down (spaces in the hash allowed) as (seq, hash); None if empty.

    Raises ``ValueError`` with a sentence naming the expected form when it is not one.
    """
    compact = "".join(text.split()).lower()
    if not compact:
        return None
    match = HEAD_FORMAT.fullmatch(compact)
    if match is None:
        raise ValueError(
            "The recorded head is not SEQ:HASH (a sequence number, a colon and 64 hex digits; spaces are "
            "allowed): check what you wrote down."
        )
    return int(match.group(1)), match.group(2)


def grouped_hash(digest: str, *, block: int = BLOCK, per_line: int = BLOCKS_PER_LINE) -> list[str]:
    """The hash in blocks of ``block`` digits, ``per_line`` blocks a line: easy to copy and compare by eye."""
    blocks = [digest[i : i + block] for i in range(0, len(digest), block)]
    return [" ".join(blocks[i : i + per_line]) for i in range(0, len(blocks), per_line)]


def verdict_lines(result: VerifyResult, source: str) -> list[str]:
    """The verdict in words: what was checked and what was found, one problem a line."""
    if result.ok:
        lines = [
            f"Audit log verified with {source}: {result.events:,} events, {result.checkpoints:,} signed heads, "
            f"signed through seq {result.signed_through}.",
        ]
        if result.head is not None:
            seq, digest = result.head
            hash_lines = grouped_hash(digest)
            lines += [
                "",
                "Record this head for next time:",
                f"  Seq:   {seq}",
                f"  Hash:  {hash_lines[0]}",
                *(f"         {line}" for line in hash_lines[1:]),
                "",
                "Give it next time as SEQ:HASH (spaces in the hash are fine).",
            ]
        return lines
    count = len(result.problems)
    return [
        f"The audit log FAILED verification with {source} ({result.events:,} events read): "
        f"{count} {'problem' if count == 1 else 'problems'}:",
        *(f"• {problem}" for problem in result.problems),
    ]


class VerifyScreen(RfrScreen):
    """Verify the audit log: choose the key and the recorded head, run it, read the verdict."""

    TITLE_TEXT = "Verify the audit log"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="audit_verify.back"),
        Binding("v", "verify", "Verify", id="audit_verify.verify"),
        Binding("k", "choose_key", "Public key file", id="audit_verify.choose_key"),
        Binding("t", "own_key", "Terminal's own key", id="audit_verify.own_key"),
        Binding("h", "head", "Recorded head", id="audit_verify.head"),
    ]

    class Progress(Message):
        """Events read so far, posted from the verification's thread (never blocks it)."""

        def __init__(self, read: int, total: int) -> None:
            super().__init__()
            self.read = read
            self.total = total

    def __init__(self, places: Sequence[Place] | None = None) -> None:
        super().__init__()
        self._places = list(places) if places is not None else None
        self.key_file: Path | None = None
        self.key_shown: str = OWN_KEY
        self.result: VerifyResult | None = None
        self.running = False

    def body(self) -> ComposeResult:
        with VerticalScroll(id="verify"):
            with Horizontal(classes="verify--row"):
                yield Static(plain("Check against:"), classes="verify--label")
                yield Static(plain(OWN_KEY), id="verify-key")
            with Horizontal(classes="verify--row"):
                yield Button(plain("Choose a public key file (k)"), id="choose-key")
                yield Button(plain("Use this terminal's own key (t)"), id="own-key")
            with Horizontal(classes="verify--row"):
                yield Static(plain("Head recorded last time:"), classes="verify--label")
                yield Input(placeholder="SEQ:HASH (optional)", id="verify-expect")
            with Horizontal(classes="verify--row"):
                yield Button(plain("Verify the audit log (v)"), id="verify-now", variant="primary")
            yield Static("", id="verify-problem", classes="auditor--problem")
            yield ProgressBar(show_eta=False, id="verify-progress")
            yield Static("", id="verify-status")
            yield StateLabel("Not verified yet", Tone.NEUTRAL, id="verify-state")
            yield Vertical(id="verify-verdict")
            yield Static(plain(WITHOUT_HEAD), id="verify-limits", classes="verify--limits")

    def on_mount(self) -> None:
        self.query_one("#verify-progress", ProgressBar).display = False
        self.query_one("#verify-now", Button).focus()

    # ---- choosing what to check against ------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_head(self) -> None:
        self.query_one("#verify-expect", Input).focus()

    def action_own_key(self) -> None:
        self.key_file = None
        self._show_key(OWN_KEY)

    def action_choose_key(self) -> None:
        places = self._places if self._places is not None else default_places()
        self.app.push_screen(KeyFileChooser(places), self._key_chosen)

    def _key_chosen(self, chosen: tuple[str, Path] | None) -> None:
        if chosen is None:
            return
        shown, path = chosen
        self.key_file = path
        self._show_key(f"the public key file {shown}")

    def _show_key(self, words: str) -> None:
        self.key_shown = words
        self.query_one("#verify-key", Static).update(plain(words))
        self.query_one("#verify-problem", Static).update("")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "choose-key":
            self.action_choose_key()
        elif event.button.id == "own-key":
            self.action_own_key()
        elif event.button.id == "verify-now":
            self.action_verify()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_verify()

    # ---- verifying -----------------------------------------------------------------------------

    def action_verify(self) -> None:
        if self.running:
            return
        problem = self.query_one("#verify-problem", Static)
        try:
            expect = parse_head(self.query_one("#verify-expect", Input).value)
        except ValueError as error:
            problem.update(plain(str(error)))
            self.query_one("#verify-expect", Input).focus()
            return
        problem.update("")
        terminal, session, key_file, source = self.terminal, self.session, self.key_file, self.key_shown

        def progress(read: int, total: int) -> None:
            # Posted, not called: ``post_message`` is thread-safe and never waits for the interface, and the
            # verification holds the workspace lock while it reads, so waiting (``call_from_thread``) could
            # deadlock with anything on the interface's thread that reads the database.
            self.post_message(VerifyScreen.Progress(read, total))

        def work() -> VerifyResult:
            key = None
            if key_file is not None:
                key = read_regular_file(key_file, limit=PUBLIC_KEY_LIMIT, what="public key file", error=AuditError)
            return terminal.audit.verify(
                session,
                public_key=key,
                expect=expect,
                progress=progress,
            )

        self._busy(True)
        self.run_engine(
            work,
            lambda result: self._show_result(result, source, expect is not None),
            failed=self._failed,
            group="audit-verify",
        )

    def on_verify_screen_progress(self, event: VerifyScreen.Progress) -> None:
        event.stop()
        if not self.running:
            return
        bar = self.query_one("#verify-progress", ProgressBar)
        bar.update(total=max(event.total, 1), progress=event.read)
        words = (
            f"Read {event.read:,} of {event.total:,} events; checking the signed heads and keys..."
            if event.read >= event.total
            else f"Reading events: {event.read:,} of {event.total:,}..."
        )
        self.query_one("#verify-status", Static).update(plain(words))

    def _busy(self, on: bool) -> None:
        self.running = on
        for button in self.query(Button):
            button.disabled = on
        self.query_one("#verify-expect", Input).disabled = on
        bar = self.query_one("#verify-progress", ProgressBar)
        bar.display = on
        if on:
            bar.update(total=None, progress=0)
            self.query_one("#verify-state", StateLabel).set_state("Verifying...", Tone.INFO)
            self.query_one("#verify-status", Static).update(plain("Verifying the audit log: working..."))
            self.query_one("#verify-verdict", Vertical).remove_children()

    def _show_result(self, result: VerifyResult, source: str, with_head: bool) -> None:
        self._busy(False)
        self.show_verdict(result, source, with_head=with_head)
        self.query_one("#verify-now", Button).focus()

    def show_verdict(self, result: VerifyResult, source: str, *, with_head: bool = False) -> None:
        """Show ``result``: the state in words and symbol, then what was found."""
        self.result = result
        state = self.query_one("#verify-state", StateLabel)
        count = len(result.problems)
        if result.ok:
            state.set_state("VERIFIED: no problem found", Tone.GOOD)
        else:
            state.set_state(f"FAILED: {count} {'problem' if count == 1 else 'problems'} found", Tone.BAD)
        self.query_one("#verify-status", Static).update("")
        verdict = self.query_one("#verify-verdict", Vertical)
        verdict.remove_children()
        verdict.mount_all(verdict_widgets(verdict_lines(result, source)))
        self.query_one("#verify-limits", Static).update(plain(WITH_HEAD if with_head else WITHOUT_HEAD))

    def _failed(self, error: BaseException) -> None:
        self._busy(False)
        self.query_one("#verify-state", StateLabel).set_state("Not verified", Tone.WARNING)
        self.query_one("#verify-status", Static).update("")
        words = said(error, "the verification could not run: try again")
        self.query_one("#verify-problem", Static).update(plain(f"Not verified: {words}"))
        self.query_one("#verify-now", Button).focus()

    @property
    def verdict_text(self) -> str:
        """What the verdict shows, as text, a problem a line (for tests)."""
        lines: list[str] = []
        for widget in self.query_one("#verify-verdict", Vertical).children:
            if widget.has_class("verify--problem"):
                lines.append(f"• {widget.query_one('.verify--problem-text', Static).render()}")
            elif isinstance(widget, Static):
                lines += str(widget.render()).split("\n")
        return "\n".join(lines)


def verdict_widgets(lines: list[str]) -> list[Widget]:
    """Lines of text as they are; each problem ("• ...") as a bullet with its text hanging beside it."""
    widgets: list[Widget] = []
    text: list[str] = []
    for line in [*lines, None]:
        if line is not None and not line.startswith("• "):
            text.append(line)
            continue
        if text:
            widgets.append(Static(plain("\n".join(text))))
            text = []
        if line is not None:
            widgets.append(
                Horizontal(
                    Static(plain("•"), classes="verify--bullet"),
                    Static(plain(line.removeprefix("• ")), classes="verify--problem-text"),
                    classes="verify--problem",
                )
            )
    return widgets


class KeyTree(DirectoryTree):
    """Folders and files under one place; hidden files left out; names shown exactly, never as markup."""

    def __init__(self, place: Path, label: str, *, id: str | None = None) -> None:
        self._place_label = label
        super().__init__(place, id=id)

    def reset_node(self, node: TreeNode[DirEntry], label: TextType, data: DirEntry | None = None) -> Self:
        # The root is the place, by its name ("USB stick"), not by its path.
        return super().reset_node(node, plain_cell(self._place_label) if node is self.root else label, data)

    def process_label(self, label: TextType) -> Text:
        return plain_line(label) if isinstance(label, str) else label

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [path for path in paths if not path.name.startswith(".")]


class KeyFileChooser(ModalScreen[tuple[str, Path] | None]):
    """Choose the auditor's public key file: a place (removable media, home folder), then the file in it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="key_chooser.back"),
    ]

    def __init__(self, places: Sequence[Place]) -> None:
        super().__init__()
        self._places = list(places)
        self._place: Place | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog key-chooser"):
            yield Static(plain("Choose the audit public key file"), classes="dialog--title")
            if self._places:
                yield Static(
                    plain("Where is it? Choose a place with the arrow keys and Enter, then the file."),
                    id="key-hint",
                )
                yield OptionList(
                    *[Option(plain(place.label), id=f"place-{i}") for i, place in enumerate(self._places)],
                    id="key-places",
                )
            else:
                yield Static(
                    plain("No removable media is mounted and there is no home folder: insert the media and try again."),
                    id="key-hint",
                )
            yield Static(plain("Enter: choose   Escape: back"), classes="dialog--hint")
        yield Footer()

    def on_mount(self) -> None:
        if self._places:
            self.query_one("#key-places", OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        index = int((event.option.id or "place-0").removeprefix("place-"))
        self.open_place(index)

    def open_place(self, index: int) -> None:
        place = self._places[index]
        self._place = place
        for tree in self.query(KeyTree):
            tree.remove()
        tree = KeyTree(place.path, place.label, id="key-tree")
        self.query_one("#key-places", OptionList).display = False
        self.query_one("#key-hint", Static).update(
            plain(f"{place.label}: choose the file with the arrow keys and Enter (Escape: back to the places).")
        )
        self.query_one(".key-chooser").mount(tree, before=self.query_one(".dialog--hint"))
        tree.focus()

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        assert self._place is not None
        place = self._place
        try:
            shown = f"{place.label}: {event.path.relative_to(place.path.expanduser().resolve())}"
        except ValueError:
            shown = f"{place.label}: {event.path.name}"
        self.dismiss((shown, event.path))

    def action_back(self) -> None:
        if self._place is None:
            self.dismiss(None)
            return
        self._place = None
        for tree in self.query(KeyTree):
            tree.remove()
        self.query_one("#key-places", OptionList).display = True
        self.query_one("#key-hint", Static).update(
            plain("Where is it? Choose a place with the arrow keys and Enter, then the file.")
        )
        self.query_one("#key-places", OptionList).focus()
