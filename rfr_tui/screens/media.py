"""Removable media: signed packages from the central unit, read, verified, shown and applied by an engineer.

The engine does everything (``terminal.media``): verifying the medium with The Update
Framework from the terminal's trusted root, planning each package for this terminal,
copying and checking every file, and switching it in in one transaction, all recorded as the
engineer's. This screen chooses the medium (a mount under /media or /run/media, or a typed
path), reads it in a worker with progress, shows what each package would change (subjects
added and removed, accounts changed, policy version, face model), asks before applying, applies
in a worker with progress, and says what happened, or why the medium was refused (nothing
changes then), in the engine's words.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, DataTable, Input, OptionList, Static
from textual.widgets.option_list import Option

from engine.media.apply import ApplyResult
from engine.media.reader import FoundPackage, MediaProgress, MediaReading, Status
from engine.media.service import MOUNT_ROOTS, MediaStatus, media_folders
from rfr_tui.dialogs.confirm import ConfirmDialog
from rfr_tui.screens.base import RfrScreen
from rfr_tui.text import plain, plain_cell
from rfr_tui.widgets.job_progress import JobProgress
from rfr_tui.widgets.state_label import StateLabel, Tone
from rfr_tui.widgets.status_bar import StatusBar
from rfr_tui.wording import counted, said

INTRO = (
    "Library updates (additions and weeding), user accounts, policy versions and face model updates come from "
    "the central unit on removable media, signed. Choose the medium, read it: the terminal checks every "
    "signature against the central unit's root it trusts and shows what each package for this terminal "
    "would change. Nothing changes until you apply it; a medium that fails any check changes nothing."
)
NO_MEDIA = "No mounted media found under /media or /run/media: insert the medium, or type its path."
PHASES = {
    "verifying": "Checking signatures and reading the packages",
    "copying": "Copying and checking each file",
    "staged": "Every file copied and checked",
    "applying": "Applying",
    "committing": "Switching in",
    "committed": "Applied",
    "indexing": "Bringing library indexes up to date",
    "done": "Done",
}


def trust_lines(status: MediaStatus) -> list[str]:
    """What the terminal trusts and who it is, in words."""
    groups = ", ".join(status.groups) or "none"
    scope = f"This terminal: force {status.force or 'NOT CONFIGURED'}, terminal groups {groups}."
    if status.trust is None:
        return [
            "No central unit root is installed: an engineer installs it once with "
            "'rfr media trust ROOT.json --as ENGINEER' before any medium can be read.",
            scope,
        ]
    t = status.trust
    return [
        f"Trusts the central unit's root version {t.newest_version} (version {t.version} installed by "
        f"{t.installed_by} at {t.installed_at[:16].replace('T', ' ')} UTC); newest signed issue time seen: "
        f"{(t.time_floor or 'none yet')[:16].replace('T', ' ')}.",
        scope,
    ]


def package_summary(package: FoundPackage) -> str:
    """One line for the table: what a package changes, or why it is not applied."""
    changes = package.changes
    if package.status is not Status.APPLY or changes is None:
        return package.reason
    if changes.library is not None:
        lib = changes.library
        return (
            f"library {lib.name}: adds {len(lib.subjects_added)} subjects ({lib.images_added} images), "
            f"removes {len(lib.subjects_removed)}"
        )
    if changes.users:
        changed = sum(1 for c in changes.users if c.change != "none")
        return f"changes {changed} account{'' if changed == 1 else 's'}"
    if changes.policy_to is not None:
        return f"policy {changes.policy_from} -> {changes.policy_to}"
    return f"face model -> {changes.model}"


class MediaScreen(RfrScreen):
    """Choose a medium, read and verify it, see what it changes, apply it."""

    TITLE_TEXT = "Removable media"
    MOUNT_ROOTS: ClassVar[tuple[Path, ...]] = MOUNT_ROOTS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="media.back"),
        Binding("ctrl+r", "read", "Read and verify", id="media.read"),
        Binding("ctrl+s", "apply", "Apply", id="media.apply"),
        Binding("ctrl+n", "look_again", "Look for media", id="media.look_again"),
        Binding("x", "stop", "Stop copying", id="media.stop"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._reading: MediaReading | None = None
        self._cancel: threading.Event | None = None
        self._busy = False
        self._mounts: list[Path] = []

    def body(self) -> ComposeResult:
        with VerticalScroll(classes="engineer engineer--form media"):
            yield Static(plain(INTRO), classes="engineer--intro")
            yield Static("", id="media-trust", classes="engineer--muted")
            yield Static(plain("Mounted media"), classes="field--label")
            yield OptionList(id="media-mounts")
            yield Static(plain("Medium"), classes="field--label")
            yield Input(id="medium", placeholder="/media/usb0")
            with Horizontal(classes="engineer--buttons"):
                yield Button(plain("Read and verify (ctrl+r)"), id="read", variant="primary")
                yield Button(plain("Apply (ctrl+s)"), id="apply", variant="warning", disabled=True)
            yield Static("", id="media-problem", classes="form--problem")
            yield JobProgress(id="media-progress")
            yield StateLabel("Nothing read yet", Tone.NEUTRAL, id="media-verdict")
            yield Static("", id="media-detail")
            yield DataTable(id="media-packages", cursor_type="row", zebra_stripes=True)
            yield Static("", id="media-changes")

    def on_mount(self) -> None:
        table = self.query_one("#media-packages", DataTable)
        for label, key in [("Package", "package"), ("Status", "status"), ("What it changes", "changes")]:
            table.add_column(plain_cell(label), key=key)
        table.display = False
        self.action_look_again()
        terminal, session = self.terminal, self.session
        self.run_engine(lambda: terminal.media.status(session), self._show_trust, group="media-status")
        self.query_one("#medium", Input).focus()

    # ---- what may be done now --------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self._cancel is not None
        if action == "apply":
            return not self._busy and self._reading is not None and bool(self._reading.to_apply)
        if action in ("read", "look_again"):
            return not self._busy
        return True

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.query_one("#read", Button).disabled = busy
        ready = self._reading is not None and bool(self._reading.to_apply)
        self.query_one("#apply", Button).disabled = busy or not ready
        self.refresh_bindings()

    def problem(self, text: str) -> None:
        self.query_one("#media-problem", Static).update(plain(text))

    # ---- choosing the medium ---------------------------------------------------------------------

    def action_look_again(self) -> None:
        self._mounts = media_folders(self.MOUNT_ROOTS)
        mounts = self.query_one("#media-mounts", OptionList)
        mounts.clear_options()
        if self._mounts:
            mounts.add_options([Option(plain(str(path)), id=f"mount-{i}") for i, path in enumerate(self._mounts)])
        else:
            mounts.add_option(Option(plain(NO_MEDIA), disabled=True))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        index = int((event.option.id or "mount-0").removeprefix("mount-"))
        self.query_one("#medium", Input).value = str(self._mounts[index])
        self.action_read()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_read()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        (self.action_apply if event.button.id == "apply" else self.action_read)()

    def _show_trust(self, status: MediaStatus) -> None:
        self.query_one("#media-trust", Static).update(plain("\n".join(trust_lines(status))))

    # ---- reading ---------------------------------------------------------------------------------

    def _progress(self, p: MediaProgress) -> None:
        detail = PHASES.get(p.phase, p.phase)
        if p.phase == "copying" and p.total:
            detail += f": {p.done / 2**20:,.1f} of {p.total / 2**20:,.1f} MiB"
        elif p.total > 1:
            detail += f": {p.done:,} of {p.total:,}"
        self.query_one("#media-progress", JobProgress).advance(p.done, max(p.total, 1), detail)

    def _report(self, p: MediaProgress) -> None:
        self.app.call_from_thread(self._progress, p)

    def action_read(self) -> None:
        if self._busy:
            return
        text = self.query_one("#medium", Input).value.strip()
        if not text:
            self.problem("Choose a mounted medium in the list, or type its path.")
            return
        self.problem("")
        medium = Path(text).expanduser()
        self._reading = None
        self._set_busy(True)
        self.query_one("#media-progress", JobProgress).start("Reading and verifying the medium")
        self.query_one("#media-verdict", StateLabel).set_state("Reading...", Tone.INFO)
        terminal, session = self.terminal, self.session
        self.run_engine(
            lambda: terminal.media.read(session, medium, progress=self._report),
            self._read_done,
            group="media",
            failed=self._refused,
        )

    def _read_done(self, reading: MediaReading) -> None:
        self.query_one("#media-progress", JobProgress).finish()
        self._reading = reading
        todo = reading.to_apply
        verdict = self.query_one("#media-verdict", StateLabel)
        if todo:
            verdict.set_state(f"Verified: {counted(len(todo), 'package')} for this terminal to apply", Tone.GOOD)
        else:
            verdict.set_state("Verified: nothing new on this medium for this terminal", Tone.NEUTRAL)
        self.query_one("#media-detail", Static).update(
            plain(
                f"Signed by the central unit (root version {reading.root_version}), issued "
                f"{reading.issued_at:%Y-%m-%d %H:%M} UTC. {reading.total_bytes:,} bytes to copy."
            )
        )
        table = self.query_one("#media-packages", DataTable)
        table.clear()
        for package in reading.packages:
            what = package_summary(package)
            table.add_row(
                plain_cell(package.package_id),
                plain_cell(package.status.value),
                plain_cell(what),
                key=package.package_id,
            )
        table.display = bool(reading.packages)
        lines: list[str] = []
        for package in todo:
            lines.append(f"{package.package_id}: {package.manifest.description if package.manifest else ''}")
            lines += [f"  {line}" for line in (package.changes.lines() if package.changes else [])]
        self.query_one("#media-changes", Static).update(plain("\n".join(lines)))
        self._set_busy(False)
        if todo:
            self.query_one("#apply", Button).focus()

    def _refused(self, error: BaseException) -> None:
        self.query_one("#media-progress", JobProgress).finish()
        self._cancel = None
        self._reading = None
        why = said(error, f"an unexpected error ({error.__class__.__name__})")
        self.query_one("#media-verdict", StateLabel).set_state(
            "Refused: nothing was changed on this terminal", Tone.BAD
        )
        self.query_one("#media-detail", Static).update(plain(why[:1].upper() + why[1:]))
        self.query_one("#media-packages", DataTable).display = False
        self.query_one("#media-changes", Static).update("")
        self._set_busy(False)

    # ---- applying --------------------------------------------------------------------------------

    def action_apply(self) -> None:
        reading = self._reading
        if self._busy or reading is None or not reading.to_apply:
            return
        summary = [f"{p.package_id}: {'; '.join(p.changes.lines()[:3]) if p.changes else ''}" for p in reading.to_apply]
        question = (
            f"Apply {counted(len(reading.to_apply), 'package')} from this medium to this terminal? "
            "It is recorded as yours.\n\n" + "\n".join(summary)
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._apply(reading)

        self.app.push_screen(ConfirmDialog(question, yes="Apply", title="Apply the medium", dangerous=True), answered)

    def _apply(self, reading: MediaReading) -> None:
        self._set_busy(True)
        cancel = threading.Event()
        self._cancel = cancel
        self.refresh_bindings()
        self.query_one("#media-progress", JobProgress).start(
            "Applying the medium", total=max(reading.total_bytes, 1), hint="x stops while files are being copied"
        )
        self.query_one("#media-verdict", StateLabel).set_state("Applying...", Tone.INFO)
        terminal, session = self.terminal, self.session
        self.run_engine(
            lambda: terminal.media.apply(session, reading, progress=self._report, cancel=cancel),
            self._applied,
            group="media",
            failed=self._refused,
        )

    def _applied(self, result: ApplyResult) -> None:
        self.query_one("#media-progress", JobProgress).finish()
        self._cancel = None
        self._reading = None
        self.query_one("#media-verdict", StateLabel).set_state(
            f"Applied: {counted(len(result.packages), 'package')}, recorded as yours", Tone.GOOD
        )
        self.query_one("#media-detail", Static).update(plain("\n".join(result.lines())))
        self.query_one("#media-packages", DataTable).display = False
        self.query_one("#media-changes", Static).update("")
        self._set_busy(False)
        self.query_one(StatusBar).refresh_status()  # libraries and the policy in force changed
        terminal, session = self.terminal, self.session
        self.run_engine(lambda: terminal.media.status(session), self._show_trust, group="media-status")

    def action_stop(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.query_one("#media-progress", JobProgress).say("Stopping: nothing will be changed")

    def action_back(self) -> None:
        if self._busy:
            self.problem("Wait for the medium to be read or applied (x stops while files are being copied).")
            return
        self.app.pop_screen()
