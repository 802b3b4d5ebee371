"""The peer reviewer's work: 'no viable match' adjudications waiting for a second opinion, and the review itself.

The review shows the same comparison view as adjudication, over every Potential Match, with the
RFR User's decision on each. Agreeing declares 'no viable match': the engine closes the case and
deletes its probe data at once, which the screen says before the reviewer signs off. Either way
the reviewer gives a reason and their password again; the engine refuses a review of one's own
adjudication, and says so.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from engine.casework import Case, CaseState
from engine.security.users import ReauthPurpose
from rfr_tui.dialogs.confirm import ConfirmDialog
from rfr_tui.dialogs.password import PasswordDialog
from rfr_tui.dialogs.reason import ReasonDialog
from rfr_tui.screens.approval import QueueTable, policy_label, waiting
from rfr_tui.screens.base import RfrScreen
from rfr_tui.text import plain, plain_cell
from rfr_tui.widgets.candidate_list import ScoreFormat, candidate_texts
from rfr_tui.widgets.comparison import ComparisonView
from rfr_tui.widgets.state_label import StateLabel, Tone
from rfr_tui.wording import said

UNEXPECTED = "Not done: something unexpected happened. Try again; if it happens again, tell an engineer."


class PeerReviewQueueScreen(RfrScreen):
    """Cases whose RFR User found no Viable Match, waiting for a peer reviewer; Enter opens one."""

    TITLE_TEXT = "Peer reviews: 'no viable match' adjudications waiting for a second opinion"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", id="peer_reviews.open", show=False),
        Binding("f5", "reload", "Refresh", id="peer_reviews.reload"),
        Binding("escape", "back", "Back", id="peer_reviews.back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._ids: list[str] = []

    def body(self) -> ComposeResult:
        yield Static(
            plain(
                "The RFR User adjudicated every Potential Match of these cases as not viable. 'No viable match' is "
                "declared only when a peer reviewer agrees. Enter opens one."
            ),
            classes="queue--intro",
        )
        table = QueueTable(id="peer-review-queue")
        for key, label in (
            ("case", "Case"),
            ("reference", "Reference"),
            ("offence", "Offence"),
            ("by", "Adjudicated by"),
            ("matches", "Potential Matches"),
            ("waiting", "Waiting"),
        ):
            table.add_column(plain_cell(label), key=key)
        yield table
        yield Static(plain("Working: reading the queue..."), id="peer-review-empty", classes="queue--empty")

    def on_screen_resume(self) -> None:
        if self.rfr.session is None:  # signing out: this screen is only on its way off the stack
            return
        self.action_reload()

    def action_reload(self) -> None:
        terminal, session = self.terminal, self.session
        self.run_engine(lambda: terminal.cases.list_cases(session, CaseState.PEER_REVIEW), self._show, group="queue")

    def _show(self, cases: list[Case]) -> None:
        now = self.terminal.ws.now()
        me = self.session.username
        cases = sorted(cases, key=lambda c: (c.updated_at, c.id))
        table = self.query_one("#peer-review-queue", DataTable)
        table.clear()
        self._ids = [c.id for c in cases]
        for c in cases:
            adjudicators = sorted(c.adjudicators)
            by = ", ".join(f"{name} (you)" if name == me else name for name in adjudicators) or "nobody"
            table.add_row(
                plain_cell(c.id),
                plain_cell(c.form.reference),
                plain_cell(c.form.offence),
                plain_cell(by),
                plain_cell(str(len(c.candidates))),
                plain_cell(waiting(c.updated_at, now)),
                key=c.id,
            )
        empty = "" if cases else "No adjudication is waiting for a peer review."
        self.query_one("#peer-review-empty", Static).update(plain(empty))
        table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        table = self.query_one("#peer-review-queue", DataTable)
        if self._ids and 0 <= table.cursor_row < len(self._ids):
            self.app.push_screen(PeerReviewScreen(self._ids[table.cursor_row]))

    def action_back(self) -> None:
        self.app.pop_screen()


class PeerReviewScreen(RfrScreen):
    """Every Potential Match beside the Probe Image, with the RFR User's decisions; agree or disagree, signed off."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "agree", "Agree", id="peer_review.agree"),
        Binding("d", "disagree", "Disagree", id="peer_review.disagree"),
        Binding("escape", "back", "Back", id="peer_review.back"),
    ]

    def __init__(self, case_id: str) -> None:
        super().__init__()
        self.case_id = case_id
        self.case: Case | None = None

    def title_text(self) -> str:
        return f"Peer review: case {self.case_id}"

    def body(self) -> ComposeResult:
        display = self.terminal.policy.score_display
        yield StateLabel(display.intelligence_lead_statement, Tone.INFO, classes="match-lead")
        yield Static(plain(display.rank_caution), classes="match-caution")
        yield Static(plain("Working: reading the case..."), id="peer-review-summary", classes="match-note")
        yield StateLabel(
            "Agree (a): 'no viable match' is declared, the case closes and its Probe Image, template and scores are "
            "deleted at once. Disagree (d): the case goes back to the RFR User to adjudicate again.",
            Tone.WARNING,
            id="peer-review-consequence",
        )

    def on_mount(self) -> None:
        terminal, session, case_id = self.terminal, self.session, self.case_id

        def read() -> tuple[Case, ScoreFormat]:
            case = terminal.cases.show(session, case_id)
            return case, ScoreFormat.load(terminal, case, session)

        self.run_engine(read, self._show, group="read-case")

    def _show(self, result: tuple[Case, ScoreFormat]) -> None:
        case, scores = result
        self.case = case
        form = case.form
        adjudicators = ", ".join(sorted(case.adjudicators)) or "nobody"
        age = policy_label(self.terminal.policy, "age", form.age_band)
        viable = len(case.viable)
        state = case.state.value.replace("_", " ")
        summary = (
            f"Case {case.id} ({state}): {form.reference}, {form.offence}; apparent age band {age}. "
            f"Adjudicated by {adjudicators}: {len(case.candidates)} Potential Matches, {viable} Viable "
            f"Match{'es' if viable != 1 else ''}. {scores.note()}"
        )
        self.query_one("#peer-review-summary", Static).update(plain(summary))
        if case.candidates:
            first = case.candidates[0].rank
            view = ComparisonView(case, candidate_texts(case, scores), first, id="comparison")
            self.mount(view, after="#peer-review-summary")
            view.focus()

    def _problem(self, error: BaseException) -> None:
        sentence = said(error, UNEXPECTED)
        self.query_one("#peer-review-consequence", StateLabel).set_state(sentence, Tone.BAD)

    def action_agree(self) -> None:
        if self.case is None:
            return
        case_id = self.case_id
        question = (
            f"Agree that case {case_id} has no Viable Match? 'No viable match' is declared, the case closes, and its "
            "Probe Image, template and scores are deleted at once: they cannot be looked at again."
        )

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._sign_off(True)

        self.app.push_screen(
            ConfirmDialog(question, yes="Agree", no="Go back", title="No viable match", dangerous=True), confirmed
        )

    def action_disagree(self) -> None:
        if self.case is not None:
            self._sign_off(False)

    def _sign_off(self, agree: bool) -> None:
        case_id = self.case_id
        verdict = "agree: no viable match" if agree else "disagree"

        def with_reason(reason: str | None) -> None:
            if reason is None:
                return
            self.app.push_screen(
                PasswordDialog(
                    f"To sign off your peer review of case {case_id} ({verdict}), enter your password again."
                ),
                lambda password: self._record(agree, reason, password),
            )

        question = (
            "Why do you agree there is no Viable Match?"
            if agree
            else "Why do you disagree? The RFR User reads your reason when they adjudicate again."
        )
        self.app.push_screen(
            ReasonDialog(
                question,
                title=f"Peer review of case {case_id}: {verdict}",
                action="Sign off" if agree else "Send back",
                placeholder="The reason for your peer review (recorded on the case)",
            ),
            with_reason,
        )

    def _record(self, agree: bool, reason: str, password: str | None) -> None:
        if password is None:
            return
        terminal, session, case_id = self.terminal, self.session, self.case_id
        self.query_one("#peer-review-consequence", StateLabel).set_state(
            "Working: checking your password and recording the peer review...", Tone.NEUTRAL
        )

        def review() -> Case:
            terminal.accounts.reauthenticate(session, password, ReauthPurpose.PEER_REVIEW_SIGN_OFF)
            return terminal.cases.peer_review(session, case_id, agree, reason)

        def done(case: Case) -> None:
            if agree:
                held = "Its probe data is still held." if case.probe_image_held else "Its probe data was deleted."
                words = f"Case {case.id} closed: no viable match. {held}"
            else:
                words = f"Case {case.id} sent back to the RFR User to adjudicate again."
            self.app.notify(words, title="Peer review recorded")
            self.dismiss(case)

        self.run_engine(review, done, group="peer-review", failed=self._problem)

    def action_back(self) -> None:
        self.dismiss(None)
