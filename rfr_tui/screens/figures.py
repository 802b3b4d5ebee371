"""The monitoring figures for the FR Technology Board's quarterly review, to look at and to read.

Two things the policy's monitoring asks for, both computed by the engine:

- the figures of a period (``terminal.cases.outcome_report``: searches run in it, cases closed
  in it and the Potential Matches of those cases), the outcomes by the demographic fields the
  form and the libraries record, with each rate's interval as the engine computed it and groups
  too small for a stable figure marked so, in the engine's words; and every figure the review
  counts with the engine's definition of it (the look is recorded);
- the composition of each Permitted Image Reference Library (``terminal.libraries.composition``).

Charts where a person would rather look than read (``rfr_tui.widgets.bar_chart``: every bar
with its number and label beside it), and tables with every count. The period is this quarter
by default (``engine.casework.monitoring.quarter_of``, on the terminal's clock); ``[`` and ``]``
step a quarter back and forward.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static, TabbedContent, TabPane

from engine.casework.monitoring import MIN_RECORDS, MonitoringFigures, OutcomeReport, quarter_of
from engine.library.demographics import IC_CODES
from engine.library.store import Composition
from engine.policy import Policy
from engine.scoring.statistics import OutcomeBreakdown, OutcomeRow, Proportion, Spread
from rfr_tui.screens.base import RfrScreen
from rfr_tui.text import plain, plain_cell
from rfr_tui.widgets.bar_chart import Bar, BarChart
from rfr_tui.wording import said

# What each field is, in a chart's title ("... by ...") and in a table's column.
FIELDS = {
    "age_band": ("the apparent age band on the form", "apparent age band"),
    "use_case": ("use case", "use case"),
    "under_18": ("whether the Probe Image appears to involve someone under 18", "under 18"),
    "under_16": ("whether the Probe Image appears to involve someone under 16", "under 16"),
    "sex": ("the reference subject's sex, as the library records it", "sex"),
    "ic_code": ("the reference subject's ethnicity by IC code, as the library records it", "IC code"),
    "age_range": ("the reference image's age range at capture", "age range at capture"),
    "library": ("the library searched", "library"),
}
OUTCOMES = {
    "viable_match": "Viable Match",
    "no_viable_match": "no Viable Match",
    "viable": "viable",
    "not_viable": "not viable",
}


@dataclass(frozen=True)
class Figures:
    """What the screen shows for one period: the engine's outcome report and the libraries' composition."""

    first: date
    last: date  # included
    report: OutcomeReport
    libraries: list[Composition]


def period_of(first_text: str, last_text: str) -> tuple[date, date]:
    """The period typed as two days, both included; ``ValueError`` with a sentence naming the field if not."""
    days = []
    for text, what in ((first_text, "From day"), (last_text, "To day")):
        try:
            days.append(date.fromisoformat(text.strip()))
        except ValueError:
            raise ValueError(
                f"{what} '{text.strip()}' is not a day: write it as YYYY-MM-DD, e.g. 2026-03-31."
            ) from None
    first, last = days
    if last < first:
        raise ValueError(f"The period is empty: the To day ({last}) is before the From day ({first}).")
    return first, last


def quarter_around(day: date) -> tuple[date, date]:
    """The calendar quarter holding ``day`` as its first and last day (both included)."""
    start, end = quarter_of(day)
    return start, end - timedelta(days=1)


def value_label(field: str, value: str, policy: Policy | None) -> str:
    """A recorded value in words: the policy's title of a use case or age band, an IC code's description."""
    if field == "ic_code" and value in IC_CODES:
        return f"{value} {IC_CODES[value]}"
    if policy is not None and field == "use_case":
        return next((u.title for u in policy.use_cases if u.key == value), value)
    if policy is not None and field == "age_band":
        return next((b.label for b in policy.age_bands if b.key == value), value)
    return value


def rate_figure(proportion: Proportion) -> str:
    """``8 of 32 = 25.0%  (Wilson 95%: 13.3% to 42.1%)``: the rate and its interval as the engine gives them."""
    return (
        f"{proportion.events} of {proportion.trials} = {proportion.rate:.1%}  "
        f"({proportion.method}: {proportion.low:.1%} to {proportion.high:.1%})"
    )


def outcome_words(outcomes: Mapping[str, int]) -> str:
    return ", ".join(f"{OUTCOMES.get(key, key)} {count}" for key, count in outcomes.items()) or "none"


def rate_bars(rows: Sequence[OutcomeRow], field: str, policy: Policy | None) -> list[Bar]:
    """One bar per group: its rate and interval, or the engine's words when it is too small for a figure."""
    bars = []
    for row in rows:
        label = value_label(field, row.value, policy)
        if row.positive is None:
            bars.append(Bar(label, None, note=row.too_small or f"no figure ({row.records} records)"))
        else:
            p = row.positive
            bars.append(Bar(label, p.rate, rate_figure(p), interval=(p.low, p.high)))
    return bars


def count_bars(counts: Mapping[str, int], field: str = "", policy: Policy | None = None) -> list[Bar]:
    return [Bar(value_label(field, key, policy), float(n), f"{n:,}") for key, n in counts.items()]


def spread_words(spread: Spread, field: str, policy: Policy | None) -> str:
    """How far apart the stable groups' rates are, in the engine's terms; the groups left out, by name."""

    def named(value: str | None) -> str:
        return value_label(field, value or "", policy)

    if spread.ratio is not None:
        words = f"Highest rate over lowest: {spread.ratio:.2f} ({named(spread.highest)} over {named(spread.lowest)})."
    else:
        words = f"No ratio across groups: {spread.note}."
    if spread.left_out:
        words += f" Too small to compare: {', '.join(named(v).rstrip('.') for v in spread.left_out)}."
    return words


def breakdown_chart(breakdown: OutcomeBreakdown, counted: str, policy: Policy | None) -> BarChart:
    title = f"{counted}, by {FIELDS.get(breakdown.field_name, (breakdown.field_name,))[0]}"
    return BarChart(
        title,
        rate_bars(breakdown.rows, breakdown.field_name, policy),
        rates=True,
        footnote=spread_words(breakdown.spread, breakdown.field_name, policy),
        classes="figures--chart",
    )


class FiguresScreen(RfrScreen):
    """Casework outcomes and library composition, for a chosen period (this quarter by default)."""

    TITLE_TEXT = "Monitoring figures"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="figures.back"),
        # The tabs' own labels show their keys: the footer keeps its room for the rest.
        Binding("o", "tab('figures-outcomes')", "Outcomes", id="figures.outcomes", show=False),
        Binding("a", "tab('figures-all')", "Every figure", id="figures.all", show=False),
        Binding("l", "tab('figures-libraries')", "Libraries", id="figures.libraries", show=False),
        Binding("t", "tab('figures-tables')", "Tables", id="figures.tables", show=False),
        Binding("d", "period", "Period", id="figures.period"),
        Binding("left_square_bracket", "quarter(-1)", "Earlier", id="figures.previous"),
        Binding("right_square_bracket", "quarter(1)", "Later", id="figures.next"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.figures: Figures | None = None

    def body(self) -> ComposeResult:
        first, last = quarter_around(self.terminal.ws.clock().date())
        with Horizontal(id="figures-period"):
            with Vertical(classes="figures-day"):
                yield Static(plain("From day"), classes="event-filter--label")
                yield Input(first.isoformat(), placeholder="YYYY-MM-DD", id="period-first")
            with Vertical(classes="figures-day"):
                yield Static(plain("To day (included)"), classes="event-filter--label")
                yield Input(last.isoformat(), placeholder="YYYY-MM-DD", id="period-last")
            yield Static(
                plain("Enter: show this period   [ and ]: the quarter before or after"), id="figures-period-hint"
            )
        yield Static("", id="figures-problem", classes="auditor--problem")
        yield Static("", id="figures-status")
        with TabbedContent(id="figures-tabs", initial="figures-outcomes"):
            with TabPane("Outcomes (o)", id="figures-outcomes"):
                yield VerticalScroll(Static(plain("Reading the figures...")), id="outcome-charts")
            with TabPane("Every figure (a)", id="figures-all"):
                yield VerticalScroll(id="all-figures")
            with TabPane("Libraries (l)", id="figures-libraries"):
                yield VerticalScroll(id="library-charts")
            with TabPane("Tables (t)", id="figures-tables"):
                with VerticalScroll(id="figure-tables"):
                    for table_id, heading in (
                        ("case-table", "Closed cases: the outcome, by the fields of the form"),
                        ("match-table", "Potential Matches adjudicated: the decision, by the library's fields"),
                    ):
                        yield Static(plain(heading), classes="figures--heading")
                        yield _table(table_id, OUTCOME_COLUMNS)
                    yield Static(plain("Library composition"), classes="figures--heading")
                    yield _table(
                        "composition-table",
                        (("Library", None), ("Counted", None), ("Field", None), ("Value", None), ("Count", None)),
                    )

    def on_mount(self) -> None:
        self.query_one("#outcome-charts", VerticalScroll).focus()
        self.load()

    # ---- the period ---------------------------------------------------------------------------

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one("#outcome-charts", VerticalScroll).focus()
            return
        self.app.pop_screen()

    def action_period(self) -> None:
        self.query_one("#period-first", Input).focus()

    def action_tab(self, tab: str) -> None:
        self.query_one("#figures-tabs", TabbedContent).active = tab
        target = {
            "figures-outcomes": "#outcome-charts",
            "figures-all": "#all-figures",
            "figures-libraries": "#library-charts",
            "figures-tables": "#figure-tables",
        }[tab]
        self.query_one(target, VerticalScroll).focus()

    def action_quarter(self, step: int) -> None:
        """The quarter before or after the one holding the From day (this quarter's, if it is not a day)."""
        try:
            first = date.fromisoformat(self.query_one("#period-first", Input).value.strip())
        except ValueError:
            first = self.terminal.ws.clock().date()
        start, end = quarter_of(first)
        day = end if step > 0 else start - timedelta(days=1)
        first, last = quarter_around(day)
        self.query_one("#period-first", Input).value = first.isoformat()
        self.query_one("#period-last", Input).value = last.isoformat()
        self.load()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "period-first":
            self.query_one("#period-last", Input).focus()
        elif self.load():
            self.query_one("#outcome-charts", VerticalScroll).focus()

    # ---- reading the figures ------------------------------------------------------------------

    def load(self) -> bool:
        """Read the figures for the period typed; False (and why, inline) if the period is not one."""
        problem = self.query_one("#figures-problem", Static)
        try:
            first, last = period_of(
                self.query_one("#period-first", Input).value, self.query_one("#period-last", Input).value
            )
        except ValueError as error:
            problem.update(plain(str(error)))
            return False
        problem.update("")
        terminal, session = self.terminal, self.session
        since, until = first.isoformat(), (last + timedelta(days=1)).isoformat()

        def work() -> Figures:
            report = terminal.cases.outcome_report(session, since, until)
            return Figures(first, last, report, terminal.libraries.composition(session))

        def failed(error: BaseException) -> None:
            self.query_one("#figures-status", Static).update("")
            words = said(error, "the figures could not be read")
            problem.update(plain(f"Not shown: {words}"))

        self.query_one("#figures-status", Static).update(plain("Reading the figures: working..."))
        self.run_engine(work, self.show, failed=failed, group="figures")
        return True

    def show(self, figures: Figures) -> None:
        self.figures = figures
        self.query_one("#figures-status", Static).update("")
        policy = self.terminal.policy
        charts = self.query_one("#outcome-charts", VerticalScroll)
        charts.remove_children()
        charts.mount_all(outcome_widgets(figures, policy))
        every = self.query_one("#all-figures", VerticalScroll)
        every.remove_children()
        every.mount_all(every_figure_widgets(figures.report.figures, policy))
        libraries = self.query_one("#library-charts", VerticalScroll)
        libraries.remove_children()
        libraries.mount_all(library_widgets(figures.libraries))
        fill_outcome_table(self.query_one("#case-table", DataTable), figures.report.by_case, policy)
        fill_outcome_table(self.query_one("#match-table", DataTable), figures.report.by_potential_match, policy)
        fill_composition_table(self.query_one("#composition-table", DataTable), figures.libraries)

    @property
    def shown_text(self) -> str:
        """Every chart and summary on the screen, as text (for tests)."""
        parts: list[str] = []
        for widget in self.query("#outcome-charts > *, #all-figures > *, #library-charts > *"):
            if isinstance(widget, BarChart):
                parts.append(widget.text)
            elif isinstance(widget, Static):
                parts.append(str(widget.render()))
        return "\n".join(parts)


# A rate and the reason there is none never both apply: one column holds whichever the engine gave.
OUTCOME_COLUMNS = (
    ("Field", 20),
    ("Value", 24),
    ("Records", None),
    ("Outcomes", 20),
    ("Rate (interval), or why none", 32),
)


def _table(id: str, columns: Sequence[tuple[str, int | None]]) -> DataTable[Any]:
    """A table whose columns given a width wrap their text (rows as tall as they need)."""
    table: DataTable[Any] = DataTable(id=id, cursor_type="row", zebra_stripes=True, classes="figures--table")
    for column, width in columns:
        table.add_column(plain_cell(column), width=width)
    return table


def summary_text(figures: Figures) -> str:
    report = figures.report
    if report.case_rate is None:
        viable = f"{report.viable_match_cases:,}"
    else:
        p = report.case_rate
        viable = f"{p.events:,} of {p.trials:,} = {p.rate:.1%} ({p.method}: {p.low:.1%} to {p.high:.1%})"
    return "\n".join(
        [
            f"Period {figures.first} to {figures.last}, both days included.",
            f"Searches run: {report.searches:,}.",
            f"Closed cases: {report.cases:,}; with a Viable Match: {viable}.",
            f"Potential Matches adjudicated in the cases closed: {report.potential_matches:,}; "
            f"decided viable: {report.viable_potential_matches:,}.",
            f"A group with fewer than {MIN_RECORDS} records is too small for a stable figure: it is shown with "
            "its counts (Tables, t) and no rate.",
        ]
    )


def outcome_widgets(figures: Figures, policy: Policy | None) -> list[Widget]:
    report = figures.report
    widgets: list[Widget] = [Static(plain(summary_text(figures)), classes="figures--summary")]
    if report.cases:
        outcomes = {
            "Viable Match": report.viable_match_cases,
            "no Viable Match": report.cases - report.viable_match_cases,
        }
        widgets.append(BarChart("Closed cases by outcome", count_bars(outcomes), classes="figures--chart"))
        widgets += [breakdown_chart(b, "Closed cases with a Viable Match", policy) for b in report.by_case]
    else:
        widgets.append(Static(plain("No case was closed in this period."), classes="figures--summary"))
    if report.potential_matches:
        decisions = {
            "viable": report.viable_potential_matches,
            "not viable": report.potential_matches - report.viable_potential_matches,
        }
        widgets.append(BarChart("Potential Matches by decision", count_bars(decisions), classes="figures--chart"))
        widgets += [breakdown_chart(b, "Potential Matches decided viable", policy) for b in report.by_potential_match]
    else:
        widgets.append(Static(plain("No Potential Match was adjudicated in this period."), classes="figures--summary"))
    return widgets


def group_label(figure: str, group: str, policy: Policy | None) -> str:
    """A group of a figure in words: an outcome or decision, a use case's or age band's title, an IC code's."""
    if group in OUTCOMES:
        return OUTCOMES[group]
    for field in ("use_case", "age_band", "ic_code"):
        if field in figure:
            return value_label(field, group, policy)
    return group.replace("_", " ")


def every_figure_widgets(figures: MonitoringFigures, policy: Policy | None) -> list[Widget]:
    """Every figure of the period with the engine's definition of it: numbers, charts of groups, tables."""
    definitions = MonitoringFigures.definitions()
    widgets: list[Widget] = [
        Static(
            plain("Every figure the quarterly review counts, each with its definition as the terminal counts it."),
            classes="figures--summary",
        )
    ]
    for name, kind in MonitoringFigures.kinds().items():
        value = getattr(figures, name)
        title = name.replace("_", " ").capitalize()
        if kind == "counts":
            bars = [Bar(group_label(name, g, policy), float(n), f"{n:,}") for g, n in value.items()]
            widgets.append(BarChart(title, bars, footnote=definitions[name], classes="figures--chart"))
            continue
        if kind == "table":
            rows = [f"{group_label(name, g, policy).rstrip('.')}: {outcome_words(o)}" for g, o in value.items()]
            widgets += [
                Static(plain(title), classes="figures--figure"),
                Static(plain("\n".join(rows) or "none"), classes="figures--rows"),
            ]
        else:
            widgets.append(Static(plain(f"{title}: {value:,}"), classes="figures--figure"))
        widgets.append(Static(plain(definitions[name]), classes="bar-chart--footnote"))
    return widgets


def library_widgets(libraries: Sequence[Composition]) -> list[Widget]:
    if not libraries:
        return [Static(plain("There is no Permitted Image Reference Library on this terminal."))]
    widgets: list[Widget] = []
    for lib in libraries:
        templates = ", ".join(f"{model}: {n:,}" for model, n in lib.templates.items()) or "none"
        widgets.append(
            Static(
                plain(
                    f"Library {lib.library} ({lib.kind}): {lib.subjects:,} subjects, {lib.images:,} images; "
                    f"templates by model: {templates}."
                ),
                classes="figures--heading",
            )
        )
        widgets += [
            BarChart("Subjects by sex", count_bars(lib.subjects_by_sex), classes="figures--chart"),
            BarChart(
                "Subjects by ethnicity (IC code)",
                count_bars(lib.subjects_by_ic_code, "ic_code"),
                classes="figures--chart",
            ),
            BarChart("Images by age range at capture", count_bars(lib.images_by_age_range), classes="figures--chart"),
        ]
    return widgets


def fill_outcome_table(table: DataTable[Any], breakdowns: Sequence[OutcomeBreakdown], policy: Policy | None) -> None:
    """Every group of every field: its records, each outcome's count, and its rate or why it has none."""
    table.clear()
    for breakdown in breakdowns:
        for row in breakdown.rows:
            table.add_row(
                plain_cell(FIELDS.get(row.field_name, ("", row.field_name))[1]),
                plain_cell(value_label(row.field_name, row.value, policy)),
                plain_cell(f"{row.records:,}"),
                plain_cell(outcome_words(row.outcomes)),
                plain_cell(rate_figure(row.positive) if row.positive is not None else row.too_small or ""),
                height=None,
            )


def fill_composition_table(table: DataTable[Any], libraries: Sequence[Composition]) -> None:
    table.clear()
    for lib in libraries:
        for counted, field, counts in (
            ("subjects", "sex", lib.subjects_by_sex),
            ("subjects", "ic_code", lib.subjects_by_ic_code),
            ("images", "sex", lib.images_by_sex),
            ("images", "ic_code", lib.images_by_ic_code),
            ("images", "age_range", lib.images_by_age_range),
        ):
            for value, n in counts.items():
                table.add_row(
                    plain_cell(lib.library),
                    plain_cell(counted),
                    plain_cell({"sex": "sex", "ic_code": "IC code", "age_range": "age range at capture"}[field]),
                    plain_cell(value_label(field, value, None)),
                    plain_cell(f"{n:,}"),
                )
