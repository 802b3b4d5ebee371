"""Import bundles: audit bundles from removable media, verified and placed by the engine, each outcome in words.

The auditor chooses bundle files (one at a time, or every bundle in a folder) and the
oversight private key file, types the key's passphrase, and the import runs in a worker with
progress, one bundle after another, as ``rfr oversight import`` does: the engine
(``engine.oversight.imports.import_bundle``) verifies each bundle before anything is kept and
decides what becomes of it (accepted; quarantined behind a gap; a replay; a fork, a rolled-back
or rebuilt log or an overlap, kept as evidence; or refused, nothing kept). The screen shows each
outcome in plain words with the engine's own account of it, and which need an auditor's look.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, DataTable, Static

from engine.errors import RfrError
from engine.oversight.imports import ATTENTION, REFUSED, ImportOutcome, import_bundle, read_bundle_file
from engine.oversight.keys import read_private_key
from engine.oversight.service import Oversight
from engine.security.users import Session
from rfr_tui.oversight.dialogs import BUNDLE_SUFFIXES, OversightFileChooser, PassphraseDialog
from rfr_tui.screens.oversight_base import OversightScreen, sentence, shown_path
from rfr_tui.text import plain, plain_cell
from rfr_tui.widgets.job_progress import JobProgress
from rfr_tui.widgets.state_label import SYMBOLS, StateLabel, Tone
from rfr_tui.wording import counted, for_a_person

INTRO = (
    "Choose the bundles a terminal exported to removable media, and the oversight private key they are encrypted "
    "to. Each bundle is verified before anything is kept, then placed against its terminal's accepted log: nothing "
    "is merged silently, and a bundle that fails a check changes nothing."
)
# Each outcome the engine gives, in words, and what it means to the auditor (never by colour alone: a symbol too).
OUTCOMES: dict[str, tuple[str, Tone]] = {
    "accepted": ("Accepted", Tone.GOOD),
    "quarantined": ("Gap: quarantined", Tone.WARNING),
    "replay": ("Replay: already held", Tone.NEUTRAL),
    "fork": ("Fork: kept as evidence", Tone.BAD),
    "rollback": ("Rolled back: kept as evidence", Tone.BAD),
    "rebuilt": ("Rebuilt: kept as evidence", Tone.BAD),
    "overlap": ("Overlap: kept as evidence", Tone.BAD),
    REFUSED: ("Refused: nothing kept", Tone.BAD),
}
COLUMNS: tuple[tuple[str, int | None], ...] = (
    ("Bundle", 24),
    ("Outcome", 15),
    ("Terminal, seq", 14),
    ("What the oversight did", 52),
)


def outcome_words(outcome: str) -> str:
    """``✔ Accepted``, ``⚠ Gap: quarantined``...: the outcome in words, with its symbol."""
    words, tone = OUTCOMES.get(outcome, (outcome.capitalize(), Tone.NEUTRAL))
    return f"{SYMBOLS[tone]} {words}"


def what_was_done(outcome: ImportOutcome) -> str:
    """The engine's account of one bundle, and the quarantined bundles it let in."""
    text = for_a_person(outcome.message)
    text = text[:1].upper() + text[1:]
    if outcome.released:
        numbers = ", ".join(str(n) for n in outcome.released)
        text += f". Then accepted the quarantined bundle{'s' if len(outcome.released) > 1 else ''} {numbers} it led to."
    return text


def verdict(outcomes: Sequence[ImportOutcome]) -> tuple[str, Tone, str]:
    """The whole import in one line (how many of each outcome), its tone, and what the auditor should do next."""
    counts = Counter(o.outcome for o in outcomes)
    parts = ", ".join(f"{n} {OUTCOMES.get(k, (k, Tone.NEUTRAL))[0].split(':')[0].lower()}" for k, n in counts.items())
    words = f"{len(outcomes)} bundle{'' if len(outcomes) == 1 else 's'} imported: {parts}"
    look = sum(1 for o in outcomes if o.outcome in ATTENTION)
    if look:
        return (
            words,
            Tone.BAD,
            f"{look} need{'s' if look == 1 else ''} an auditor's look: see Findings (f on the home screen).",
        )
    if counts.get("quarantined"):
        return (
            words,
            Tone.WARNING,
            "A quarantined bundle is accepted when the bundle with the missing range is imported.",
        )
    return words, Tone.GOOD, ""


def shown_name(path: Path) -> str:
    """A file name from hostile media, as the engine records it: printable, at most 200 characters."""
    return "".join(c if c.isprintable() else "?" for c in path.name)[:200]


def bundles_in(folder: Path) -> list[Path]:
    """The bundle files directly in ``folder`` (not hidden, not links), by name."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    return sorted(
        (p for p in entries if p.suffix.lower() in BUNDLE_SUFFIXES and not p.name.startswith(".") and _plain_file(p)),
        key=lambda p: p.name,
    )


def _plain_file(path: Path) -> bool:
    try:
        return path.is_file() and not path.is_symlink()
    except OSError:
        return False


def import_all(
    oversight: Oversight,
    session: Session,
    paths: Sequence[Path],
    key_file: Path,
    passphrase: str,
    progress: Callable[[int, int, str], None],
) -> list[ImportOutcome]:
    """What ``rfr oversight import`` does, bundle by bundle: a bundle the engine refuses is an outcome, not a stop."""
    oversight.auditor(session, "importing audit bundles")
    private = read_private_key(key_file, passphrase)
    outcomes: list[ImportOutcome] = []
    for number, path in enumerate(paths, start=1):
        progress(number - 1, len(paths), f"Verifying {shown_name(path)} ({number} of {len(paths)})")
        try:
            data = read_bundle_file(path)
            outcomes.append(import_bundle(oversight, session, data, private, source=path.name))
        except RfrError as exc:  # BundleRefused, or a file that cannot be read: recorded by the engine
            outcomes.append(ImportOutcome(shown_name(path), REFUSED, exc.diagnostics()))
    progress(len(paths), len(paths), "Done")
    return outcomes


class ImportScreen(OversightScreen):
    """Choose bundles and the key, import, see what became of each bundle."""

    TITLE_TEXT = "Import audit bundles"
    DEFAULT_CSS = """
    ImportScreen #import {
        height: 1fr;
        padding: 0 2;
    }
    ImportScreen #import-intro {
        height: auto;
        margin-top: 1;
        color: $text-muted;
    }
    ImportScreen .import--label {
        height: auto;
        margin-top: 1;
        text-style: bold;
    }
    ImportScreen #import-key, ImportScreen #import-pending {
        height: auto;
        padding-left: 2;
    }
    ImportScreen #import-buttons {
        height: auto;
        margin-top: 1;
    }
    ImportScreen #import-buttons Button {
        margin-right: 2;
    }
    ImportScreen #import-problem {
        height: auto;
        color: $warning;
    }
    ImportScreen #import-verdict {
        margin-top: 1;
    }
    ImportScreen #import-next {
        height: auto;
    }
    ImportScreen #import-results {
        height: auto;
        margin-top: 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="oversight_import.back"),
        Binding("a", "add", "Add bundles", id="oversight_import.add"),
        Binding("k", "key", "Private key", id="oversight_import.key"),
        Binding("c", "clear", "Clear the list", id="oversight_import.clear"),
        Binding("ctrl+r", "import", "Import", id="oversight_import.import"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[Path] = []
        self.outcomes: list[ImportOutcome] = []
        self.key_file: Path | None = None
        self.busy = False

    def body(self) -> ComposeResult:
        with VerticalScroll(id="import"):
            yield Static(plain(INTRO), id="import-intro")
            yield Static(plain("Oversight private key"), classes="import--label")
            yield Static("", id="import-key")
            yield Static(plain("Bundles to import"), classes="import--label")
            yield Static("", id="import-pending")
            with Horizontal(id="import-buttons"):
                yield Button(plain("Add bundles (a)"), id="add")
                yield Button(plain("Private key (k)"), id="key")
                yield Button(plain("Import (ctrl+r)"), id="import-now", variant="primary", disabled=True)
            yield Static("", id="import-problem")
            yield JobProgress(id="import-progress")
            yield StateLabel("Nothing imported yet", Tone.NEUTRAL, id="import-verdict")
            yield Static("", id="import-next")
            table: DataTable[Any] = DataTable(id="import-results", cursor_type="row", zebra_stripes=True)
            for label, width in COLUMNS:
                table.add_column(plain_cell(label), width=width)
            yield table

    def on_mount(self) -> None:
        self.key_file = self.desk.private_key_file
        self.query_one("#import-results", DataTable).display = False
        self.problem("")
        self._say(self.query_one("#import-next", Static), "")
        self._say_choices()
        self.query_one("#add", Button).focus()

    # ---- choosing --------------------------------------------------------------------------------

    def _say_choices(self) -> None:
        key = "none chosen: press k" if self.key_file is None else shown_path(self.key_file, self.desk.places())
        self.query_one("#import-key", Static).update(plain(key))
        listed = "\n".join(f"{n}. {shown_name(p)}" for n, p in enumerate(self.pending, start=1))
        self.query_one("#import-pending", Static).update(plain(listed or "none yet: press a"))
        self.query_one("#import-now", Button).disabled = self.busy or not self.pending
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "import":
            return not self.busy and bool(self.pending)
        if action in ("add", "key", "clear"):
            return not self.busy
        return True

    @staticmethod
    def _say(line: Static, text: str) -> None:
        """A line that takes no room while it has nothing to say."""
        line.update(plain(text))
        line.display = bool(text)

    def problem(self, text: str) -> None:
        self._say(self.query_one("#import-problem", Static), text)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        {"add": self.action_add, "key": self.action_key, "import-now": self.action_import}[event.button.id or "add"]()

    def action_add(self) -> None:
        self.app.push_screen(OversightFileChooser.bundles(self.desk.places()), self._chosen)

    def _chosen(self, path: Path | None) -> None:
        if path is None:
            return
        found = bundles_in(path) if path.is_dir() else [path]
        if not found:
            where = shown_path(path, self.desk.places())
            self.problem(f"There is no .rfrbundle file in {where}: choose another folder.")
            return
        self.problem("")
        self.pending += [p for p in found if p not in self.pending]
        self._say_choices()
        self.query_one("#import-now", Button).focus()

    def action_key(self) -> None:
        def chosen(path: Path | None) -> None:
            if path is not None:
                self.key_file = path
                self._say_choices()

        self.app.push_screen(OversightFileChooser.private_key(self.desk.places()), chosen)

    def action_clear(self) -> None:
        self.pending = []
        self.problem("")
        self._say_choices()

    # ---- importing -------------------------------------------------------------------------------

    def action_import(self) -> None:
        if self.busy or not self.pending:
            return
        key_file = self.key_file
        if key_file is None:
            self.problem("Choose the oversight private key file first (k): the bundles are encrypted to it.")
            return
        self.problem("")
        oversight, session = self.oversight, self.session

        def allowed(_user: object) -> None:  # refused before the key is opened, as at the command line
            key = shown_path(key_file, self.desk.places())
            purpose = (
                f"Import {counted(len(self.pending), 'bundle')}: the oversight private key is {key}. "
                "Type its passphrase."
            )
            self.app.push_screen(PassphraseDialog(purpose), lambda passphrase: self._run(key_file, passphrase))

        self.run_engine(
            lambda: oversight.auditor(session, "importing audit bundles"),
            allowed,
            failed=self._failed,
            group="import-check",
        )

    def _run(self, key_file: Path, passphrase: str | None) -> None:
        if not passphrase:
            return
        paths = list(self.pending)
        oversight, session = self.oversight, self.session
        self.busy = True
        self._say_choices()
        self.query_one("#import-progress", JobProgress).start("Importing audit bundles", total=len(paths))
        self.query_one("#import-verdict", StateLabel).set_state("Importing...", Tone.INFO)
        self._say(self.query_one("#import-next", Static), "")

        bar = self.query_one("#import-progress", JobProgress)

        def progress(done: int, total: int, detail: str) -> None:  # called in the worker's thread
            self.app.call_from_thread(bar.advance, done, total, detail)

        self.run_engine(
            lambda: import_all(oversight, session, paths, key_file, passphrase, progress),
            self.show,
            failed=self._failed,
            group="import",
        )

    def show(self, outcomes: list[ImportOutcome]) -> None:
        """What became of each bundle; the list is emptied (what was imported is in the table)."""
        self.query_one("#import-progress", JobProgress).finish()
        self.busy = False
        self.outcomes = outcomes
        self.pending = []
        self._say_choices()
        words, tone, next_step = verdict(outcomes)
        self.query_one("#import-verdict", StateLabel).set_state(words, tone)
        self._say(self.query_one("#import-next", Static), next_step)
        table = self.query_one("#import-results", DataTable)
        table.clear()
        for number, o in enumerate(outcomes, start=1):
            where = "-" if o.terminal is None else f"{o.terminal}\nseq {o.first}-{o.last}"
            table.add_row(
                plain_cell(o.source),
                plain_cell(outcome_words(o.outcome)),
                plain_cell(where),
                plain_cell(what_was_done(o)),
                height=None,
                key=str(number),
            )
        table.display = bool(outcomes)
        table.focus()

    def _failed(self, error: BaseException) -> None:
        """The import stopped: refused before any bundle (no Auditor role, the key or its passphrase: nothing
        changed, since ``import_all`` takes a refused bundle as an outcome), or an unexpected error part way."""
        self.query_one("#import-progress", JobProgress).finish()
        self.busy = False
        self._say_choices()
        verdict = self.query_one("#import-verdict", StateLabel)
        if isinstance(error, RfrError):
            verdict.set_state("Not imported: nothing changed", Tone.BAD)
        else:
            verdict.set_state("Import stopped: bundles imported before it are kept (see Terminals)", Tone.BAD)
        self._say(self.query_one("#import-next", Static), "")
        self.problem(sentence(error, "Something unexpected stopped the import; note the time and tell an engineer."))

    def action_back(self) -> None:
        if self.busy:
            self.problem("Wait for the import to finish.")
            return
        self.app.pop_screen()
