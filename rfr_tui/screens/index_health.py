"""Index health: what this terminal measured of each library's index, and measuring it again.

For each library: the index profile, the search expansion in force and where it comes from (the
profile's, or one measured for this library), and the last recall measured here and when. "Measure
now" checks a library's index against comparing every template (``Libraries.measure``); "measure
and tune" also keeps the smallest expansion that reaches the recall target. Both run in a worker
and are recorded by the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from engine.audit.clock import parse_utc
from engine.library.check import IndexCheck, IndexTuning
from engine.library.service import IndexHealth
from rfr_tui.screens.base import RfrScreen
from rfr_tui.text import plain, plain_cell
from rfr_tui.widgets.job_progress import JobProgress

INTRO = (
    "Recall@K: of the K reference images nearest a face, found by comparing it with every template, the share "
    "the index finds. This terminal measures it on each library's own templates, with its own processor. "
    "Measuring takes from seconds to minutes on a large library; searches go on meanwhile."
)


def last_check_text(health: IndexHealth) -> str:
    """The last recall measured, in words, or that it never was."""
    check = health.last_check
    if check is None:
        return "never measured here"
    try:
        return (
            f"recall@{int(check['top_k'])} {float(check['recall']):.4f} over {int(check['queries']):,} queries "
            f"(lowest {float(check['recall_min']):.2f})"
        )
    except (KeyError, TypeError, ValueError):
        return "measured (figures not readable)"


def moment_text(stamp: str | None) -> str:
    """An audit time stamp as people read it."""
    if stamp is None:
        return "-"
    try:
        return f"{parse_utc(stamp):%Y-%m-%d %H:%M} UTC"
    except ValueError:
        return stamp


def check_text(check: IndexCheck) -> str:
    return (
        f"'{check.library}': recall@{check.top_k} {check.recall:.4f} over {check.queries:,} of its templates (lowest "
        f"{check.recall_min:.4f}; {check.below_half:,} found under half of theirs). Search time: "
        f"{check.search_p50_ms:.2f} ms median, {check.search_p99_ms:.2f} ms at the 99th percentile. Expansion "
        f"{check.expansion_search} ({check.expansion_source}); {check.templates:,} templates in {check.cells:,} "
        f"cells; profile {check.profile}."
    )


def tuning_text(tuning: IndexTuning) -> str:
    chosen = tuning.chosen
    if tuning.reached:
        outcome = f"✔ reached the target recall {tuning.target} at expansion {chosen.expansion_search}"
    else:
        outcome = (
            f"⚠ no expansion tried reached the target recall {tuning.target}: kept the best, expansion "
            f"{chosen.expansion_search}"
        )
    return (
        f"'{tuning.library}': {outcome} (recall@{chosen.top_k} {chosen.recall:.4f}). Searches of this library use "
        "it from now on."
    )


class IndexHealthScreen(RfrScreen):
    """Each library index's search expansion and last measured recall; measure (and tune) in a worker."""

    TITLE_TEXT = "Index health"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="index_health.back"),
        Binding("m", "measure", "Measure now", id="index_health.measure"),
        Binding("t", "tune", "Measure and tune", id="index_health.tune"),
        Binding("a", "measure_all", "Measure all", id="index_health.measure_all"),
        Binding("f5", "reload", "Refresh", id="index_health.reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._health: list[IndexHealth] = []
        self._measuring = False

    def body(self) -> ComposeResult:
        with VerticalScroll(classes="engineer"):
            yield Static(plain(INTRO), classes="engineer--intro")
            yield DataTable(id="health", cursor_type="row", zebra_stripes=True)
            yield Static(plain("No library yet."), id="no-health", classes="engineer--muted")
            yield JobProgress(id="measure-progress")
            yield Static("", id="measured", classes="engineer--note")
            yield DataTable(id="trials", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one("#health", DataTable)
        for label, key in [
            ("Library", "library"),
            ("Kind", "kind"),
            ("Templates", "templates"),
            ("Profile", "profile"),
            ("Expansion", "expansion"),
            ("Where the expansion comes from", "source"),
            ("Last recall measured here", "last"),
            ("When", "when"),
        ]:
            table.add_column(plain_cell(label), key=key)
        trials = self.query_one("#trials", DataTable)
        for label, key in [
            ("Library", "library"),
            ("Expansion tried", "expansion"),
            ("Recall", "recall"),
            ("Median search (ms)", "p50"),
            ("99th percentile (ms)", "p99"),
        ]:
            trials.add_column(plain_cell(label), key=key)
        trials.display = False
        self.query_one("#no-health").display = False
        table.focus()
        self.reload()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("measure", "tune", "measure_all"):
            return not self._measuring
        return True

    def reload(self) -> None:
        terminal, session = self.terminal, self.session
        self.run_engine(lambda: terminal.libraries.health(session), self._show, group="index-health")

    def _show(self, health: list[IndexHealth]) -> None:
        self._health = health
        table = self.query_one("#health", DataTable)
        chosen = self.selected()
        table.clear()
        for item in health:
            table.add_row(
                plain_cell(item.library),
                plain_cell(item.kind.capitalize()),
                Text(f"{item.templates:,}", justify="right"),
                plain_cell(item.profile),
                Text(str(item.expansion), justify="right"),
                plain_cell(item.expansion_source),
                plain_cell(last_check_text(item)),
                plain_cell(moment_text(item.last_checked_at)),
                key=item.library,
            )
        if chosen is not None and chosen in [h.library for h in health]:
            table.move_cursor(row=table.get_row_index(chosen))
        table.display = bool(health)
        self.query_one("#no-health").display = not health

    def selected(self) -> str | None:
        table = self.query_one("#health", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return None if key is None else str(key)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self.reload()

    def action_measure(self) -> None:
        self._measure(tune=False, every=False)

    def action_tune(self) -> None:
        self._measure(tune=True, every=False)

    def action_measure_all(self) -> None:
        self._measure(tune=False, every=True)

    def _measure(self, *, tune: bool, every: bool) -> None:
        if self._measuring:
            return
        name = None if every else self.selected()
        if not every and name is None:
            self.query_one("#measured", Static).update(plain("Choose a library in the list first (arrow keys)."))
            return
        names: Sequence[str] | None = None if name is None else [name]
        terminal, session = self.terminal, self.session
        what = "every library's index" if name is None else f"the index of '{name}'"
        self._measuring = True
        self.refresh_bindings()
        self.query_one("#measured", Static).update("")
        self.query_one("#trials").display = False
        self.query_one("#measure-progress", JobProgress).start(
            f"{'Measuring and tuning' if tune else 'Measuring'} {what} on this terminal...",
            hint="The rest of the terminal stays usable; the result appears here.",
        )
        self.run_engine(
            lambda: terminal.libraries.measure(session, names, tune=tune),
            self._measured,
            group="measure",
            failed=self._failed,
        )

    def _stopped(self) -> None:
        self._measuring = False
        self.query_one("#measure-progress", JobProgress).finish()
        self.refresh_bindings()

    def _failed(self, error: BaseException) -> None:
        self._stopped()
        self.rfr.show_error(error)

    def _measured(self, results: list[IndexCheck] | list[IndexTuning]) -> None:
        self._stopped()
        lines = []
        trials = self.query_one("#trials", DataTable)
        trials.clear()
        for result in results:
            if isinstance(result, IndexTuning):
                lines.append(tuning_text(result))
                for trial in result.trials:
                    trials.add_row(
                        plain_cell(result.library),
                        Text(str(trial.expansion_search), justify="right"),
                        Text(f"{trial.recall:.4f}", justify="right"),
                        Text(f"{trial.search_p50_ms:.2f}", justify="right"),
                        Text(f"{trial.search_p99_ms:.2f}", justify="right"),
                    )
            else:
                lines.append(check_text(result))
        trials.display = bool(trials.row_count)
        self.query_one("#measured", Static).update(plain("\n\n".join(lines)))
        self.reload()
