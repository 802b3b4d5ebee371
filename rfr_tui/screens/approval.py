"""The approver's work: the queue of submitted cases, and one screen holding everything needed to decide one.

The decision screen shows the whole RFR Submission Form, the Probe Image with the face the case
searches with boxed, the rank the policy requires and why, the flags and the advice recorded for
them. Approving asks for the reason and then the password again; rejecting asks for the reason.
Whether this approver may decide this case (rank, their own submission, missing advice) is the
engine's to say: its sentence is shown as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from PIL import Image
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from engine.audit.clock import parse_utc
from engine.casework import Case, CaseState
from engine.errors import PolicyError, RfrError
from engine.library.service import LibraryInfo
from engine.policy import Policy
from engine.security.users import ReauthPurpose
from rfr_tui.dialogs.password import PasswordDialog
from rfr_tui.dialogs.reason import ReasonDialog
from rfr_tui.screens.base import RfrScreen
from rfr_tui.text import plain, plain_cell
from rfr_tui.widgets.face_image import FaceImage
from rfr_tui.widgets.picture import draw_overlay
from rfr_tui.widgets.state_label import StateLabel, Tone
from rfr_tui.wording import for_a_person, said

UNEXPECTED = "Not done: something unexpected happened. Try again; if it happens again, tell an engineer."
MONITORING = {
    "under_18": "the Probe Image appears to involve someone under 18 (recorded for monitoring)",
    "under_16": "the Probe Image appears to involve someone under 16 (recorded for monitoring)",
}


def when(text: str | None) -> str:
    """A recorded time as a person reads it."""
    if not text:
        return "not recorded"
    return parse_utc(text).strftime("%Y-%m-%d %H:%M UTC")


def waiting(since: str | None, now: datetime) -> str:
    """How long something has waited, in words."""
    if not since:
        return "unknown"
    minutes = max(0, int((now - parse_utc(since)).total_seconds() // 60))
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h"


def flag_words(flag: str) -> str:
    return flag.replace("_", " ")


# ---- the queue ----------------------------------------------------------------------------------


class QueueTable(DataTable[str]):
    """A queue of cases, one per row; Enter opens the one under the cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open", id="queue.open"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)


class ApprovalQueueScreen(RfrScreen):
    """Submitted cases waiting for an approver, longest waiting first; Enter opens one."""

    TITLE_TEXT = "Approvals: submissions waiting for an approver"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", id="approvals.open", show=False),
        Binding("f5", "reload", "Refresh", id="approvals.reload"),
        Binding("escape", "back", "Back", id="approvals.back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._ids: list[str] = []

    def body(self) -> ComposeResult:
        yield Static(
            plain("Each submission needs an approver of the rank shown or above. Enter opens one to decide."),
            classes="queue--intro",
        )
        table = QueueTable(id="approval-queue")
        for key, label in (
            ("case", "Case"),
            ("reference", "Reference"),
            ("offence", "Offence"),
            ("rank", "Needs"),
            ("flags", "Flags"),
            ("by", "Submitted by"),
            ("waiting", "Waiting"),
        ):
            table.add_column(plain_cell(label), key=key)
        yield table
        yield Static(plain("Working: reading the queue..."), id="approval-empty", classes="queue--empty")

    def on_screen_resume(self) -> None:
        if self.rfr.session is None:  # signing out: this screen is only on its way off the stack
            return
        self.action_reload()

    def action_reload(self) -> None:
        terminal, session = self.terminal, self.session
        self.run_engine(lambda: terminal.cases.list_cases(session, CaseState.SUBMITTED), self._show, group="queue")

    def _show(self, cases: list[Case]) -> None:
        now = self.terminal.ws.now()
        me = self.session.username
        cases = sorted(cases, key=lambda c: (c.submitted_at or "", c.id))
        table = self.query_one("#approval-queue", DataTable)
        table.clear()
        self._ids = [c.id for c in cases]
        for c in cases:
            by = c.submitted_by or c.created_by
            table.add_row(
                plain_cell(c.id),
                plain_cell(c.form.reference),
                plain_cell(c.form.offence),
                plain_cell(f"{c.required_rank} or above"),
                plain_cell(", ".join(flag_words(f) for f in c.flags) or "none"),
                plain_cell(f"{by} (you)" if by == me else by),
                plain_cell(waiting(c.submitted_at, now)),
                key=c.id,
            )
        empty = "" if cases else "No submission is waiting for an approver."
        self.query_one("#approval-empty", Static).update(plain(empty))
        table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        table = self.query_one("#approval-queue", DataTable)
        if self._ids and 0 <= table.cursor_row < len(self._ids):
            self.app.push_screen(DecisionScreen(self._ids[table.cursor_row]))

    def action_back(self) -> None:
        self.app.pop_screen()


# ---- one case, to decide ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Material:
    """What the decision screen shows, read in one go (each read audited by the engine)."""

    case: Case
    picture: Image.Image | None
    probe_problem: str | None
    libraries: dict[str, LibraryInfo]


def _probe_picture(data: bytes, case: Case) -> Image.Image:
    """The whole Probe Image, upright as the face engine saw it, with the chosen face boxed."""
    import numpy as np

    from engine.faces.image_io import load_image

    rgb = load_image(data, name=f"the Probe Image of case {case.id}").rgb
    picture = Image.fromarray(np.array(rgb, dtype=np.uint8), mode="RGB")
    face = case.probe_face
    if face is None:
        return picture
    return draw_overlay(picture, box=tuple(float(v) for v in face.box))  # type: ignore[arg-type]


def policy_label(policy: Policy, kind: str, key: str) -> str:
    """The policy's words for a use case, Pre-RFR Check or age band (the key itself if the policy changed)."""
    try:
        if kind == "use_case":
            return policy.use_case(key).title
        if kind == "check":
            return policy.pre_rfr_check(key).label
        return policy.age_band(key).label
    except PolicyError:
        return key


def sections(case: Case, policy: Policy, libraries: dict[str, LibraryInfo]) -> list[tuple[str, str]]:
    """The decision screen's sections: (heading, text), in the order an approver reads them."""
    form = case.form
    out: list[tuple[str, str]] = []
    reasons = "\n".join(f"• {r}" for r in case.approval_reasons) or "• (none recorded)"
    out.append((f"Approval needed from: {case.required_rank} or above", reasons))
    if case.flags:
        lines = []
        for flag in case.approval_flags:
            try:
                description = policy.flag(flag).description
            except PolicyError:
                description = "(no longer in the policy)"
            lines.append(f"⚠ {flag_words(flag)}: {description}")
            advice = [a for a in case.advice if a.flag == flag]
            if not advice:
                lines.append("   Advice recorded: none.")
            for a in advice:
                lines.append(
                    f"   Advice from {a.adviser}, given {a.given_on} (recorded by {a.recorded_by}, "
                    f"{when(a.recorded_at)}): {a.advice}"
                )
        for flag in case.monitoring_flags:
            lines.append(f"◆ {flag_words(flag)}: {MONITORING.get(flag, 'recorded for monitoring')}")
        out.append(("Flags", "\n".join(lines)))
    else:
        out.append(("Flags", "None."))
    out.append(
        (
            "The request",
            f"Use case: {policy_label(policy, 'use_case', form.use_case)}\n"
            f"Crime or occurrence reference: {form.reference}\n"
            f"Offence type: {form.offence}\n"
            f"Completed by: {form.completed_by} (as {form.completed_as.value.replace('_', ' ')})\n"
            f"Legitimate aim, necessity and proportionality: {form.justification}",
        )
    )
    out.append(
        (
            "Pre-RFR Checks",
            "\n".join(
                f"• {policy_label(policy, 'check', c.key)}\n  {c.status.value.capitalize()}: {c.detail}"
                for c in form.pre_rfr_checks
            ),
        )
    )
    source = "police-originated" if form.probe_source.value == "police" else "not police-originated"
    out.append(
        (
            "Provenance of the Probe Image",
            f"Source: {source}\nCaptured: {form.probe_captured}\nObtained: {form.probe_obtained}",
        )
    )
    out.append(
        (
            "Subject factors",
            f"Apparent age band: {policy_label(policy, 'age', form.age_band)}\n"
            f"Relevant disability affecting facial appearance: {'yes' if form.relevant_disability else 'no'}\n"
            f"Image pre-dates gender reassignment: {'yes' if form.pre_dates_gender_reassignment else 'no'}\n"
            f"Head or face coverings: {form.coverings or 'none stated'}\n"
            f"Injuries: {form.injuries or 'none stated'}",
        )
    )
    lines = []
    for name in form.libraries:
        info = libraries.get(name)
        if info is None:
            lines.append(f"• {name}: no such library on this terminal now")
            continue
        lib = info.library
        extra = ""
        if lib.authorisation:
            extra += f", authorisation {lib.authorisation}"
        if lib.expires_at is not None:
            extra += f", expires {lib.expires_at:%Y-%m-%d}"
        lines.append(f"• {name}: {lib.kind.value} library, {info.subjects:,} subjects, {info.images:,} images{extra}")
    out.append(("Permitted Image Reference Libraries to search", "\n".join(lines)))
    out.append(
        (
            "Submitted",
            f"By {case.submitted_by or case.created_by} at {when(case.submitted_at)}; form completed "
            f"{when(case.created_at)}; policy {case.policy_version}.",
        )
    )
    return out


class DecisionScreen(RfrScreen):
    """Everything needed to decide one submission, on one screen; approve (password again) or reject."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve", id="decision.approve"),
        Binding("r", "reject", "Reject", id="decision.reject"),
        Binding("escape", "back", "Back", id="decision.back"),
    ]

    def __init__(self, case_id: str) -> None:
        super().__init__()
        self.case_id = case_id
        self.case: Case | None = None

    def title_text(self) -> str:
        return f"Decide: case {self.case_id}"

    def body(self) -> ComposeResult:
        with Horizontal(id="decision-main"):
            with VerticalScroll(id="decision-details", can_focus=True):
                yield Static(plain("Working: reading the case..."), id="decision-loading")
            with Vertical(id="decision-probe"):
                yield Static(plain("Probe Image"), classes="decision--heading")
                yield FaceImage(id="decision-picture")
                yield Static("", id="decision-probe-caption", classes="decision--caption")
        yield StateLabel("Approve (a) or reject (r), each with a reason.", Tone.NEUTRAL, id="decision-problem")

    def on_mount(self) -> None:
        terminal, session, case_id = self.terminal, self.session, self.case_id

        def read() -> _Material:
            case = terminal.cases.show(session, case_id)
            picture, problem = None, None
            try:
                picture = _probe_picture(terminal.cases.probe(session, case_id).image, case)
            except RfrError as error:
                problem = for_a_person(error.diagnostics())
            libraries = {info.library.name: info for info in terminal.libraries.listing(session)}
            return _Material(case, picture, problem, libraries)

        self.run_engine(read, self._show, group="read-case")

    def _show(self, material: _Material) -> None:
        case = self.case = material.case
        details = self.query_one("#decision-details", VerticalScroll)
        details.remove_children()
        widgets: list[Static] = [StateLabel(f"Case {case.id} is {case.state.value}", Tone.INFO)]
        for heading, text in sections(case, self.terminal.policy, material.libraries):
            widgets.append(Static(plain(heading), classes="decision--heading"))
            widgets.append(Static(plain(text), classes="decision--section"))
        details.mount_all(widgets)
        details.focus()
        self.query_one("#decision-picture", FaceImage).show(material.picture)
        face = case.probe_face
        if material.probe_problem is not None:
            caption = material.probe_problem
        elif face is None:
            caption = "The face the case searches with is not recorded."
        else:
            caption = (
                f"The Probe Image holds {face.faces_found} face{'s' if face.faces_found != 1 else ''} (numbered left "
                f"to right); the box marks face {face.number}, the one the case searches with."
            )
            warnings = (case.probe_quality or {}).get("warnings")
            if warnings:
                caption += " Quality warnings: " + "; ".join(warnings) + "."
            if face.note:
                caption += f" {face.note}"
        self.query_one("#decision-probe-caption", Static).update(plain(caption))

    # ---- deciding ------------------------------------------------------------------------------

    def _problem(self, error: BaseException) -> None:
        sentence = said(error, UNEXPECTED)
        self.query_one("#decision-problem", StateLabel).set_state(sentence, Tone.BAD)

    def _working(self, words: str) -> None:
        self.query_one("#decision-problem", StateLabel).set_state(words, Tone.NEUTRAL)

    def action_approve(self) -> None:
        if self.case is None:
            return
        case_id = self.case_id

        def with_reason(reason: str | None) -> None:
            if reason is None:
                return
            self.app.push_screen(
                PasswordDialog(f"To approve case {case_id}, enter your password again."),
                lambda password: self._approve(reason, password),
            )

        self.app.push_screen(
            ReasonDialog(
                "Why do you approve this search as necessary and proportionate? Your reason is recorded on the case.",
                title=f"Approve case {case_id}",
                action="Approve",
                placeholder="The reason for approving (recorded on the case)",
            ),
            with_reason,
        )

    def _approve(self, reason: str, password: str | None) -> None:
        if password is None:
            return
        terminal, session, case_id = self.terminal, self.session, self.case_id
        self._working("Working: checking your password and recording the approval...")

        def approve() -> Case:
            terminal.accounts.reauthenticate(session, password, ReauthPurpose.APPROVE)
            return terminal.cases.approve(session, case_id, reason)

        def done(case: Case) -> None:
            self.app.notify(
                f"Case {case.id} approved by {case.decided_by} ({case.decided_rank}).", title="Approval recorded"
            )
            self.dismiss(case)

        self.run_engine(approve, done, group="decide", failed=self._problem)

    def action_reject(self) -> None:
        if self.case is None:
            return
        case_id = self.case_id

        def with_reason(reason: str | None) -> None:
            if reason is None:
                return
            terminal, session = self.terminal, self.session
            self._working("Working: recording the rejection...")

            def done(case: Case) -> None:
                self.app.notify(f"Case {case.id} rejected; its Probe Image was deleted.", title="Rejection recorded")
                self.dismiss(case)

            self.run_engine(
                lambda: terminal.cases.reject(session, case_id, reason), done, group="decide", failed=self._problem
            )

        self.app.push_screen(
            ReasonDialog(
                "Why is this search not approved? Your reason is recorded on the case. Rejecting deletes the Probe "
                "Image at once: the officer would have to start a new submission.",
                title=f"Reject case {case_id}",
                action="Reject",
                placeholder="The reason for rejecting (recorded on the case)",
            ),
            with_reason,
        )

    def action_back(self) -> None:
        self.dismiss(None)
