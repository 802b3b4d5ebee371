"""Progress of a long job running in a worker (an enrolment, an index measurement): what, how far, how to stop.

The job posts its progress to the interface's thread (``App.call_from_thread``); this widget
only shows it. A job that cannot say how far it is shows a moving bar and the words
"working"; one that can be stopped says which key stops it.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import ProgressBar, Static

from rfr_tui.text import plain


class JobProgress(Vertical):
    """A line saying what is being done, a progress bar, and a hint (which key stops it)."""

    def compose(self) -> ComposeResult:
        yield Static("", classes="job-progress--what")
        yield ProgressBar(total=None, show_eta=False, classes="job-progress--bar")
        yield Static("", classes="job-progress--detail")
        yield Static("", classes="job-progress--hint")

    def on_mount(self) -> None:
        self.display = False

    def start(self, what: str, *, total: int | None = None, hint: str = "") -> None:
        """Show the job as started: ``total`` steps, or None when it cannot say how far it is."""
        self.query_one(".job-progress--what", Static).update(plain(what))
        self.query_one(".job-progress--detail", Static).update(plain("Working..."))
        self.query_one(".job-progress--hint", Static).update(plain(hint))
        bar = self.query_one(ProgressBar)
        bar.update(total=total, progress=0)
        self.display = True

    def advance(self, done: int, total: int, detail: str = "") -> None:
        """``done`` of ``total`` steps, and a line about the last one."""
        self.query_one(ProgressBar).update(total=max(total, 1), progress=done)
        self.query_one(".job-progress--detail", Static).update(plain(detail or f"{done:,} of {total:,}"))

    def say(self, hint: str) -> None:
        """Change the hint (for example: stopping after the current step)."""
        self.query_one(".job-progress--hint", Static).update(plain(hint))

    def finish(self) -> None:
        """Hide the progress: the caller shows what the job did."""
        self.display = False
