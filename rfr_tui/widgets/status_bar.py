"""The status bar every signed-in screen shows: who is signed in, the terminal, the inference device actually
used, library sizes, and the policy version (issue 15).

It is one line, and must stay one line from an 80-column terminal up: the fullest wording that fits
its width is shown (words for every part, so nothing depends on colour), then shorter ones (narrower
separators, libraries counted rather than listed, roles left to the home screen, fewer labels); only
when even the shortest does not fit is its end cut, with an ellipsis saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar, cast

from rich.cells import cell_len
from textual.events import Resize
from textual.widgets import Static
from textual.worker import Worker

from engine.terminal import TerminalStatus
from rfr_tui.text import plain, visible

REFRESH_SECONDS = 5.0
ELLIPSIS = "…"
S = TypeVar("S")


def _libraries(status: TerminalStatus, *, listed: bool) -> str:
    if not status.libraries:
        return "no libraries"
    if listed or len(status.libraries) == 1:
        return ", ".join(f"{lib.name} {lib.images:,}" for lib in status.libraries)
    images = sum(lib.images for lib in status.libraries)
    return f"{len(status.libraries)} libraries, {images:,} images"


def wordings(status: TerminalStatus) -> list[str]:
    """Every way the status bar can say ``status``, fullest first; each one line, each naming every part."""
    who_full = f"{status.user} ({', '.join(status.roles)})" if status.user else "nobody signed in"
    who_short = status.user or "nobody signed in"
    if status.face_engine in ("ready", "loading"):
        device = status.device if status.face_engine == "ready" else "face engine loading"
    else:  # why is on the System status screen; here, one word
        device = "face engine unavailable"
    policy = f"Policy {status.policy_version}"
    out = []
    for separator, who, listed in (
        ("  |  ", who_full, True),
        (" | ", who_full, True),
        (" | ", who_full, False),
        (" | ", who_short, False),
    ):
        parts = (
            f"Signed in: {who}",
            f"Terminal: {status.terminal}",
            f"Device: {device}",
            f"Libraries: {_libraries(status, listed=listed)}",
            policy,
        )
        out.append(separator.join(parts))
    libraries = _libraries(status, listed=False)
    out.append(" | ".join((who_short, f"Terminal: {status.terminal}", f"Device: {device}", libraries, policy)))
    out.append(" | ".join((who_short, status.terminal, device, libraries, policy)))
    return [visible(w).replace("\n", " ").replace("\t", " ") for w in out]  # one line, whatever a name holds


def fit(options: Sequence[str], width: int | None = None) -> str:
    """The first of ``options`` (fullest first) that fits in ``width`` cells (no width: the fullest); if none fits,
    the last, cut to the width at a whole part (``" | "``) where it can be, with an ellipsis at its end."""
    if width is None:
        return options[0]
    for text in options:
        if cell_len(text) <= width:
            return text
    shortest = options[-1]
    if width <= 1:
        return ELLIPSIS[:width]
    cut = ""
    for character in shortest:
        if cell_len(cut + character) > width - 1:
            break
        cut += character
    whole = cut.rfind(" | ")
    if whole > 0:  # whole parts only: a name cut in half reads as another name
        cut = cut[: whole + 3]
    return cut + ELLIPSIS


def describe(status: TerminalStatus, width: int | None = None) -> str:
    """The fullest wording of ``status`` that fits in ``width`` cells (``fit``)."""
    return fit(wordings(status), width)


class StatusLine(Static, Generic[S]):
    """One line docked above the footer, saying what ``read()`` returns (read in a worker, again every
    ``REFRESH_SECONDS`` when set) in the fullest of ``wordings()`` that fits, fitted again on every resize."""

    DEFAULT_CSS = """
    StatusLine {
        dock: bottom;
        margin-bottom: 1;  /* above the footer, which is docked at the very bottom */
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $foreground;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """
    REFRESH_SECONDS: float | None = None
    WAITING = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._status: S | None = None

    @property
    def status(self) -> S | None:
        """What the line last read (None until the first read comes back)."""
        return self._status

    def reader(self) -> Callable[[], S] | None:
        """How to read the status now (None: not yet, and ``WAITING`` is said)."""
        raise NotImplementedError

    def wordings(self, status: S) -> list[str]:
        raise NotImplementedError

    def on_mount(self) -> None:
        self.refresh_status()
        if self.REFRESH_SECONDS is not None:
            self.set_interval(self.REFRESH_SECONDS, self.refresh_status, name="status-line")

    def refresh_status(self) -> None:
        read = self.reader()
        if read is None:
            self.update(plain(self.WAITING))
            return
        self.run_worker(read, thread=True, exclusive=True, group="status-line", exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "status-line" or not worker.is_finished:
            return
        event.stop()
        if worker.error is None and worker.result is not None:
            self._status = cast(S, worker.result)
            self._show()

    def on_resize(self, event: Resize) -> None:
        self._show()

    def _show(self) -> None:
        if self._status is not None:
            self.update(plain(fit(self.wordings(self._status), self.content_size.width or None)))


class StatusBar(StatusLine[TerminalStatus]):
    """The terminal's: refreshed in the background every few seconds (the status reads the database)."""

    REFRESH_SECONDS = REFRESH_SECONDS
    WAITING = "Terminal opening..."

    def reader(self) -> Callable[[], TerminalStatus] | None:
        app: Any = self.app
        terminal = getattr(app, "terminal_or_none", None)
        if terminal is None:
            return None
        session = getattr(app, "session", None)
        return lambda: terminal.status(session)

    def wordings(self, status: TerminalStatus) -> list[str]:
        return wordings(status)
