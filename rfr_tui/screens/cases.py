"""My cases, and one case as its RFR User sees it: the form, the approval, the search, the decisions, the outcome.

Every action is the engine's (``terminal.cases``): the screen asks for what the action needs (a
reason, the advice, a place to write the Match Report), calls the engine in a worker, and shows
the one line it answers with when it refuses. Nothing here decides what a case may do next;
"waiting for" only describes where the case stands.
"""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, DataTable, Footer, Input, ProgressBar, RadioButton, RadioSet, Static, TextArea
from textual.widgets.data_table import CellDoesNotExist
from textual.worker import get_current_worker

from engine.audit.clock import parse_utc
from engine.casework import (
    HOW_TO_OPEN,
    REPORT_SUFFIX,
    Case,
    CaseState,
    CaseStep,
    Decision,
    Outcome,
    SearchResult,
    check_report_passphrase,
    render_match_report,
    write_report_file,
)
from engine.errors import RfrError
from engine.library.enrol import load_rgb
from engine.policy import Policy
from rfr_tui.dialogs.confirm import ConfirmDialog
from rfr_tui.dialogs.error import ErrorDialog
from rfr_tui.dialogs.new_secret import NewSecretDialog
from rfr_tui.dialogs.reason import ReasonDialog
from rfr_tui.screens.base import RfrScreen
from rfr_tui.text import plain, plain_cell
from rfr_tui.widgets import file_chooser
from rfr_tui.widgets.face_image import FaceImage
from rfr_tui.widgets.picture import face_picture
from rfr_tui.widgets.state_label import SYMBOLS, StateLabel, Tone
from rfr_tui.wording import for_a_person, sentence

ADJUDICATION = "rfr_tui.screens.adjudication"
NO_ADJUDICATION = (
    "The adjudication screen is not available on this terminal, so the Potential Matches cannot be "
    "adjudicated here yet. Tell an engineer; the case and its candidate list are kept."
)
WITHDRAW_WARNING = "the Probe Image and everything derived from it will be deleted"

# Each state in words and a tone; the symbol and the words carry it, the colour only repeats it.
STATES: dict[CaseState, tuple[str, Tone]] = {
    CaseState.DRAFT: ("Draft", Tone.NEUTRAL),
    CaseState.SUBMITTED: ("Awaiting approval", Tone.WARNING),
    CaseState.APPROVED: ("Approved", Tone.GOOD),
    CaseState.REJECTED: ("Rejected", Tone.BAD),
    CaseState.SEARCHED: ("Searched", Tone.INFO),
    CaseState.ADJUDICATED: ("Adjudicated", Tone.GOOD),
    CaseState.PEER_REVIEW: ("Awaiting peer review", Tone.INFO),
    CaseState.CLOSED: ("Closed", Tone.NEUTRAL),
    CaseState.WITHDRAWN: ("Withdrawn", Tone.NEUTRAL),
    CaseState.EXPIRED: ("Expired", Tone.BAD),
}
OUTCOMES = {Outcome.VIABLE_MATCH: "Viable Match", Outcome.NO_VIABLE_MATCH: "no viable match"}
# The filter key steps through these: every case, the open ones, then each state.
FILTERS: tuple[CaseState | str | None, ...] = (None, "open", *CaseState)


def state_words(case: Case) -> tuple[str, Tone]:
    """The case's state (with its outcome once there is one) in words, and its tone."""
    words, tone = STATES[case.state]
    if case.outcome is not None:
        words = f"{words} ({OUTCOMES[case.outcome]})"
    return words, tone


def when(stamp: str | None, *, zone: bool = True) -> str:
    """A recorded time, to the minute, in UTC (as recorded)."""
    if not stamp:
        return "-"
    try:
        return parse_utc(stamp).strftime("%Y-%m-%d %H:%M" + (" UTC" if zone else ""))
    except ValueError:
        return stamp


def advice_missing(case: Case, policy: Policy) -> list[str]:
    """The case's flags whose advice the policy asks to be recorded and which has none yet."""
    missing = []
    for key in case.approval_flags:
        try:
            needs = policy.flag(key).requires_recorded_advice
        except RfrError:  # a flag of an older policy: the engine says what it needs
            continue
        if needs and not any(a.flag == key for a in case.advice):
            missing.append(key)
    return missing


def waiting_for(case: Case, policy: Policy) -> str:
    """What the case waits for now, in words (a description; the engine decides what may happen)."""
    first = "advice, then " if advice_missing(case, policy) else ""
    state = case.state
    if state is CaseState.DRAFT:
        return f"{first}submission"
    if state is CaseState.SUBMITTED:
        return f"{first}approval: {case.required_rank} or above"
    if state is CaseState.APPROVED:
        return "the search"
    if state is CaseState.SEARCHED:
        decided = sum(1 for c in case.candidates if c.decision is not None)
        return f"adjudication: {decided} of {len(case.candidates)} decided"
    if state is CaseState.ADJUDICATED:
        return "the Match Report, then closing"
    if state is CaseState.PEER_REVIEW:
        return "a peer reviewer"
    return "nothing (ended)"


def next_keys(case: Case, policy: Policy) -> str:
    """The keys of the case screen that move the case on from here, as a hint."""
    advice = advice_missing(case, policy)
    state = case.state
    if state is CaseState.DRAFT:
        return "press v to record the advice, then s to submit" if advice else "press s to submit it for approval"
    if state is CaseState.SUBMITTED:
        return "press v to record the advice the approver needs" if advice else ""
    if state is CaseState.APPROVED:
        return "press r to run the search"
    if state is CaseState.SEARCHED:
        return "press j to Adjudicate the Potential Matches"
    if state is CaseState.ADJUDICATED:
        return "press e to export the Match Report, then c to close the case"
    return ""


FILTER_WORDS = {
    CaseState.DRAFT: "drafts",
    CaseState.SUBMITTED: "cases awaiting approval",
    CaseState.PEER_REVIEW: "cases awaiting peer review",
}


def filter_words(chosen: CaseState | str | None) -> str:
    if chosen is None:
        return "all cases"
    if chosen == "open":
        return "open cases (not ended)"
    state = CaseState(chosen)
    return FILTER_WORDS.get(state, f"{STATES[state][0].lower()} cases")


def _matches(case: Case, chosen: CaseState | str | None) -> bool:
    if chosen is None:
        return True
    if chosen == "open":
        return not case.state.final
    return case.state is chosen


# ---- my cases -----------------------------------------------------------------------------------


class MyCasesScreen(RfrScreen):
    """The signed-in person's cases: state, reference, use case, when last changed, what each waits for."""

    TITLE_TEXT = "My cases"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open case", id="cases.open"),
        Binding("f", "filter", "Filter by state", id="cases.filter"),
        Binding("a", "all", "All cases", id="cases.all"),
        Binding("n", "new", "New submission", id="cases.new"),
        Binding("r", "reload", "Refresh", id="cases.refresh"),
        Binding("escape", "back", "Back", id="cases.back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._cases: list[Case] = []
        self._filter: CaseState | str | None = None
        self._stale = False

    def body(self) -> ComposeResult:
        yield Static(plain("Reading your cases..."), id="cases-filter")
        table: DataTable[Any] = DataTable(id="cases", cursor_type="row", zebra_stripes=True)
        # Widths that fit 120 columns; the line below the table gives the highlighted case in full.
        for label, key, width in (
            ("Case", "case", 10),
            ("State", "state", 20),
            ("Reference", "reference", 14),
            ("Use case", "use_case", 16),
            ("Changed (UTC)", "changed", 16),
            ("Waiting for", "waiting", 28),
        ):
            table.add_column(plain_cell(label), key=key, width=width)
        yield table
        yield Static("", id="cases-detail")

    def on_mount(self) -> None:
        self.query_one("#cases", DataTable).focus()
        self.action_reload()

    def on_screen_resume(self) -> None:
        if self.rfr.session is None:  # signing out: this screen is only on its way off the stack
            return
        if self._stale:  # back from a case or a new submission: states may have changed
            self._stale = False
            self.action_reload()

    def action_reload(self) -> None:
        session = self.session
        self.run_engine(lambda: self.terminal.cases.list_cases(session, mine=True), self._listed, group="cases")

    def _listed(self, cases: list[Case]) -> None:
        self._cases = cases
        self._show()

    def _show(self) -> None:
        policy = self.terminal.policy
        titles = {u.key: u.title for u in policy.use_cases}
        table = self.query_one("#cases", DataTable)
        keep = self._highlighted_case()
        table.clear()
        shown = [c for c in reversed(self._cases) if _matches(c, self._filter)]  # newest first
        for case in shown:
            words, tone = state_words(case)
            table.add_row(
                plain_cell(case.id),
                plain_cell(f"{SYMBOLS[tone]} {words}", "bold" if tone in (Tone.WARNING, Tone.BAD) else ""),
                plain_cell(_short(case.form.reference, 14)),
                plain_cell(_short(titles.get(case.form.use_case, case.form.use_case), 16)),
                plain_cell(when(case.updated_at, zone=False)),
                plain_cell(_short(waiting_for(case, policy), 28)),
                key=case.id,
            )
        if keep is not None and keep in {c.id for c in shown}:
            table.move_cursor(row=table.get_row_index(keep))
        count = f"{len(shown)} of {len(self._cases)}"
        if not self._cases:
            line = "You have no cases yet. Press n to complete a new RFR Submission Form."
        elif not shown:
            line = f"Showing {filter_words(self._filter)}: none of your {len(self._cases)} cases. Press a for all."
        else:
            line = f"Showing {filter_words(self._filter)} ({count}). Enter opens a case; f filters by state."
        self.query_one("#cases-filter", Static).update(plain(line))
        self._say_highlighted()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._say_highlighted()

    def _say_highlighted(self) -> None:
        """The highlighted case in full: its use case in the policy's words, and what it waits for."""
        case_id = self._highlighted_case()
        case = next((c for c in self._cases if c.id == case_id), None)
        detail = self.query_one("#cases-detail", Static)
        if case is None:
            detail.update("")
            return
        policy = self.terminal.policy
        title = next((u.title for u in policy.use_cases if u.key == case.form.use_case), case.form.use_case)
        detail.update(
            plain(
                f"{case.id}, {case.form.reference}: {title}\n"
                f"Waiting for {waiting_for(case, policy)}; last changed {when(case.updated_at)}."
            )
        )

    def _highlighted_case(self) -> str | None:
        table = self.query_one("#cases", DataTable)
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except CellDoesNotExist:  # no row under the cursor
            return None
        return None if key.value is None else str(key.value)

    def action_filter(self) -> None:
        self._filter = FILTERS[(FILTERS.index(self._filter) + 1) % len(FILTERS)]
        self._show()

    def action_all(self) -> None:
        self._filter = None
        self._show()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self._open(str(event.row_key.value))

    def action_open(self) -> None:
        case_id = self._highlighted_case()
        if case_id is not None:
            self._open(case_id)

    def _open(self, case_id: str) -> None:
        self._stale = True
        self.app.push_screen(CaseScreen(case_id))

    def action_new(self) -> None:
        from rfr_tui.screens.submission import NewSubmissionScreen

        self._stale = True
        self.app.push_screen(NewSubmissionScreen())

    def action_back(self) -> None:
        self.app.pop_screen()


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


# ---- dialogs the case's actions need ---------------------------------------------------------------


@dataclass(frozen=True)
class AdviceAnswer:
    """The advice a flagged case needs, as the officer typed it (the engine checks it)."""

    flag: str
    adviser: str
    given_on: str
    advice: str


class AdviceDialog(ModalScreen[AdviceAnswer | None]):
    """Who gave the advice, when, and what it said; shown again with the engine's problem if it refused."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "record", "Record the advice", id="advice.record", priority=True),
        Binding("escape", "cancel", "Cancel", id="advice.cancel"),
    ]

    def __init__(
        self,
        case_id: str,
        flags: list[tuple[str, str]],
        *,
        previous: AdviceAnswer | None = None,
        problem: str = "",
    ) -> None:
        super().__init__()
        self._case_id = case_id
        self._flags = flags  # (key, the policy's description)
        self._previous = previous
        self._problem = problem

    def compose(self) -> ComposeResult:
        previous = self._previous
        with Vertical(classes="dialog dialog--advice"):
            yield Static(plain(f"Record advice for case {self._case_id}"), classes="dialog--title")
            yield Static(plain("The flag the advice answers"), classes="entry-label")
            yield RadioSet(
                *[
                    RadioButton(
                        plain(f"{key.replace('_', ' ')}: {description}"),
                        id=f"flag-{key}",
                        value=(previous.flag == key) if previous else i == 0,
                    )
                    for i, (key, description) in enumerate(self._flags)
                ],
                id="advice-flag",
            )
            yield Static(plain("Who gave the advice, and their team"), classes="entry-label")
            yield Input(
                previous.adviser if previous else "", id="advice-adviser", placeholder="e.g. J. Smith, FRT team"
            )
            yield Static(plain("When it was given (YYYY-MM-DD)"), classes="entry-label")
            yield Input(previous.given_on if previous else "", id="advice-given", placeholder="YYYY-MM-DD")
            yield Static(plain("What the advice said"), classes="entry-label")
            yield TextArea(previous.advice if previous else "", id="advice-text", soft_wrap=True, tab_behavior="focus")
            problem = Static(plain(f"✖ {self._problem}" if self._problem else ""), id="advice-problem")
            problem.add_class("entry-problem")
            if self._problem:
                problem.add_class("-shown")
            yield problem
            with Horizontal(classes="dialog--buttons"):
                yield Button(plain("Record (Ctrl+S)"), id="record", variant="primary")
                yield Button(plain("Cancel (Esc)"), id="cancel", variant="default")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#advice-adviser", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus_next()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "record":
            self.action_record()
        else:
            self.action_cancel()

    def action_record(self) -> None:
        pressed = self.query_one("#advice-flag", RadioSet).pressed_button
        flag = (pressed.id or "").removeprefix("flag-") if pressed is not None else self._flags[0][0]
        self.dismiss(
            AdviceAnswer(
                flag,
                self.query_one("#advice-adviser", Input).value,
                self.query_one("#advice-given", Input).value,
                self.query_one("#advice-text", TextArea).text,
            )
        )

    def action_cancel(self) -> None:
        self.dismiss(None)


# ---- one case ---------------------------------------------------------------------------------------


class CaseScreen(RfrScreen):
    """Everything about one case for its RFR User, and the actions on it by key."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "submit", "Submit", id="case.submit"),
        Binding("v", "advice", "Record advice", id="case.advice"),
        Binding("r", "search", "Run the search", id="case.search"),
        Binding("j", "adjudicate", "Adjudicate", id="case.adjudicate"),
        Binding("e", "export", "Export Match Report", id="case.export"),
        Binding("c", "close_case", "Close", id="case.close"),
        Binding("w", "withdraw", "Withdraw", id="case.withdraw"),
        Binding("escape", "back", "Back", id="case.back"),
    ]

    def __init__(self, case_id: str, *, places: list[file_chooser.Place] | None = None) -> None:
        super().__init__()
        self.case_id = case_id
        self._places = places
        self._case: Case | None = None
        self._picture: Image.Image | None = None
        self._picture_tried = False
        self._busy = False
        self._stale = False
        self._rebuilding = asyncio.Lock()

    # Each key's step: offered (in the footer) only where the case stands as the engine accepts it.
    STEPS: ClassVar[dict[str, CaseStep]] = {
        "submit": CaseStep.SUBMIT,
        "advice": CaseStep.ADVICE,
        "search": CaseStep.SEARCH,
        "adjudicate": CaseStep.ADJUDICATE,
        "export": CaseStep.EXPORT_REPORT,
        "close_case": CaseStep.CLOSE,
        "withdraw": CaseStep.WITHDRAW,
    }

    def title_text(self) -> str:
        return f"Case {self.case_id}"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        step = self.STEPS.get(action)
        return step is None or self._case is None or self._case.step_open(step)

    @property
    def case(self) -> Case | None:
        return self._case

    def _set_case(self, case: Case) -> None:
        self._case = case
        self.refresh_bindings()  # the footer offers the steps open where the case now stands

    def body(self) -> ComposeResult:
        with Horizontal(id="case-head"):
            yield StateLabel("Reading the case...", Tone.NEUTRAL, id="case-state")
            yield Static("", id="case-waiting")
        with Vertical(id="case-work"):
            yield Static("", id="case-progress-line")
            yield ProgressBar(total=None, show_eta=False, show_percentage=False, id="case-progress")
        yield Static("", id="case-message")
        yield VerticalScroll(id="case-body")

    def on_mount(self) -> None:
        self.query_one("#case-work").display = False
        self.query_one("#case-message").display = False
        self.query_one("#case-body", VerticalScroll).focus()
        self.reload()

    # ---- reading the case ----------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the case again (audited as a view) and show it; the Probe Image is read once per screen."""
        session, cases = self.session, self.terminal.cases
        want_picture = not self._picture_tried

        def read() -> tuple[Case, Image.Image | None]:
            case = cases.show(session, self.case_id)
            picture = None
            if want_picture and case.probe_image_held and case.probe_face is not None:
                view = cases.probe(session, self.case_id)
                whole = Image.fromarray(load_rgb(view.image, f"the Probe Image of case {self.case_id}"), mode="RGB")
                face = case.probe_face
                picture = face_picture(whole, face.box, face.landmarks, margin=0.4, overlay=True)
            return case, picture

        self.run_engine(read, self._read, group="case")

    def _read(self, result: tuple[Case, Image.Image | None]) -> None:
        case, picture = result
        if not self._picture_tried:
            self._picture_tried = True
            self._picture = picture
        if not case.probe_image_held:
            self._picture = None  # deleted: nothing of it stays on screen
        self._set_case(case)
        self._show(case)

    def _show(self, case: Case) -> None:
        """The state and what the case waits for now; the sections once the old ones are gone."""
        words, tone = state_words(case)
        self.query_one("#case-state", StateLabel).set_state(words, tone)
        waiting = waiting_for(case, self.terminal.policy)
        keys = next_keys(case, self.terminal.policy)
        self.query_one("#case-waiting", Static).update(
            plain(f"Waiting for {waiting}." + (f" Next: {keys}." if keys else ""))
        )
        self.call_later(self._rebuild, CaseView(case, self.terminal.policy, self._picture))

    async def _rebuild(self, view: CaseView) -> None:
        # One rebuild at a time, each removal finished before the new sections (with their ids) arrive.
        async with self._rebuilding:
            body = self.query_one("#case-body", VerticalScroll)
            with self.app.batch_update():
                await body.remove_children()
                await body.mount_all(view.parts())

    # ---- actions: each one the engine's ------------------------------------------------------------

    def _run(self, doing: str, work: Any, done: Any, refused: Any = None) -> None:
        """Run an engine action in a worker with a plain progress line; a refusal goes to ``refused``, else the
        error dialog (and the case is read again: something may have changed it)."""
        if self._busy:
            self.app.notify("Wait for the current action to finish.")
            return
        self._busy = True
        self._progress(doing)

        def finished(result: Any) -> None:
            self._idle()
            done(result)

        def failed(error: BaseException) -> None:
            self._idle()
            if refused is not None:
                refused(error)
                return
            self.rfr.show_error(error)
            self.reload()

        self.run_engine(work, finished, group="case-action", failed=failed)

    def _progress(self, line: str) -> None:
        self.query_one("#case-work").display = True
        self.query_one("#case-progress-line", Static).update(plain(line))

    def _idle(self) -> None:
        self._busy = False
        self.query_one("#case-work").display = False

    def _say(self, line: str, tone: Tone = Tone.GOOD) -> None:
        message = self.query_one("#case-message", Static)
        message.update(plain(f"{SYMBOLS[tone]} {line}"))
        message.display = True

    def _after(self, verb: str) -> Any:
        def done(case: Case) -> None:
            self._set_case(case)
            self._say(f"Case {case.id} {verb}.")
            self.reload()

        return done

    @property
    def busy(self) -> bool:
        return self._busy

    def action_submit(self) -> None:
        session, cases, case_id = self.session, self.terminal.cases, self.case_id
        self._run(
            f"Submitting case {case_id}...",
            lambda: cases.submit(session, case_id),
            self._after("submitted for approval"),
        )

    def action_withdraw(self) -> None:
        def confirmed(reason: str, yes: bool | None) -> None:
            if not yes:
                return
            session, cases, case_id = self.session, self.terminal.cases, self.case_id
            self._run(
                f"Withdrawing case {case_id}...",
                lambda: cases.withdraw(session, case_id, reason),
                self._after("withdrawn: its Probe Image and everything derived from it were deleted"),
            )

        def reasoned(reason: str | None) -> None:
            if reason is None:
                return
            self.app.push_screen(
                ConfirmDialog(
                    f"Withdraw case {self.case_id}? {WITHDRAW_WARNING[0].upper()}{WITHDRAW_WARNING[1:]}, now and "
                    "for good.",
                    yes="Withdraw and delete",
                    no="Keep the case",
                    title="Withdraw the case",
                    dangerous=True,
                ),
                lambda yes: confirmed(reason, yes),
            )

        self.app.push_screen(
            ReasonDialog(
                f"Why is case {self.case_id} withdrawn? The reason is recorded on the case. "
                f"Withdrawing means {WITHDRAW_WARNING}.",
                title=f"Withdraw case {self.case_id}",
                action="Continue",
                placeholder="The reason (it is recorded on the case)",
            ),
            reasoned,
        )

    def action_advice(self, previous: AdviceAnswer | None = None, problem: str = "") -> None:
        case = self._case
        if case is None:
            return
        if not case.approval_flags:
            self._say(f"Case {case.id} carries no flag that asks for advice.", Tone.INFO)
            return
        flags = []
        for key in case.approval_flags:
            try:
                flags.append((key, self.terminal.policy.flag(key).description))
            except RfrError:
                flags.append((key, "a flag of the policy this case was made under"))

        def answered(answer: AdviceAnswer | None) -> None:
            if answer is None:
                return
            session, cases, case_id = self.session, self.terminal.cases, self.case_id

            def refused(error: BaseException) -> None:
                if isinstance(error, RfrError):  # ask again, with the engine's sentence beside the fields
                    self.action_advice(answer, for_a_person(error.diagnostics()))
                else:
                    self.rfr.show_error(error)

            self._run(
                f"Recording the advice on case {case_id}...",
                lambda: cases.record_advice(
                    session,
                    case_id,
                    flag=answer.flag,
                    adviser=answer.adviser,
                    given_on=answer.given_on,
                    advice=answer.advice,
                ),
                self._after("has its advice recorded"),
                refused,
            )

        self.app.push_screen(AdviceDialog(case.id, flags, previous=previous, problem=problem), answered)

    def action_search(self) -> None:
        case = self._case
        count = len(case.approved_libraries or case.form.libraries) if case is not None else 0
        session, terminal, case_id = self.session, self.terminal, self.case_id
        libraries = f"{count} librar{'y' if count == 1 else 'ies'}"

        def search() -> SearchResult:
            worker = get_current_worker()
            if not terminal.faces.ready:
                self.app.call_from_thread(self._progress, "Loading the face engine...")
                terminal.faces.get()
            if not worker.is_cancelled:
                self.app.call_from_thread(
                    self._progress, f"Finding the face in the Probe Image and searching {libraries}..."
                )
            return terminal.cases.search(session, case_id)

        def searched(result: SearchResult) -> None:
            self._set_case(result.case)
            found = len(result.candidates)
            matches = "1 Potential Match" if found == 1 else f"{found} Potential Matches"
            self._say(
                f"Search complete: {matches} from {', '.join(result.libraries)}."
                + (" Press j to Adjudicate them." if found else "")
            )
            self.reload()

        self._run(f"Starting the search of case {case_id}...", search, searched)

    def action_adjudicate(self) -> None:
        case = self._case
        if case is None:
            return
        if not case.candidates:
            self._say(f"Case {case.id} has no Potential Matches to adjudicate ({STATES[case.state][0]}).", Tone.INFO)
            return
        try:
            screen_class = importlib.import_module(ADJUDICATION).CandidatesScreen
        except (ImportError, AttributeError):
            self.app.push_screen(ErrorDialog(NO_ADJUDICATION))
            return
        self._stale = True
        self.app.push_screen(screen_class(self.case_id))

    def on_screen_resume(self) -> None:
        if self.rfr.session is None:  # signing out: this screen is only on its way off the stack
            return
        if self._stale:  # back from the adjudication screen: its decisions show here
            self._stale = False
            self.reload()

    def action_close_case(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if not yes:
                return
            session, cases, case_id = self.session, self.terminal.cases, self.case_id
            self._run(
                f"Closing case {case_id}...",
                lambda: cases.close(session, case_id),
                self._after("closed: its probe template was deleted"),
            )

        self.app.push_screen(
            ConfirmDialog(
                f"Close case {self.case_id}? Its probe template is deleted now; the Match Report keeps the Probe "
                "Image and the reference images. Export the Match Report (e) first if it is needed.",
                yes="Close the case",
                no="Not yet",
                title="Close the case",
            ),
            confirmed,
        )

    def action_export(self) -> None:
        places = self._places if self._places is not None else file_chooser.default_places()
        dialog = file_chooser.FileChooserDialog.save(
            places,
            title=f"Export the Match Report of case {self.case_id}",
            purpose=(
                "Choose the folder and the file name. The Match Report holds the Probe Image and the reference "
                "images: it is written encrypted, "
                + (
                    "with a passphrase you choose next."
                    if self.terminal.report_needs_passphrase
                    else "to the recipients configured for Match Reports."
                )
            ),
            name=f"{self.case_id}-match-report{REPORT_SUFFIX}",
        )
        self.app.push_screen(dialog, self._export_to)

    def _export_to(self, path: Path | None) -> None:
        if path is None:
            return
        if not self.terminal.report_needs_passphrase:
            self._export(path, None)
            return

        def typed(passphrase: str | None) -> None:
            if passphrase is not None:
                self._export(path, passphrase)

        dialog = NewSecretDialog(
            f"A passphrase for the Match Report of case {self.case_id}",
            f"The file {path.name} is encrypted with this passphrase. Give it to the person who will open the file "
            "separately, never with the file (by telephone, say).",
            noun="passphrase",
            check=check_report_passphrase,
        )
        self.app.push_screen(dialog, typed)

    def _export(self, path: Path, passphrase: str | None) -> None:
        session, terminal, case_id = self.session, self.terminal, self.case_id

        def export() -> tuple[Path, str]:
            sealing = terminal.report_sealing(passphrase)
            material = terminal.cases.report_material(session, case_id, str(path))
            return write_report_file(path, render_match_report(material, terminal.policy), sealing), sealing.describe()

        def exported(result: tuple[Path, str]) -> None:
            written, how = result
            self._say(f"Match Report written to {written} (readable by you only), {how}. To read it, {HOW_TO_OPEN}.")
            self.app.notify(sentence(how), title="Match Report exported")
            self.reload()

        self._run(f"Writing the Match Report of case {case_id}...", export, exported)

    def action_back(self) -> None:
        self.app.pop_screen()


class CaseView:
    """The widgets that show one case, section by section (built afresh on every reading)."""

    def __init__(self, case: Case, policy: Policy, picture: Image.Image | None) -> None:
        self.case = case
        self.policy = policy
        self.picture = picture

    def parts(self) -> list[Widget]:
        out: list[Widget] = []
        out += self._form()
        out += self._probe()
        out += self._approval()
        out += self._search()
        out += self._outcome()
        return out

    @staticmethod
    def _heading(text: str) -> Static:
        return Static(plain(text), classes="case--heading")

    @staticmethod
    def _text(text: str, classes: str = "case--text") -> Static:
        return Static(plain(text), classes=classes)

    def _lead(self) -> Static:
        return Static(plain(self.policy.score_display.intelligence_lead_statement), classes="case--lead")

    def _form(self) -> list[Widget]:
        case, form, policy = self.case, self.case.form, self.policy
        titles = {u.key: u.title for u in policy.use_cases}
        as_words = "RFR User" if form.completed_as.value == "rfr_user" else "tasking officer / SPOC"
        lines = [
            f"Completed by {form.completed_by} ({as_words}), {when(case.created_at)}; policy {case.policy_version}.",
            f"Use case: {titles.get(form.use_case, form.use_case)}",
            f"Crime or occurrence reference: {form.reference}.   Offence type: {form.offence}.",
            f"Legitimate aim, necessity and proportionality: {form.justification}",
        ]
        checks = []
        for answer in form.pre_rfr_checks:
            try:
                label = policy.pre_rfr_check(answer.key).label
            except RfrError:
                label = answer.key.replace("_", " ")
            checks.append(f"✔ {label}: {answer.status.value}. {answer.detail}")
        bands = {b.key: b.label for b in policy.age_bands}
        factors = [
            f"Apparent age band: {bands.get(form.age_band, form.age_band)}.",
            "Relevant disability affecting facial appearance suspected: "
            + ("yes" if form.relevant_disability else "no")
            + ".",
            "Pre-dates the subject's gender reassignment: "
            + ("yes" if form.pre_dates_gender_reassignment else "no")
            + ".",
            f"Head or face coverings: {form.coverings or 'none recorded'}.",
            f"Injuries: {form.injuries or 'none recorded'}.",
        ]
        return [
            self._heading("The RFR Submission Form"),
            self._text("\n".join(lines)),
            self._heading("Pre-RFR Checks"),
            self._text("\n".join(checks)),
            self._heading("Subject factors"),
            self._text("\n".join(factors)),
            self._heading("Permitted Image Reference Libraries asked for"),
            self._text(", ".join(form.libraries)),
        ]

    def _probe(self) -> list[Widget]:
        case, form = self.case, self.case.form
        source = "police-originated" if form.probe_source.value == "police" else "not police-originated"
        lines = [f"Source: {source}; captured {form.probe_captured}; obtained: {form.probe_obtained}."]
        face = case.probe_face
        if face is not None:
            how = f"only once enlarged ({face.note})" if face.note else "at the photograph's own size"
            which = "the only face" if face.faces_found == 1 else f"face {face.number} of the {face.faces_found}"
            lines.append(f"Face searched: {which} found, {how}; the image is {face.width} x {face.height} pixels.")
        warnings = (case.probe_quality or {}).get("warnings") or []
        if case.probe_quality is not None:
            lines.append(
                "Measured quality: " + ("; ".join(f"⚠ {w}" for w in warnings) if warnings else "no quality warnings")
            )
        if case.probe_image_held:
            lines.append("The Probe Image is held on this terminal, encrypted, until the case ends.")
        else:
            deleted = when(case.probe_deleted_at) if case.probe_deleted_at else "when the case ended"
            lines.append(f"The Probe Image and everything derived from it were deleted ({deleted}).")
        text = self._text("\n".join(lines), "case--text case--probe-text")
        parts: list[Widget] = [self._heading("The Probe Image")]
        if self.picture is not None:
            parts.append(Horizontal(FaceImage(self.picture, id="case-probe-picture"), text, id="case-probe"))
        else:
            parts.append(text)
        return parts

    def _approval(self) -> list[Widget]:
        case, policy = self.case, self.policy
        lines = [f"Needs approval by {case.required_rank} or above, because:"]
        lines += [f"  • {reason}" for reason in case.approval_reasons]
        flags = []
        for key in case.approval_flags:
            try:
                flags.append(f"⚑ {key.replace('_', ' ')}: {policy.flag(key).description}")
            except RfrError:
                flags.append(f"⚑ {key.replace('_', ' ')}")
        if case.monitoring_flags:
            flags.append("Monitoring: " + ", ".join(f.replace("_", " ") for f in case.monitoring_flags) + ".")
        advice = [
            f"✔ Advice ({a.flag.replace('_', ' ')}) from {a.adviser}, given {a.given_on}: {a.advice}"
            for a in case.advice
        ]
        missing = advice_missing(case, policy)
        advice += [f"⚠ No advice recorded yet for {key.replace('_', ' ')}: press v to record it." for key in missing]
        review = case.review_of
        if review is None:
            decision = "Not decided yet."
        else:
            verb = "Approved" if review.kind == "approval" else "Rejected"
            decision = f"{verb} by {review.actor} ({review.rank}), {when(review.at)}: {review.reason}"
        covered = [f"{a.name} ({a.kind}, content version {a.content_version})" for a in case.approved_libraries]
        parts: list[Widget] = [self._heading("Approval"), self._text("\n".join(lines))]
        if flags:
            parts.append(self._text("\n".join(flags)))
        if advice:
            parts.append(self._text("\n".join(advice)))
        parts.append(self._text(decision + (f"\nThe approval covers: {', '.join(covered)}." if covered else "")))
        return parts

    def _search(self) -> list[Widget]:
        case = self.case
        if case.searched_at is None:
            return []
        parts: list[Widget] = [
            self._heading("Search"),
            self._text(
                f"Searched by {case.searched_by}, {when(case.searched_at)}: "
                f"{', '.join(case.libraries_searched)} with face model {case.model_id}."
            ),
            self._heading(f"Potential Matches ({len(case.candidates)})"),
        ]
        if not case.candidates:
            parts.append(self._text("The search returned no Potential Matches."))
            return parts
        parts.append(self._lead())
        parts.append(self._text(self.policy.score_display.rank_caution, "case--text case--caution"))
        table: DataTable[Any] = DataTable(id="case-candidates", cursor_type="none", zebra_stripes=True)
        table.can_focus = False
        for label in ("Rank", "Library", "Reference subject", "Decision", "Decided by"):
            table.add_column(plain_cell(label))
        for c in case.candidates:
            if c.decision is None:
                decision = "• not yet adjudicated"
            elif c.decision is Decision.VIABLE:
                decision = "◆ Viable Match (Match Report)"
            else:
                decision = "✖ not viable"
            table.add_row(
                plain_cell(str(c.rank)),
                plain_cell(c.library),
                plain_cell(c.subject),
                plain_cell(decision),
                plain_cell(c.decided_by or "-"),
            )
        parts.append(table)
        return parts

    def _outcome(self) -> list[Widget]:
        case = self.case
        lines = []
        if case.outcome is Outcome.VIABLE_MATCH:
            lines.append(
                f"Viable Match: {len(case.viable)} Potential Match(es) adjudicated viable, with Match Reports."
            )
        elif case.outcome is Outcome.NO_VIABLE_MATCH:
            lines.append("No viable match, agreed by a peer reviewer.")
        for review in case.reviews:
            if review.kind == "peer_review":
                verdict = "agreed: no viable match" if review.agree else "disagreed: back for adjudication"
                lines.append(f"Peer review by {review.actor}, {when(review.at)}: {verdict}. {review.reason}")
        if case.closed_at:
            lines.append(f"Ended {when(case.closed_at)} by {case.closed_by}.")
        if case.ended_reason:
            lines.append(f"Reason: {case.ended_reason}")
        if not lines:
            return []
        parts: list[Widget] = [self._heading("Outcome")]
        if case.outcome is Outcome.VIABLE_MATCH:
            parts.append(self._lead())
        parts.append(self._text("\n".join(lines)))
        return parts


__all__ = [
    "STATES",
    "AdviceAnswer",
    "AdviceDialog",
    "CaseScreen",
    "MyCasesScreen",
    "state_words",
    "waiting_for",
]
