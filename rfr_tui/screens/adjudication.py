"""Adjudication: the candidate list of a searched case, the comparison view, a decision per Potential Match,
and the Match Report form for a Viable Match.

Every decision is the engine's to accept or refuse (``Casework.adjudicate``): the screens pass
what the person decided and how they saw the pictures (the renderer, and whether it is fit to
judge a match), and show the engine's sentence when it refuses. The policy's intelligence-lead
statement and its caution that rank and score are not viability stand on every screen here.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Input, Select, Static, TextArea

from engine.casework import FACTORS, Case, CaseState, Decision, Display, MatchReport, Outcome
from engine.errors import RfrError
from rfr_tui.dialogs.confirm import ConfirmDialog
from rfr_tui.screens.base import RfrScreen
from rfr_tui.text import plain
from rfr_tui.widgets.candidate_list import CandidateTable, ScoreFormat, candidate_label, candidate_texts, decision_words
from rfr_tui.widgets.comparison import CandidateText, ComparisonView, display_for
from rfr_tui.widgets.face_image import active_renderer
from rfr_tui.widgets.state_label import StateLabel, Tone
from rfr_tui.wording import for_a_person, said

UNEXPECTED = "Not recorded: something unexpected happened. Try again; if it happens again, tell an engineer."


def _sentence(error: BaseException) -> str:
    return said(error, UNEXPECTED)


def progress(case: Case) -> tuple[str, Tone]:
    """Where adjudication of ``case`` stands, in words, from the state the engine recorded."""
    total = len(case.candidates)
    decided = sum(1 for c in case.candidates if c.decision is not None)
    if case.state is CaseState.SEARCHED:
        words = f"{decided} of {total} Potential Matches adjudicated. Assess each one independently."
        review = next((r for r in reversed(case.reviews) if r.kind == "peer_review"), None)
        if review is not None and review.agree is False:
            words += f" Peer reviewer {review.actor} disagreed with 'no viable match': {review.reason}"
        return words, Tone.WARNING if decided < total else Tone.NEUTRAL
    if case.state is CaseState.ADJUDICATED:
        viable = len(case.viable)
        found = "1 is a Viable Match" if viable == 1 else f"{viable} are Viable Matches"
        return (
            f"Every Potential Match is adjudicated and {found}: case {case.id} is adjudicated. Go back to the case "
            "(Escape) to export the Match Report.",
            Tone.INFO,
        )
    if case.state is CaseState.PEER_REVIEW:
        return (
            f"No Viable Match: every Potential Match is adjudicated not viable. Case {case.id} now goes to a peer "
            "reviewer in the central unit, who must agree before 'no viable match' is declared.",
            Tone.INFO,
        )
    if case.state is CaseState.CLOSED and case.outcome is Outcome.NO_VIABLE_MATCH:
        return f"Case {case.id} is closed: no viable match (peer reviewed).", Tone.NEUTRAL
    return f"Case {case.id} is {case.state.value}: there is nothing to adjudicate.", Tone.NEUTRAL


def completes_without_a_match(case: Case, rank: int, recording: Collection[int] = ()) -> bool:
    """Whether a 'not viable' on ``rank`` would be the last decision, with no Viable Match among the others.

    ``recording``: Potential Matches whose 'not viable' is on its way to the engine now.
    """
    others = [c for c in case.candidates if c.rank != rank]
    return all(c.decision is Decision.NOT_VIABLE or c.rank in recording for c in others)


class _Adjudicating(RfrScreen):
    """What the candidate list and the comparison share: the case, its scores, and recording a decision."""

    def __init__(self, case_id: str) -> None:
        super().__init__()
        self.case_id = case_id
        self.case: Case | None = None
        self.scores: ScoreFormat | None = None
        self._recording: set[int] = set()

    def lead_widgets(self) -> ComposeResult:
        display = self.terminal.policy.score_display
        yield StateLabel(display.intelligence_lead_statement, Tone.INFO, classes="match-lead")
        yield Static(plain(display.rank_caution), classes="match-caution")

    def case_changed(self, case: Case) -> None:
        """The engine recorded something: show the case as it now stands.

        Decisions are recorded one worker each, so two keys pressed quickly both count; their
        answers can arrive out of order, and an older one never replaces a newer one.
        """
        before = self.case
        if before is not None and case.updated_at < before.updated_at:
            return
        self.case = case
        if before is not None and before.state is not case.state:
            words, _ = progress(case)
            self.app.notify(words, title=f"Case {case.id}")
        self.show_case(case)

    def show_case(self, case: Case) -> None:
        """Hook: put ``case`` on screen."""

    def seen_on(self) -> Display:
        """How the pictures are seen here (the renderer the comparison view draws with)."""
        return display_for(active_renderer())

    def decide_not_viable(self, rank: int | None) -> None:
        case = self.case
        if case is None or rank is None:
            return
        if case.state is CaseState.SEARCHED and completes_without_a_match(case, rank, self._recording):
            question = (
                f"Potential Match {rank} is the last one to adjudicate and none is a Viable Match. Recording it as "
                f"not viable sends case {case.id} to peer review: a peer reviewer in the central unit must agree "
                "before 'no viable match' is declared. Record it as not viable?"
            )

            def answered(yes: bool | None) -> None:
                if yes:
                    self._record_not_viable(rank)

            self.app.push_screen(
                ConfirmDialog(question, yes="Not viable", no="Go back", title="No Viable Match"), answered
            )
            return
        self._record_not_viable(rank)

    def _record_not_viable(self, rank: int) -> None:
        terminal, session, case_id, seen = self.terminal, self.session, self.case_id, self.seen_on()

        def done(case: Case) -> None:
            self._recording.discard(rank)
            self.app.notify(f"Potential Match {rank} recorded as not viable.", title=f"Case {case.id}")
            self.case_changed(case)

        def failed(error: BaseException) -> None:
            self._recording.discard(rank)
            self.rfr.show_error(error)

        self._recording.add(rank)
        self.run_engine(
            lambda: terminal.cases.adjudicate(session, case_id, rank, Decision.NOT_VIABLE, display=seen),
            done,
            group="adjudicate",
            exclusive=False,
            failed=failed,
        )

    def decide_viable(self, rank: int | None) -> None:
        if self.case is None or rank is None:
            return

        def reported(case: Case | None) -> None:
            if case is not None:
                self.case_changed(case)

        self.app.push_screen(MatchReportScreen(self.case_id, rank, seen_on=self.seen_on(), case=self.case), reported)


class CandidatesScreen(_Adjudicating):
    """The candidate list in the search's order, each decision so far; a decision per Potential Match by key."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "compare", "Compare", id="adjudication.compare", show=False),
        Binding("x", "not_viable", "Not viable", id="adjudication.not_viable"),
        Binding("v", "viable", "Viable Match", id="adjudication.viable"),
        Binding("escape", "back", "Back", id="adjudication.back"),
    ]

    def title_text(self) -> str:
        return f"Adjudicate: case {self.case_id}"

    def body(self) -> ComposeResult:
        yield from self.lead_widgets()
        yield Static(plain("Working: reading the case..."), id="adjudication-scores", classes="match-note")
        yield CandidateTable(id="adjudication-candidates")
        yield StateLabel("Reading the case...", Tone.NEUTRAL, id="adjudication-progress")

    def on_mount(self) -> None:
        terminal, session, case_id = self.terminal, self.session, self.case_id

        def read() -> tuple[Case, ScoreFormat]:
            case = terminal.cases.show(session, case_id)
            return case, ScoreFormat.load(terminal, case, session)

        def done(result: tuple[Case, ScoreFormat]) -> None:
            self.scores = result[1]
            self.query_one("#adjudication-scores", Static).update(plain(self.scores.note()))
            self.case_changed(result[0])
            self.query_one(CandidateTable).focus()

        self.run_engine(read, done, group="read-case")

    def show_case(self, case: Case) -> None:
        assert self.scores is not None
        table = self.query_one(CandidateTable)
        table.show_case(case, self.scores)
        words, tone = progress(case)
        self.query_one("#adjudication-progress", StateLabel).set_state(words, tone)

    def _rank(self) -> int | None:
        return self.query_one(CandidateTable).highlighted_rank

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_compare()

    def action_compare(self) -> None:
        rank = self._rank()
        if self.case is None or self.scores is None or rank is None:
            return
        screen = CompareScreen(self.case, self.scores, rank)

        def back(case: Case | None) -> None:
            if case is not None:
                self.case_changed(case)
            self.query_one(CandidateTable).highlight_rank(screen.last_rank)

        self.app.push_screen(screen, back)

    def action_not_viable(self) -> None:
        self.decide_not_viable(self._rank())

    def action_viable(self) -> None:
        self.decide_viable(self._rank())

    def action_back(self) -> None:
        self.dismiss(self.case)


class CompareScreen(_Adjudicating):
    """The comparison view over the case's Potential Matches, with the decision keys for the one shown."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("x", "not_viable", "Not viable", id="compare.not_viable"),
        Binding("v", "viable", "Viable Match", id="compare.viable"),
        Binding("escape", "back", "Back to the list", id="compare.back"),
    ]

    def __init__(self, case: Case, scores: ScoreFormat, rank: int) -> None:
        super().__init__(case.id)
        self.case = case
        self.scores = scores
        self.last_rank = rank

    @property
    def comparison(self) -> ComparisonView:
        return self.query_one(ComparisonView)

    def title_text(self) -> str:
        return f"Compare: case {self.case_id}"

    def body(self) -> ComposeResult:
        assert self.case is not None and self.scores is not None
        yield from self.lead_widgets()
        yield ComparisonView(self.case, candidate_texts(self.case, self.scores), self.last_rank, id="comparison")
        yield StateLabel("Reading the case...", Tone.NEUTRAL, id="compare-decision")

    def on_mount(self) -> None:
        self.comparison.focus()
        self._say_decision()

    def seen_on(self) -> Display:
        return self.comparison.seen_on

    def show_case(self, case: Case) -> None:
        assert self.scores is not None
        self.comparison.set_candidates(case, candidate_texts(case, self.scores))
        self._say_decision()

    def on_comparison_view_shown(self, event: ComparisonView.Shown) -> None:
        event.stop()
        self.last_rank = event.rank
        self._say_decision()

    def _say_decision(self) -> None:
        case = self.case
        assert case is not None
        label = self.query_one("#compare-decision", StateLabel)
        candidate = next((c for c in case.candidates if c.rank == self.comparison.rank), None)
        if candidate is None:
            label.set_state("No Potential Match to decide.", Tone.NEUTRAL)
            return
        words, tone = progress(case)
        if case.state in (CaseState.SEARCHED, CaseState.ADJUDICATED):
            words = f"Potential Match {candidate.rank}: {decision_words(candidate)}. {words}"
        label.set_state(words, tone)

    def action_not_viable(self) -> None:
        self.decide_not_viable(self.comparison.rank)

    def action_viable(self) -> None:
        self.decide_viable(self.comparison.rank)

    def action_back(self) -> None:
        self.dismiss(self.case)


# ---- the Match Report ---------------------------------------------------------------------------


def _factor_named(message: str) -> str | None:
    """The factor (or ``reasoning``) an engine sentence is about, so it can stand beside it."""
    for key in FACTORS:
        if f"factors.{key}" in message:
            return key
    for key, title in FACTORS.items():
        if title in message:
            return key
    if "match report: reasoning" in message:
        return "reasoning"
    return None


class MatchReportScreen(RfrScreen):
    """Factors (i) to (v) in the policy's words, each relevant or not and how it was evaluated, and the reasoning.

    The engine validates the report (``MatchReport.from_mapping``, then ``adjudicate``); its sentence
    appears beside the factor it names. Dismisses with the case once the Viable Match is recorded.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "record", "Record the Viable Match", id="match_report.record"),
        Binding("escape", "back", "Back without recording", id="match_report.back"),
    ]

    def __init__(self, case_id: str, rank: int, *, seen_on: Display | None = None, case: Case | None = None) -> None:
        super().__init__()
        self.case_id = case_id
        self.rank = rank
        self._seen = seen_on
        self._case = case

    def title_text(self) -> str:
        return f"Match Report: case {self.case_id}, Potential Match {self.rank}"

    @property
    def seen(self) -> Display:
        """How the pictures were seen: as the comparison said, else the renderer the application draws with."""
        return self._seen if self._seen is not None else display_for(active_renderer())

    def body(self) -> ComposeResult:
        statement = self.terminal.policy.score_display.intelligence_lead_statement
        yield StateLabel(statement, Tone.INFO, classes="match-lead")
        with Horizontal(id="report-main"):
            with Vertical(id="report-left"):
                yield from self._form()
            if self._case is not None:
                yield self._comparison(self._case)

    def _comparison(self, case: Case) -> ComparisonView:
        """The two faces beside the form, this Potential Match only."""
        candidate = next((c for c in case.candidates if c.rank == self.rank), None)
        title = candidate_label(candidate, len(case.candidates)) if candidate else f"Potential Match {self.rank}"
        return ComparisonView(case, [CandidateText(self.rank, title)], self.rank, stacked=True, id="report-comparison")

    def _form(self) -> ComposeResult:
        with VerticalScroll(id="report-form"):
            yield Static(
                plain(
                    "A Viable Match needs a Match Report. For each factor say whether it was relevant, and how you "
                    "evaluated it (for example how a difference in apparent age, image quality or lighting was "
                    "weighed). Tab moves between fields; Enter opens a relevant or not relevant choice."
                ),
                classes="report--intro",
            )
            for key, title in FACTORS.items():
                with Vertical(classes="report--factor", id=f"factor-{key}"):
                    yield Static(plain(title[:1].upper() + title[1:]), classes="report--factor-title")
                    with Horizontal(classes="report--factor-row"):
                        yield Select[bool](
                            [(plain("Relevant"), True), (plain("Not relevant"), False)],
                            prompt="Relevant? (choose)",
                            id=f"relevant-{key}",
                            classes="report--relevant",
                        )
                        yield Input(
                            placeholder="How you evaluated it",
                            id=f"assessment-{key}",
                            classes="report--assessment",
                            max_length=8000,
                        )
                    yield Static("", id=f"problem-{key}", classes="report--problem")
            with Vertical(classes="report--factor", id="factor-reasoning"):
                yield Static(
                    plain("Reasoning: why, taken together, you are satisfied the match is viable"),
                    classes="report--factor-title",
                )
                yield TextArea(id="reasoning", classes="report--reasoning", soft_wrap=True)
                yield Static("", id="problem-reasoning", classes="report--problem")
        yield Static("", id="report-problem", classes="report--problem")
        with Horizontal(classes="report--buttons"):
            yield Button(plain("Record the Viable Match (ctrl+s)"), id="record", variant="primary")

    def on_mount(self) -> None:
        self.query_one(f"#relevant-{next(iter(FACTORS))}", Select).focus()
        if self._case is None:  # opened with the case number only: the faces come once the case is read
            terminal, session, case_id = self.terminal, self.session, self.case_id

            def read() -> Case:
                return terminal.cases.show(session, case_id)

            def show(case: Case) -> None:
                self._case = case
                self.query_one("#report-main").mount(self._comparison(case))

            self.run_engine(read, show, group="read-case")

    # ---- the form ------------------------------------------------------------------------------

    def report_fields(self) -> dict[str, Any]:
        """What the person entered, in the shape the engine validates."""
        factors: dict[str, Any] = {}
        for key in FACTORS:
            chosen = self.query_one(f"#relevant-{key}", Select).value
            factors[key] = {
                "relevant": chosen if isinstance(chosen, bool) else None,
                "assessment": self.query_one(f"#assessment-{key}", Input).value,
            }
        return {"factors": factors, "reasoning": self.query_one("#reasoning", TextArea).text}

    def _entered_anything(self) -> bool:
        fields = self.report_fields()
        return bool(fields["reasoning"].strip()) or any(
            f["relevant"] is not None or f["assessment"].strip() for f in fields["factors"].values()
        )

    def _clear_problems(self) -> None:
        for key in (*FACTORS, "reasoning"):
            self.query_one(f"#problem-{key}", Static).update("")
        self.query_one("#report-problem", Static).update("")

    def show_problem(self, message: str) -> None:
        """The engine's sentence, beside the factor it names (or below the form)."""
        self._clear_problems()
        where = _factor_named(message)
        target = self.query_one(f"#problem-{where}" if where else "#report-problem", Static)
        target.update(plain(f"✖ {message}"))
        if where == "reasoning":
            self.query_one("#reasoning", TextArea).focus()
        elif where is not None:
            field = self.query_one(f"#assessment-{where}", Input)
            if "relevant" in message and f"factors.{where}.assessment" not in message:
                self.query_one(f"#relevant-{where}", Select).focus()
            else:
                field.focus()
            self.query_one(f"#factor-{where}").scroll_visible(animate=False)

    @property
    def problems(self) -> dict[str, str]:
        """The sentences on screen now, by factor key, ``reasoning`` or ``form`` (for tests and the help)."""
        out: dict[str, str] = {}
        for key in (*FACTORS, "reasoning"):
            text = str(self.query_one(f"#problem-{key}", Static).render())
            if text.strip():
                out[key] = text
        general = str(self.query_one("#report-problem", Static).render())
        if general.strip():
            out["form"] = general
        return out

    # ---- recording ---------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_record()

    def action_record(self) -> None:
        try:
            report = MatchReport.from_mapping(self.report_fields())
        except RfrError as error:
            self.show_problem(for_a_person(error.diagnostics()))
            return
        self._clear_problems()
        self.query_one("#report-problem", Static).update(plain("Working: recording the Viable Match..."))
        terminal, session, case_id, rank, seen = self.terminal, self.session, self.case_id, self.rank, self.seen

        def done(case: Case) -> None:
            self.app.notify(
                f"Potential Match {rank} recorded as a Viable Match, with its Match Report.", title=f"Case {case.id}"
            )
            self.dismiss(case)

        self.run_engine(
            lambda: terminal.cases.adjudicate(session, case_id, rank, Decision.VIABLE, report, display=seen),
            done,
            group="adjudicate",
            failed=lambda error: self.show_problem(_sentence(error)),
        )

    def action_back(self) -> None:
        if not self._entered_anything():
            self.dismiss(None)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.dismiss(None)

        self.app.push_screen(
            ConfirmDialog(
                "Leave the Match Report without recording it? What you entered is not kept.",
                yes="Leave",
                no="Stay",
                title="Leave the Match Report",
            ),
            answered,
        )
