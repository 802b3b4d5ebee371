"""Quarterly report: the FR Technology Board's figures for a quarter (or a year), on screen and written to files.

The engine makes the report (``engine.oversight.report.board_report``: the figures of every
accepted bundle for the period, how complete they are, the libraries' composition; the look is
recorded) and writes it (``write_report``: ``report.html`` and the four CSV files, into a new
folder, never over a file), exactly as ``rfr oversight report --quarter 2026Q3 --out DIR`` does.
The screen shows the same figures as the written report: the summary table with the report's
own labels, whether the figures are complete and why not, charts where a person would rather look
than read (``rfr_tui.widgets.bar_chart``, drawn as the terminal's figures screen draws them), the
rates with their intervals, the libraries, each terminal's coverage and figures, and every
figure with its definition.

The quarter shown first is the last one that has ended (the one the Board reviews), on the
oversight's clock; ``[`` and ``]`` step a quarter (or a year) back and forward.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static, TabbedContent, TabPane

from engine.casework.monitoring import MIN_RECORDS, quarter_bounds, quarter_label_of, quarter_of
from engine.oversight.report import (
    INTELLIGENCE_LEAD,
    BoardReport,
    Coverage,
    Period,
    board_report,
    summary_rows,
    write_report,
)
from engine.policy import Policy
from rfr_tui.oversight.dialogs import ReportFolderChooser
from rfr_tui.screens.figures import (
    OUTCOME_COLUMNS,
    OUTCOMES,
    breakdown_chart,
    count_bars,
    every_figure_widgets,
    fill_outcome_table,
    value_label,
)
from rfr_tui.screens.oversight_base import OversightScreen, sentence, shown_path, when
from rfr_tui.text import plain, plain_cell
from rfr_tui.widgets.bar_chart import Bar, BarChart
from rfr_tui.widgets.state_label import StateLabel, Tone

_YEAR = re.compile(r"^\s*\d{4}\s*$")
TABS = {
    "report-summary": "#summary-pane",
    "report-charts": "#chart-pane",
    "report-rates": "#rate-pane",
    "report-libraries": "#library-pane",
    "report-terminals": "#terminal-pane",
    "report-every": "#every-pane",
}


# ---- the period ------------------------------------------------------------------------------------


def last_ended_quarter(today: date) -> str:
    """The quarter before the one holding ``today``: the last the Board can review whole."""
    start, _ = quarter_of(today)
    return quarter_label_of(start - timedelta(days=1))


def period_of(text: str) -> Period:
    """A quarter (``2026Q3``) or a year (``2026``) as typed; the engine's ``UsageError`` when it is neither."""
    return Period.parse(year=text.strip()) if _YEAR.match(text) else Period.parse(quarter=text)


def stepped(text: str, step: int) -> str:
    """The quarter (or year) ``step`` before or after the one typed; ``ValueError`` when it is neither."""
    if _YEAR.match(text):
        return str(int(text) + step)
    start, end = quarter_bounds(text)
    return quarter_label_of(end if step > 0 else start - timedelta(days=1))


# ---- what the screen shows, from the engine's report ---------------------------------------------------


def coverage_reasons(c: Coverage) -> list[str]:
    """Why one terminal makes the figures incomplete (none when it does not), as the command line says it."""
    reasons = []
    if not c.complete:
        held = "no accepted bundle" if c.last_event_at is None else f"accepted only up to {when(c.last_event_at)}"
        reasons.append(f"{c.terminal}: {held}, which does not reach the end of the period")
    return reasons + [f"{c.terminal}: {f}" for f in c.open_findings]


def completeness(report: BoardReport) -> tuple[str, Tone, list[str]]:
    """Whether the figures are whole, in words, and each reason they are not."""
    if not report.coverage:
        return "No terminal is registered: there are no figures", Tone.WARNING, []
    if report.complete:
        return "Complete: every terminal's log covers the period; no open finding", Tone.GOOD, []
    reasons = [reason for c in report.coverage for reason in coverage_reasons(c)]
    return "INCOMPLETE: the oversight does not hold the whole period yet", Tone.WARNING, reasons


def table_bars(
    table: Mapping[str, Mapping[str, int]], field: str, order: Sequence[str], policy: Policy | None
) -> list[Bar]:
    """One bar per group, as long as its total, with each outcome's count written beside it."""
    present = [o for o in order if any(o in row for row in table.values())]
    present += sorted({o for row in table.values() for o in row} - set(present))
    bars = []
    for key in sorted(table):
        row = table[key]
        total = sum(row.values())
        parts = ", ".join(f"{OUTCOMES.get(o, o.replace('_', ' '))} {row.get(o, 0):,}" for o in present)
        bars.append(Bar(value_label(field, key, policy), float(total), f"{total:,} ({parts})"))
    return bars


def sorted_counts(counts: Mapping[str, int]) -> dict[str, int]:
    """Largest first, as the written report's charts order them."""
    return {k: counts[k] for k in sorted(counts, key=lambda k: (-counts[k], k))}


def chart_widgets(report: BoardReport, policy: Policy | None) -> list[Widget]:
    """The written report's charts, drawn in characters: every bar with its label and its number."""
    t = report.totals
    approvals = {
        k: {"approved": t.approvals_by_use_case.get(k, 0), "rejected": t.rejections_by_use_case.get(k, 0)}
        for k in sorted(set(t.approvals_by_use_case) | set(t.rejections_by_use_case))
    }
    outcomes, decisions = ("viable_match", "no_viable_match"), ("viable", "not_viable")
    charts: list[tuple[str, list[Bar]]] = []
    if len(report.by_quarter) > 1:
        charts += [
            (
                "Searches by quarter",
                [Bar(q, float(f.searches), f"{f.searches:,}") for q, f in report.by_quarter.items()],
            ),
            (
                "Cases closed by quarter",
                [Bar(q, float(f.closed), f"{f.closed:,}") for q, f in report.by_quarter.items()],
            ),
        ]
    charts += [
        ("Searches by use case", count_bars(sorted_counts(t.searches_by_use_case), "use_case", policy)),
        (
            "Searches by the Probe Image's apparent age band",
            count_bars(sorted_counts(t.searches_by_age_band), "age_band", policy),
        ),
        ("Approvals and rejections by use case", table_bars(approvals, "use_case", ("approved", "rejected"), policy)),
        ("Cases closed by use case and outcome", table_bars(t.closed_by_use_case, "use_case", outcomes, policy)),
        (
            "Cases closed by apparent age band and outcome",
            table_bars(t.closed_by_age_band, "age_band", outcomes, policy),
        ),
        (
            "Potential Matches adjudicated, by the reference subject's sex",
            table_bars(t.potential_matches_by_sex, "sex", decisions, policy),
        ),
        (
            "Potential Matches adjudicated, by the reference subject's ethnicity (IC code)",
            table_bars(t.potential_matches_by_ic_code, "ic_code", decisions, policy),
        ),
        (
            "Potential Matches adjudicated, by the reference image's age range at capture",
            table_bars(t.potential_matches_by_age_range, "age_range", decisions, policy),
        ),
    ]
    widgets: list[Widget] = []
    for title, bars in charts:
        if bars:
            widgets.append(BarChart(title, bars, classes="report--chart"))
        else:
            widgets += [
                Static(plain(title), classes="report--heading"),
                Static(plain("None in this period."), classes="report--none"),
            ]
    return widgets


def rate_widgets(report: BoardReport, policy: Policy | None) -> list[Widget]:
    widgets: list[Widget] = [
        Static(
            plain(
                f"Rates are given only for groups of at least {MIN_RECORDS} records; smaller groups show their counts "
                "(an interval on fewer would be too wide to read). The tables below give every group's counts."
            ),
            classes="report--text",
        )
    ]
    for breakdowns, counted, none in (
        (report.by_case, "Cases closed with a Viable Match", "No case was closed in this period."),
        (report.by_potential_match, "Potential Matches decided viable", "No Potential Match was adjudicated in it."),
    ):
        drawn = [breakdown_chart(b, counted, policy) for b in breakdowns if b.rows]
        widgets += drawn or [Static(plain(none), classes="report--text")]
    for table_id, heading in (
        ("case-rates", "Cases closed: the outcome, by the fields of the form"),
        ("match-rates", "Potential Matches adjudicated: the decision, by the library's fields"),
    ):
        widgets += [Static(plain(heading), classes="report--heading"), _table(table_id, OUTCOME_COLUMNS)]
    return widgets


def library_images(report: BoardReport) -> dict[str, dict[str, int]]:
    """Images of every library held, by sex, IC code and age range (each library once, as the report counts)."""
    images: dict[str, dict[str, int]] = {"by_sex": {}, "by_ic_code": {}, "by_age_range": {}}
    for held in report.libraries:
        for name, counts in images.items():
            for group, n in held.composition["images"][name].items():
                counts[group] = counts.get(group, 0) + int(n)
    return images


def library_widgets(report: BoardReport) -> list[Widget]:
    if not report.libraries:
        return [Static(plain("No library composition was reported for this period."), classes="report--text")]
    images = library_images(report)
    return [
        Static(plain("Composition of the Image Reference Libraries"), classes="report--heading"),
        _table(
            "library-table",
            (("Library", 20), ("Kind", 12), ("Subjects", None), ("Images", None), ("As reported by", 30)),
        ),
        BarChart("Images by sex", count_bars(sorted_counts(images["by_sex"]), "sex"), classes="report--chart"),
        BarChart(
            "Images by ethnicity (IC code)",
            count_bars(sorted_counts(images["by_ic_code"]), "ic_code"),
            classes="report--chart",
        ),
        BarChart(
            "Images by age range at capture",
            count_bars(sorted_counts(images["by_age_range"]), "age_range"),
            classes="report--chart",
        ),
    ]


def terminal_widgets(report: BoardReport) -> list[Widget]:
    widgets: list[Widget] = [
        Static(plain("How much of each terminal's log the figures rest on"), classes="report--heading"),
        _table(
            "coverage-table",
            (
                ("Terminal", 14),
                ("Accepted through", None),
                ("Last accepted event", 20),
                ("Whole period", None),
                ("Quarantined", None),
                ("Evidence", None),
                ("Open findings", 40),
            ),
        ),
    ]
    if report.period.annual:
        widgets.append(Static(plain("The annual public report gives no figures by terminal."), classes="report--text"))
    else:
        widgets += [
            Static(plain("By terminal"), classes="report--heading"),
            _table(
                "terminal-table",
                (("Terminal", 14), ("Searches", None), ("Cases closed", None), ("Viable Matches", None)),
            ),
        ]
    return widgets


def _table(id: str, columns: Sequence[tuple[str, int | None]]) -> DataTable[Any]:
    table: DataTable[Any] = DataTable(id=id, cursor_type="row", zebra_stripes=True, classes="report--table")
    for column, width in columns:
        table.add_column(plain_cell(column), width=width)
    return table


class ReportScreen(OversightScreen):
    """The Board's figures for a chosen quarter (or year), and the files written from them."""

    TITLE_TEXT = "Quarterly report"
    DEFAULT_CSS = """
    ReportScreen #report-period {
        height: auto;
        padding: 0 2;
        margin-top: 1;
    }
    ReportScreen #report-period Input {
        width: 16;
    }
    ReportScreen #report-period-label {
        width: auto;
        padding: 1 1 0 0;
    }
    ReportScreen #report-period-hint {
        width: 1fr;
        padding: 1 0 0 2;
        color: $text-muted;
    }
    ReportScreen #report-problem, ReportScreen #report-written, ReportScreen #report-reasons {
        height: auto;
        padding: 0 2;
    }
    ReportScreen #report-lead {
        height: auto;
        margin: 1 0;
        padding: 0 1;
        border-left: thick $primary;
    }
    ReportScreen #report-problem {
        color: $warning;
        text-style: bold;
    }
    ReportScreen #report-state {
        margin: 1 2 0 2;
    }
    ReportScreen #report-tabs {
        margin-top: 1;
    }
    ReportScreen #report-tabs, ReportScreen #report-tabs ContentSwitcher, ReportScreen #report-tabs TabPane {
        height: 1fr;
    }
    ReportScreen #report-tabs TabPane {
        padding: 0;
    }
    ReportScreen .report--pane {
        height: 1fr;
        padding: 0 1;
    }
    ReportScreen .report--heading {
        height: auto;
        margin-top: 1;
        text-style: bold;
    }
    ReportScreen .report--text, ReportScreen .report--none {
        height: auto;
        margin-top: 1;
    }
    ReportScreen .report--none {
        padding-left: 2;
        color: $text-muted;
    }
    ReportScreen .report--chart, ReportScreen .figures--chart {
        margin-top: 1;
    }
    ReportScreen .report--table {
        height: auto;
        max-height: 30;
    }
    ReportScreen .figures--figure {
        height: auto;
        margin-top: 1;
        text-style: bold;
    }
    ReportScreen .figures--rows {
        height: auto;
        padding-left: 2;
    }
    ReportScreen .figures--summary {
        height: auto;
        margin: 1 0;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="oversight_report.back"),
        Binding("d", "period", "Period", id="oversight_report.period"),
        Binding("left_square_bracket", "step(-1)", "Earlier", id="oversight_report.earlier"),
        Binding("right_square_bracket", "step(1)", "Later", id="oversight_report.later"),
        Binding("w", "write", "Write the files", id="oversight_report.write"),
        # The tabs' own labels show their keys: the footer keeps its room for the rest.
        Binding("s", "tab('report-summary')", "Summary", id="oversight_report.summary", show=False),
        Binding("c", "tab('report-charts')", "Charts", id="oversight_report.charts", show=False),
        Binding("r", "tab('report-rates')", "Rates", id="oversight_report.rates", show=False),
        Binding("l", "tab('report-libraries')", "Libraries", id="oversight_report.libraries", show=False),
        Binding("t", "tab('report-terminals')", "Terminals", id="oversight_report.terminals", show=False),
        Binding("a", "tab('report-every')", "Every figure", id="oversight_report.every", show=False),
    ]

    def __init__(self, period: str | None = None) -> None:
        super().__init__()
        self._first_period = period
        self.report: BoardReport | None = None
        self.written: list[Path] = []

    def body(self) -> ComposeResult:
        period = self._first_period or last_ended_quarter(self.oversight.ws.now().date())
        with Horizontal(id="report-period"):
            yield Static(plain("Quarter or year"), id="report-period-label")
            yield Input(period, placeholder="2026Q3", id="report-quarter")
            yield Static(
                plain("Enter: show it   [ and ]: the one before or after   w: write the report files"),
                id="report-period-hint",
            )
        yield Static("", id="report-problem")
        yield StateLabel("Reading the figures...", Tone.INFO, id="report-state")
        yield Static("", id="report-reasons")
        yield Static("", id="report-written")
        with TabbedContent(id="report-tabs", initial="report-summary"):
            with TabPane("Summary (s)", id="report-summary"):
                with VerticalScroll(id="summary-pane", classes="report--pane"):
                    yield Static("", id="report-title", classes="report--heading")
                    yield Static("", id="report-about", classes="report--text")
                    yield Static(plain(INTELLIGENCE_LEAD), id="report-lead")
                    yield _table("summary-table", (("Figure", 52), ("  Count", 7)))
            with TabPane("Charts (c)", id="report-charts"):
                yield VerticalScroll(id="chart-pane", classes="report--pane")
            with TabPane("Rates (r)", id="report-rates"):
                yield VerticalScroll(id="rate-pane", classes="report--pane")
            with TabPane("Libraries (l)", id="report-libraries"):
                yield VerticalScroll(id="library-pane", classes="report--pane")
            with TabPane("Terminals (t)", id="report-terminals"):
                yield VerticalScroll(id="terminal-pane", classes="report--pane")
            with TabPane("Every figure (a)", id="report-every"):
                yield VerticalScroll(id="every-pane", classes="report--pane")

    def on_mount(self) -> None:
        for line in ("#report-problem", "#report-reasons", "#report-written"):
            self._say(line, "")
        self.query_one("#summary-pane", VerticalScroll).focus()
        self.load()

    def _say(self, selector: str, text: str) -> None:
        """A line that takes no room while it has nothing to say."""
        line = self.query_one(selector, Static)
        line.update(plain(text))
        line.display = bool(text)

    # ---- the period ---------------------------------------------------------------------------

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one("#summary-pane", VerticalScroll).focus()
            return
        self.app.pop_screen()

    def action_period(self) -> None:
        self.query_one("#report-quarter", Input).focus()

    def action_step(self, step: int) -> None:
        field = self.query_one("#report-quarter", Input)
        try:
            field.value = stepped(field.value, step)
        except ValueError:
            field.value = last_ended_quarter(self.oversight.ws.now().date())
        self.load()

    def action_tab(self, tab: str) -> None:
        self.query_one("#report-tabs", TabbedContent).active = tab
        self.query_one(TABS[tab], VerticalScroll).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.load():
            self.query_one("#summary-pane", VerticalScroll).focus()

    # ---- reading the figures ------------------------------------------------------------------

    def load(self) -> bool:
        """Make the report for the period typed; False (and why, on the screen) when it is not a period."""
        try:
            period = period_of(self.query_one("#report-quarter", Input).value)
        except Exception as error:  # the engine's UsageError: '2026Q5' is not a quarter such as 2026Q3
            self._say("#report-problem", sentence(error, "Type a quarter such as 2026Q3, or a year such as 2026."))
            return False
        self._say("#report-problem", "")
        oversight, session = self.oversight, self.session
        self.query_one("#report-state", StateLabel).set_state(f"Reading the figures for {period.label}...", Tone.INFO)
        self.run_engine(
            lambda: board_report(oversight, session, period), self.show, failed=self._refused, group="report"
        )
        return True

    def _refused(self, error: BaseException) -> None:
        self.report = None
        self.query_one("#report-state", StateLabel).set_state("Not shown", Tone.BAD)
        self._say("#report-reasons", "")
        self._say("#report-problem", sentence(error, "The figures could not be read."))

    async def show(self, report: BoardReport) -> None:
        self.report = report
        self.written = []
        self._say("#report-written", "")
        policy = self.oversight.policy
        words, tone, reasons = completeness(report)
        self.query_one("#report-state", StateLabel).set_state(words, tone)
        self._say("#report-reasons", "\n".join(f"• {r}" for r in reasons))
        self.query_one("#report-title", Static).update(plain(report.title))
        p = report.period
        self.query_one("#report-about", Static).update(
            plain(
                f"Period {p.since.isoformat()} to {p.until.isoformat()} (the end excluded; times are the "
                f"terminals' UTC clocks). Made {when(report.generated_at)} from the signed audit bundles "
                "accepted by this oversight workspace."
            )
        )
        summary = self.query_one("#summary-table", DataTable)
        summary.clear()
        for label, value in summary_rows(report.totals):
            summary.add_row(plain_cell(label), plain_cell(f"{value:,}".rjust(7)), key=label)
        await self._fill("#chart-pane", chart_widgets(report, policy))
        await self._fill("#rate-pane", rate_widgets(report, policy))
        await self._fill("#library-pane", library_widgets(report))
        await self._fill("#terminal-pane", terminal_widgets(report))
        await self._fill("#every-pane", every_figure_widgets(report.totals, policy))
        self._fill_tables(report, policy)
        self.refresh_bindings()

    async def _fill(self, selector: str, widgets: list[Widget]) -> None:
        pane = self.query_one(selector, VerticalScroll)
        await pane.remove_children()
        await pane.mount_all(widgets)

    def _fill_tables(self, report: BoardReport, policy: Policy) -> None:
        """The tables mounted with the panes: filled once they are there."""
        fill_outcome_table(self.query_one("#case-rates", DataTable), report.by_case, policy)
        fill_outcome_table(self.query_one("#match-rates", DataTable), report.by_potential_match, policy)
        for library in self.query("#library-table").results(DataTable):
            for held in report.libraries:
                library.add_row(
                    plain_cell(held.library),
                    plain_cell(held.kind),
                    plain_cell(f"{held.composition['subjects']['total']:,}"),
                    plain_cell(f"{held.composition['images']['total']:,}"),
                    plain_cell(f"{held.terminal}, {when(held.as_at)}"),
                    height=None,
                )
        coverage = self.query_one("#coverage-table", DataTable)
        for c in report.coverage:
            coverage.add_row(
                plain_cell(c.terminal),
                plain_cell("nothing" if c.accepted_through == 0 else f"seq {c.accepted_through:,}"),
                plain_cell(when(c.last_event_at)),
                plain_cell("yes" if c.complete else "no"),
                plain_cell(f"{c.quarantined:,}"),
                plain_cell(f"{c.evidence:,}"),
                plain_cell("; ".join(c.open_findings) or "none"),
                height=None,
            )
        for by_terminal in self.query("#terminal-table").results(DataTable):
            for name, figures in report.by_terminal.items():
                by_terminal.add_row(
                    plain_cell(name),
                    plain_cell(f"{figures.searches:,}"),
                    plain_cell(f"{figures.closed:,}"),
                    plain_cell(f"{figures.viable_matches:,}"),
                )

    # ---- writing the files --------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "write":
            return self.report is not None
        return True

    def action_write(self) -> None:
        report = self.report
        if report is None:
            return

        def chosen(folder: Path | None) -> None:
            if folder is None:
                return
            self._say("#report-written", "Writing the report files...")
            self.run_engine(
                lambda: write_report(report, folder), self._written, failed=self._not_written, group="report-write"
            )

        name = f"rfr-report-{report.period.label}"
        self.app.push_screen(ReportFolderChooser(self.desk.places(), name=name), chosen)

    def _written(self, paths: list[Path]) -> None:
        self.written = paths
        folder = paths[0].parent if paths else None
        names = ", ".join(p.name for p in paths)
        where = shown_path(folder, self.desk.places()) if folder else "-"
        self._say("#report-written", f"✔ Written to {where}: {names}. The files hold the figures shown here.")

    def _not_written(self, error: BaseException) -> None:
        words = sentence(error, "The report files could not be written.")
        self._say("#report-written", f"✖ Not written: {words}")

    # ---- for tests ----------------------------------------------------------------------------

    @property
    def shown_text(self) -> str:
        """Every chart and line of text in the panes, as text."""
        parts: list[str] = []
        for widget in self.query(".report--pane > *"):
            if isinstance(widget, BarChart):
                parts.append(widget.text)
            elif isinstance(widget, Static):
                parts.append(str(widget.render()))
        return "\n".join(parts)

    @property
    def summary(self) -> dict[str, str]:
        """The summary table as shown: label -> count."""
        table = self.query_one("#summary-table", DataTable)
        return {str(table.get_row_at(i)[0]): str(table.get_row_at(i)[1]).strip() for i in range(table.row_count)}
